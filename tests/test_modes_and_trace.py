"""sample.py --mode (forced formats, side by side) and --trace (every stage of one decision) on tiny trained
students, plus the trace of an untrained GPT-2-BPE student."""

import json
import math
import os
import re
from pathlib import Path

import pytest
import torch

import sample
from atm_min.formats import MODE_MARKS
from atm_min.evaluate import Answering, generate_answers, generate_texts
from atm_min.machinery.data import load_examples
from atm_min.machinery.trace import PERCEPTION_STAGES, STAGES, format_trace, trace_question
from atm_min.machinery.data import example_to_dict

Q = "Is 74 even?"
GPT2_FILE = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "gpt2.tiktoken"
COL = sample.COL


def ask(capsys, *argv):
    capsys.readouterr()
    rc = sample.cli(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def columns(out, label):
    """The (pre, post) cells of a side-by-side row `  label: <pre column><post column>`."""
    [line] = [ln for ln in out.splitlines() if ln.startswith(f"  {label}:")]
    return line[13:13 + COL].strip(), line[13 + COL:].strip()


def gold_rows(run, n=12):
    return load_examples(os.path.join(run, "synth_0", "test.jsonl"))[:n]


# ------------------------------------------------------------------------------------------------ forced modes

def test_forcing_the_mode_a_student_chooses_changes_nothing(atm_run, pre_run):
    """The ATM student (trained answer-first) chooses post, the pre student pre: where a student writes a mode's
    marker itself, forcing that mode gives exactly its own output (and token count); forcing the other mode
    starts every output with the other marker. (The tiny pre student sometimes garbles its marker, e.g.
    "Reasoninining:"; those questions are left out of the comparison.)"""
    for run, own_mode, other, min_own in ((atm_run, "post", "pre", 12), (pre_run, "pre", "post", 3)):
        student, perception, tok, _ = sample.load_model(os.path.join(run, "ckpt.pt"), "cpu")
        qs = [ex.question for ex in gold_rows(run)]
        own = generate_texts(student, tok, qs, Answering("cpu", 8, 40), perception=perception)
        same = generate_texts(student, tok, qs, Answering("cpu", 8, 40), perception=perception, force=own_mode)
        flip = generate_texts(student, tok, qs, Answering("cpu", 8, 40), perception=perception, force=other)
        chose = [i for i, o in enumerate(own) if o["text"].startswith(MODE_MARKS[own_mode] + " ")]
        assert len(chose) >= min_own
        assert [same[i]["text"] for i in chose] == [own[i]["text"] for i in chose]
        assert [same[i]["new_tokens"] for i in chose] == [own[i]["new_tokens"] for i in chose]
        assert all(o["text"].startswith(MODE_MARKS[own_mode]) for o in same)
        assert all(f["text"].startswith(MODE_MARKS[other]) for f in flip)


def test_mode_pre_prints_the_forced_mode(atm_run, capsys):
    out = ask(capsys, "--out_dir", atm_run, "--question", Q, "--mode", "pre")
    assert sample_field(out, "mode") == ["think first (pre), forced"]
    [(n, _)] = [(int(a), b) for a, b in re.findall(r"^  (\d+) tokens, ([\d.]+) ms$", out, re.M)]
    assert n >= len("Reasoning:")  # byte tokenizer: the marker's 10 tokens are counted


def sample_field(out, name):
    return [m.group(1) for m in re.finditer(rf"^  {re.escape(name)}:\s*(.*)$", out, re.M)]


def test_mode_both_for_one_question_side_by_side(atm_run, capsys):
    out = ask(capsys, "--out_dir", atm_run, "--question", Q, "--mode", "both")
    assert out.startswith(f"Q: {Q}\n")
    own = re.search(r"^  own choice: answer first \(post\), answer (\S+), (\d+) tokens, p\(answer first\) = "
                    r"([\d.]+)$", out, re.M)
    assert own, out
    assert "forced think first (pre)" in out and "forced answer first (post)" in out
    pre_answer, post_answer = columns(out, "answer")
    assert post_answer == own.group(1)  # it answers first anyway: forcing post changes nothing
    pre_cost, post_cost = columns(out, "cost")
    assert re.fullmatch(r"\d+ tokens, [\d.]+ ms", pre_cost) and re.fullmatch(r"\d+ tokens, [\d.]+ ms", post_cost)
    assert int(post_cost.split()[0]) == int(own.group(2))
    assert int(pre_cost.split()[0]) >= len("Reasoning:")
    assert "not generated" in columns(out, "rationale")[1]  # answering first stops at the answer
    assert "gold" not in out  # no gold for a bare question


def test_mode_both_on_a_jsonl_file_scores_each_mode_and_lists_disagreements(atm_run, tmp_path, capsys):
    rows = gold_rows(atm_run)
    f = tmp_path / "gold.jsonl"
    f.write_text("".join(json.dumps(example_to_dict(ex)) + "\n" for ex in rows))
    out = ask(capsys, "--out_dir", atm_run, "--file", str(f), "--mode", "both")
    head = " ".join(out.splitlines()[:2]).split()  # format_table's header (one or two lines)
    assert {"own", "pre", "post"} <= set(head) or all(f"{m} acc" in " ".join(head) for m in ("own", "pre", "post"))
    # the same numbers as generate_answers with each forced mode
    student, perception, tok, ck = sample.load_model(os.path.join(atm_run, "ckpt.pt"), "cpu")
    max_new = ck["config"]["max_new_tokens"]
    recs = {m: generate_answers(student, tok, rows, Answering("cpu", 64, max_new), perception=perception, force=m)
            for m in ("pre", "post")}
    pre_ok = [r["correct"] for r in recs["pre"]]
    post_ok = [r["correct"] for r in recs["post"]]
    assert all(r["mode"] == "pre" for r in recs["pre"]) and all(r["mode"] == "post" for r in recs["post"])
    m = re.search(r"forced pre and forced post answer differently on (\d+) of (\d+) questions", out)
    assert m and int(m.group(2)) == len(rows)
    listed = re.findall(r"^  (synth-test-\d+) ", out, re.M)
    assert len(listed) == int(m.group(1))
    differ = {r["id"] for r, s in zip(recs["pre"], recs["post"])
              if sample.extract_answer(r["text"], "yesno" if r["group"].startswith("direct") else "number")
              != sample.extract_answer(s["text"], "yesno" if s["group"].startswith("direct") else "number")}
    assert set(listed) == differ
    [all_row] = re.findall(r"^  ALL\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.M)
    n, both, only_pre, only_post, neither = map(int, all_row)
    assert n == len(rows) == both + only_pre + only_post + neither
    assert both == sum(a and b for a, b in zip(pre_ok, post_ok))
    assert only_pre == sum(a and not b for a, b in zip(pre_ok, post_ok))
    assert only_post == sum(b and not a for a, b in zip(pre_ok, post_ok))


# ------------------------------------------------------------------------------------------------ trace

def test_trace_prints_every_stage_in_order(atm_run, capsys):
    out = ask(capsys, "--out_dir", atm_run, "--question", Q, "--trace")
    headers = re.findall(r"^== \d+\. (.+?)  \[(.+)\]$", out, re.M)
    assert [h for h, _ in headers] == list(STAGES)
    gpt = dict(file="atm_min/model.py", cls="GPT",  # the student's stages name its own file and class,
               tok_file="atm_min/tokenizer.py", tok_cls="Tokenizer")  # the prompt stage its tokenizer's
    assert all(where == STAGES[h].format(**gpt) and ".py " in where for h, where in headers)  # each: file, function
    assert "'Q: Is 74 even?\\n'" in out
    assert re.search(r"^  query 0 ", out, re.M) and re.search(r"^  query 1 ", out, re.M)  # n_prefix=2
    assert "with soft prompt" in out and "without soft prompt" in out
    # generation: one line per token, its probability, then the answer read back
    steps = re.findall(r"^\s+(\d+)\s+(\d+)\s+('.*?'|\".*?\")\s+([\d.]+)\s", out, re.M)
    assert steps and [int(s[0]) for s in steps] == list(range(len(steps)))
    assert all(0 <= float(s[3]) <= 1 for s in steps)
    assert "mode: answer first (post)" in out


def test_trace_numbers(atm_run):
    student, perception, tok, _ = sample.load_model(os.path.join(atm_run, "ckpt.pt"), "cpu")
    t = trace_question(student, perception, tok, Q, modes=(None, "pre"), max_new_tokens=30)
    assert "".join(t["prompt_pieces"]) == t["prompt"] and len(t["prompt_ids"]) == len(t["prompt"])  # bytes
    # each query's attention (every block, every head) is a distribution over the feature token + question
    for att in t["att"]:
        assert att.shape == (2, 2, 1 + len(t["q_ids"]))  # (n_head, P, 1+T)
        assert torch.allclose(att.sum(-1), torch.ones(2, 2), atol=1e-5)
    assert 0 < t["p_post"] < 1 and len(t["prefix_norms"]) == 2
    # the soft prompt does its job: the marker probabilities move when it is removed
    w, wo = t["marks"]["with"], t["marks"]["without"]
    assert w["post"][1] > w["pre"][1]  # trained answer-first: with its soft prompt it starts with "Answer:"
    for mode in ("pre", "post"):  # (log scale: the unlikely marker's probability is tiny either way)
        assert abs(math.log(w[mode][1]) - math.log(wo[mode][1])) > 0.1
    own, forced = t["generations"]
    assert own["text"].startswith("Answer:") and forced["text"].startswith("Reasoning:")
    assert [k["forced"] for k in forced["tokens"][:10]] == [True] * 10
    # greedy: every free token is the likeliest one, and the probabilities match the generation
    assert all(k["p"] >= k["p_other"] for k in own["tokens"])
    assert own["text"] == generate_texts(student, tok, [Q], Answering("cpu", 1, 30), perception=perception)[0]["text"]
    assert w["post"][0] == pytest.approx(own["tokens"][0]["p"], rel=1e-4)  # p("A") both ways


def test_trace_of_a_pre_student_has_no_perception_stages(pre_run, capsys):
    out = ask(capsys, "--out_dir", pre_run, "--question", Q, "--trace", "--mode", "post")
    headers = re.findall(r"^== \d+\. (.+?)  \[", out, re.M)
    assert headers == [s for s in STAGES if s not in PERCEPTION_STAGES]
    assert "with soft prompt" not in out
    assert "[forced post: the prompt is followed by 'Answer:']" in out


@pytest.mark.skipif(not GPT2_FILE.is_file(), reason=f"{GPT2_FILE} not present")
def test_trace_of_a_gpt2_bpe_student():
    """An untrained student on GPT-2's BPE: pieces are multi-character tokens and still line up."""
    from atm_min.model import GPT, GPTConfig
    from atm_min.perception import Perception
    from atm_min.machinery.gpt2 import gpt2_tokenizer
    tok = gpt2_tokenizer(str(GPT2_FILE))
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=64, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=32)).eval()
    perception = Perception(32, n_prefix=3, n_layer=1, n_head=2).eval()
    t = trace_question(student, perception, tok, Q, modes=("post",), max_new_tokens=5)
    assert t["prompt_pieces"] == ["Q", ":", " Is", " 74", " even", "?", "\n"]
    assert t["q_pieces"] == ["Is", " 74", " even", "?"]
    assert torch.allclose(t["att"][0].sum(-1), torch.ones(2, 3), atol=1e-5)
    text = format_trace(t)
    assert "Q|:| Is| 74| even|?|\u23ce" in text
    assert re.search(r"^\s+feat  Is 74 even\?$", text, re.M)  # the heat strips line up under this
    strip_rows = re.findall(r"^  query \d +[\d.]+  (.{11})  top:", text, re.M)
    assert len(strip_rows) == 3  # one cell per character of "Is 74 even?"
    assert t["generations"][0]["text"].startswith("Answer:")


def test_trace_errors(atm_run, capsys, tmp_path):
    (tmp_path / "q.txt").write_text(f"{Q}\n")
    for argv, needle in ((["--file", str(tmp_path / "q.txt"), "--trace"], "--question"),
                         (["--question", Q, "--trace", "--temperature", "1"], "greedy")):
        capsys.readouterr()
        rc = sample.cli(["--out_dir", atm_run, *argv])
        out, err = capsys.readouterr()
        assert rc == 1 and out == "" and err.startswith("error: ") and needle in err and len(err.splitlines()) == 1


def test_a_forced_marker_needs_room_in_the_context(atm_run, capsys):
    """A question that just fits for the student's own choice is too long once "Reasoning:" must follow it."""
    room = 192 - 2 - sample.MIN_NEW_TOKENS  # block_size - soft prompt - room for the answer
    q = "Number 1 in " + "1 " * ((room - 4 - 12) // 2)
    q += "9" * (room - 4 - len(q))  # byte tokenizer: the prompt "Q: {q}\n" is len(q) + 4 tokens
    ask(capsys, "--out_dir", atm_run, "--question", q)  # fits
    capsys.readouterr()
    rc = sample.cli(["--out_dir", atm_run, "--question", q, "--mode", "pre"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and "too long" in err and "10 for the forced marker" in err


def test_a_hard_routed_student_is_started_with_its_classifiers_marker(atm_run, tmp_path, capsys):
    """routing="hard" (an ablation): no soft prompt at test time; the classifier picks the mode and the output
    is started with that mode's marker. (The checkpoint is the soft-routed one with its config changed: what
    matters here is what sample.py does with such a checkpoint.)"""
    from atm_min.machinery.checkpoint import load_checkpoint, save_checkpoint
    ck = load_checkpoint(os.path.join(atm_run, "ckpt.pt"))
    ck["config"] = {**ck["config"], "routing": "hard"}
    path = str(tmp_path / "hard.pt")
    save_checkpoint(path, ck)
    student, perception, tok, _ = sample.load_model(path, "cpu")
    # p(answer first) is ~1 for this student; no prefix: hard routing
    [want] = generate_texts(student, tok, [Q], Answering("cpu", 1, 16), perception=perception, force="post")
    out = ask(capsys, "--ckpt", path, "--question", Q)
    assert sample_field(out, "mode") == ["answer first (post)"]
    assert re.search(r"^  (\d+) tokens", out, re.M).group(1) == str(want["new_tokens"])
    trace = ask(capsys, "--ckpt", path, "--question", Q, "--trace")
    assert "routing='hard'" in trace and "with soft prompt" not in trace
    assert "[forced post: the prompt is followed by 'Answer:']" in trace

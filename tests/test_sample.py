"""sample.py on tiny trained students: what it prints, and its one-line errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sample

ROOT = Path(__file__).resolve().parents[1]
Q = "Start at 3, apply i d i: result?"


def ask(capsys, *argv):
    """(exit status, stdout, stderr) of sample.py run in this process."""
    capsys.readouterr()
    rc = sample.cli(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def field(out, name):
    """The value printed on the `  name: value` lines, in order."""
    return [m.group(1) for m in re.finditer(rf"^  {re.escape(name)}:\s*(.*)$", out, re.M)]


def stats(out):
    return [(int(a), float(b)) for a, b in re.findall(r"^  (\d+) tokens, ([\d.]+) ms$", out, re.M)]


# ----------------------------------------------------------------------------------------------------- output

def test_atm_student_answers_first(atm_run, capsys):
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--question", Q)
    assert rc == 0, err
    assert out.startswith(f"Q: {Q}\n")
    assert field(out, "mode") == ["answer first (post)"]
    [answer] = field(out, "answer")
    assert re.fullmatch(r"\d+", answer)
    assert field(out, "rationale") == []  # answer first: generation stopped at the newline after the answer
    p = re.search(r"p\(answer first\) = ([\d.]+)", out)
    assert p and 0.5 < float(p.group(1)) <= 1  # the perception learned its (all-post) labels
    [(n_tokens, ms)] = stats(out)
    assert n_tokens == len(f"Answer: {answer}\n") and ms > 0  # byte tokenizer: one token per character


def test_explain_generates_the_rationale(atm_run, capsys):
    _, short, _ = ask(capsys, "--out_dir", atm_run, "--question", Q)
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--question", Q, "--explain")
    assert rc == 0, err
    assert field(out, "mode") == ["answer first (post)"]
    assert field(out, "answer") == field(short, "answer")  # the same answer, then the reasons for it
    [rationale] = field(out, "rationale")
    assert rationale  # the student learned that a rationale follows ("Step by step: ...")
    assert stats(out)[0][0] > stats(short)[0][0] + 10


def test_pre_student_thinks_first_and_has_no_perception(pre_run, capsys):
    rc, out, err = ask(capsys, "--out_dir", pre_run, "--question", Q)
    assert rc == 0, err
    assert field(out, "mode") == ["think first (pre)"]
    assert field(out, "rationale") and field(out, "rationale")[0]  # its reasoning comes first, so it is shown
    assert "p(answer first)" not in out


def test_question_file_in_order(atm_run, tmp_path, capsys):
    f = tmp_path / "qs.txt"
    f.write_text(f"{Q}\n\nNumber 2 in 4 7 1 5?\n   \nStart at 1, apply d: result?\n")  # blank lines skipped
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--file", str(f))
    assert rc == 0, err
    assert re.findall(r"^Q: (.*)$", out, re.M) == [Q, "Number 2 in 4 7 1 5?", "Start at 1, apply d: result?"]
    assert len(field(out, "mode")) == 3 and "accuracy" not in out  # no gold answers, no score


def test_jsonl_file_is_scored(atm_run, tmp_path, capsys):
    rows = [json.loads(line) for line in open(os.path.join(atm_run, "synth_0", "test.jsonl"))][:5]
    f = tmp_path / "gold.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--file", str(f))
    assert rc == 0, err
    gold = field(out, "gold")
    assert [g.split()[0] for g in gold] == [r["answer"] for r in rows]
    n_right = sum(g.endswith("(right)") for g in gold)
    assert re.search(rf"^accuracy: {n_right}/5 = {n_right / 5:.3f}$", out, re.M)
    assert "acc  post%   tok" in out and "ALL" in out  # the same table as train.py


def test_sampling_is_seeded_and_reaches_the_model(atm_run, capsys):
    """--temperature, --top_k and --seed get to the sampler: the same seed prints the same answer, sampling is not
    greedy decoding (for some seed), and --top_k 1 is greedy decoding whatever the temperature."""
    def answer(*extra):
        rc, out, err = ask(capsys, "--out_dir", atm_run, "--question", Q, "--explain", *extra)
        assert rc == 0, err
        return re.sub(r"[\d.]+ ms", "", out)  # the timings differ

    greedy = answer()
    sampled = {seed: answer("--temperature", "1.0", "--top_k", "3", "--seed", str(seed)) for seed in range(1, 6)}
    assert answer("--temperature", "1.0", "--top_k", "3", "--seed", "1") == sampled[1]
    assert any(out != greedy for out in sampled.values())
    assert len(set(sampled.values())) > 1  # the seed is used
    assert answer("--temperature", "2.0", "--top_k", "1", "--seed", "1") == greedy


def test_cli_subprocess(atm_run):
    """The real command line (one run: starting Python and torch costs a second or two)."""
    r = subprocess.run([sys.executable, "sample.py", "--out_dir", atm_run, "--question", Q], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "mode:      answer first (post)" in r.stdout and "p(answer first)" in r.stdout


# ----------------------------------------------------------------------------------------------------- errors

def one_line_error(rc, out, err, *needles):
    assert rc != 0 and out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_checkpoint(tmp_path, capsys):
    """(As a command of its own, with its exit status: test_errors.py's sweep, "sample.py: run folder missing".)"""
    rc, out, err = ask(capsys, "--out_dir", str(tmp_path / "none"), "--question", Q)
    one_line_error(rc, out, err, "no checkpoint", "python train.py")
    assert rc == 1 and not (tmp_path / "none").exists()


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question(atm_run, capsys, question):
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--question", question), "empty")


def test_too_long_question(atm_run, capsys):
    # byte tokenizer: the prompt "Q: {q}\n" is len(q) + 4 tokens; the context of 192 positions holds 2 soft-prompt
    # vectors and needs room for MIN_NEW_TOKENS generated ones.
    room = 192 - 2 - sample.MIN_NEW_TOKENS
    fits = "Number 1 in " + "1 " * ((room - 4 - 12) // 2)
    fits += "9" * (room - 4 - len(fits))
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--question", fits)
    assert rc == 0, err  # exactly at the limit: still answered
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--question", fits + "9"), "too long", "block_size=192")
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--question", "x" * 5000), "too long")


def test_too_long_question_in_a_file_names_the_line(atm_run, tmp_path, capsys):
    f = tmp_path / "qs.txt"
    f.write_text(f"{Q}\n{'x' * 500}\n")
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--file", str(f)), "line 2", "too long")


class RunsCode:
    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_unsafe_or_broken_checkpoint(tmp_path, capsys):
    flag, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"learner": RunsCode(str(flag))}, str(path))
    one_line_error(*ask(capsys, "--ckpt", str(path), "--question", Q), "refused")
    assert not flag.exists()
    path.write_bytes(b"not a checkpoint at all")
    one_line_error(*ask(capsys, "--ckpt", str(path), "--question", Q), "corrupt")
    torch.save({"weights": torch.zeros(2)}, str(path))  # safe, but not from train.py
    one_line_error(*ask(capsys, "--ckpt", str(path), "--question", Q), "not a train.py checkpoint")


def test_checkpoint_that_does_not_match_the_model(atm_run, tmp_path, capsys):
    from atm_min.machinery.checkpoint import load_checkpoint, save_checkpoint
    ck = load_checkpoint(os.path.join(atm_run, "ckpt.pt"))
    ck["model_args"] = {**ck["model_args"], "n_embd": 64}
    save_checkpoint(str(tmp_path / "bad.pt"), ck)
    one_line_error(*ask(capsys, "--ckpt", str(tmp_path / "bad.pt"), "--question", Q), "does not match")


def test_other_input_errors(atm_run, tmp_path, capsys, monkeypatch):
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--file", str(tmp_path / "nope.txt")), "no such file")
    (tmp_path / "blank.txt").write_text("\n  \n")
    one_line_error(*ask(capsys, "--out_dir", atm_run, "--file", str(tmp_path / "blank.txt")), "no questions")
    with monkeypatch.context() as m:  # a machine without a GPU, on this one whatever it has
        m.setattr(torch.cuda, "is_available", lambda: False)
        one_line_error(*ask(capsys, "--out_dir", atm_run, "--question", Q, "--device", "cuda"), "no CUDA GPU")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "Q?"}\n')
    rc, out, err = ask(capsys, "--out_dir", atm_run, "--file", str(tmp_path / "bad.jsonl"))
    assert rc != 0 and err.startswith("error: ") and "line 1" in err and "Traceback" not in err


def test_the_table_names_a_baseline_or_fold_student_by_its_file():
    """An ATM run's baselines and fold students are saved with the run's config (mechanism "atm"): a scored
    --file names their column by the file, not "atm"."""
    run_cfg = {"mechanism": "atm"}
    assert sample.student_name({"atm": False, "config": run_cfg}, "out/baseline_pre.pt") == "pre"
    assert sample.student_name({"atm": False, "config": run_cfg}, "out/folds/fold0_post.pt") == "post"
    assert sample.student_name({"atm": False, "config": run_cfg}, "out/other.pt") == "model"
    assert sample.student_name({"atm": True, "config": run_cfg}, "out/ckpt.pt") == "atm"
    assert sample.student_name({"atm": False, "config": {"mechanism": "post"}}, "out/ckpt.pt") == "post"

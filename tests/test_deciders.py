"""The other deciders (soft_prompt, mode_token, router) and the labels from sampled answers (pass_rate, delta):
the mechanics of each, on tiny examples, with values checked."""

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import atm_min.evaluate as E
import atm_min.variants.mode_token as MT
import atm_min.variants.router as R
from atm_min.batches import collate, encode_items
from atm_min.formats import ANSWER_MARK, REASON_MARK, Example, encode, format_prompt
from atm_min.model import GPT, GPTConfig
from atm_min.tokenizer import byte_tokenizer
from atm_min.machinery.choose import build_learner
from atm_min.machinery.config import TrainConfig, parse_args
from atm_min.machinery.data import load_examples
from atm_min.machinery.errors import ConfigError, DataError
from atm_min.machinery.jobs import Job, Students, read_cached, write_json
from atm_min.machinery.choose import finished_student
from atm_min.variants.label_rules import pass_rate
from atm_min.variants.mode_token import mode_token_ids, mode_token_loss
from atm_min.variants.router import Router, RouterLearner
from atm_min.variants.sampled_evidence import pass_rates

from tiny import tiny_args

GPT2_FILE = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "gpt2.tiktoken"
TOK = byte_tokenizer()
EXAMPLES = [Example("a", "Start at 5, apply i: result?", "5 plus 1 is 6.", "6", "number", "multistep/1"),
            Example("b", "Is 74 even?", "It ends in 4, so yes.", "yes", "yesno", "direct/2"),
            Example("c", "Start at 2, apply d d: result?", "2 times 2 is 4. 4 times 2 is 8.", "8", "number",
                    "multistep/2")]


def tiny_gpt(seed=0, vocab=257):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=128, vocab_size=vocab, n_layer=1, n_head=2, n_embd=16))


# ---------------------------------------------------------------------------------------------- mode token

def test_mode_token_is_the_first_token_of_each_marker():
    think, answer = mode_token_ids(TOK)
    assert (TOK.decode([think]), TOK.decode([answer])) == ("R", "A")
    for ex in EXAMPLES:  # every target starts with its mode's token: the student's first token is its decision
        assert encode(TOK, ex, "pre")[1][0] == think and encode(TOK, ex, "post")[1][0] == answer


def test_mode_token_in_gpt2_bpe():
    if not GPT2_FILE.is_file():
        pytest.skip(f"shared GPT-2 ranks not found: {GPT2_FILE}")
    from atm_min.machinery.hf import get_tokenizer
    tok = get_tokenizer("gpt2", str(GPT2_FILE))
    think, answer = mode_token_ids(tok)
    assert (tok.decode([think]), tok.decode([answer])) == ("Reason", "Answer")
    assert tok.encode(REASON_MARK)[0] == think and tok.encode(ANSWER_MARK)[0] == answer


def test_mode_token_loss_weighs_the_first_target_token_apart():
    student = tiny_gpt()
    items = encode_items(TOK, EXAMPLES, ["post", "pre", "pre"])
    b = collate(items, "cpu")
    logits, _ = student(b["x"])  # (B, T, V)
    _, plain = student(b["x"], b["y"])
    logp = torch.log_softmax(logits.detach().float(), dim=-1)
    mode_ce, rest_ce = [], []
    for i, ex in enumerate(EXAMPLES):  # by hand: the mode token is predicted at the prompt's last position
        first = len(TOK.encode(format_prompt(ex.question))) - 1
        for t in range(b["y"].size(1)):
            y = int(b["y"][i, t])
            if y != -1:
                (mode_ce if t == first else rest_ce).append(-float(logp[i, t, y]))
    for w in (0.0, 1.0, 3.0):
        loss, rest, mode = mode_token_loss(student, b["x"], b["y"], w)
        assert mode.item() == pytest.approx(sum(mode_ce) / 3, rel=1e-5)
        assert rest.item() == pytest.approx(sum(rest_ce) / len(rest_ce), rel=1e-5)
        assert loss.item() == pytest.approx(rest.item() + w * mode.item(), rel=1e-5)
    # the plain mean counts the 3 mode tokens among all the others: not the same loss
    assert plain.item() == pytest.approx((sum(mode_ce) + sum(rest_ce)) / (3 + len(rest_ce)), rel=1e-5)
    # the Learner of decider "mode_token" has no perception and gives this loss
    learner = build_learner(TrainConfig(decider="mode_token", mode_token_weight=3.0), student, atm=True)
    assert learner.perception is None
    assert learner(**b)[0].item() == pytest.approx(mode_token_loss(student, b["x"], b["y"], 3.0)[0].item())


def test_first_token_p_post_is_the_renormalised_choice_of_each_question_alone():
    student = tiny_gpt(1).eval()
    think, answer = mode_token_ids(TOK)
    qs = [ex.question for ex in EXAMPLES]
    p = MT.first_token_p_post(student, TOK, qs, "cpu", batch_size=2)  # padded batches
    for q, got in zip(qs, p):
        logits, _ = student(torch.tensor([TOK.encode(format_prompt(q))]))
        want = torch.softmax(logits[0, -1, [think, answer]], dim=-1)[1].item()
        assert got == pytest.approx(want, abs=1e-5)


def test_mode_token_answers_greedy_or_thresholded(monkeypatch):
    seen = {}

    def fake_generate(student, tok, examples, *a, force=None, **kw):
        seen["force"] = force
        return [dict(id=ex.id, mode=None) for ex in examples]

    monkeypatch.setattr(MT, "first_token_p_post", lambda *a, **kw: [0.7, 0.5, 0.6])
    monkeypatch.setattr(MT, "generate_answers", fake_generate)
    recs = MT.mode_token_answers(None, TOK, EXAMPLES, "cpu", threshold=0.0)
    assert seen["force"] is None  # greedy: the student writes its mode token itself
    assert [r["p_post"] for r in recs] == [0.7, 0.5, 0.6]
    MT.mode_token_answers(None, TOK, EXAMPLES, "cpu", threshold=0.6)
    assert seen["force"] == ["post", "pre", "post"]  # answer first where p(answer token) >= 0.6
    MT.mode_token_answers(None, TOK, EXAMPLES, "cpu", threshold=0.75)
    assert seen["force"] == ["pre", "pre", "pre"]
    MT.mode_token_answers(None, TOK, EXAMPLES, "cpu", threshold=0.7)  # the boundary: p == threshold answers first
    assert seen["force"] == ["post", "pre", "pre"]


# -------------------------------------------------------------------------------------------------- router

def test_router_sends_each_question_to_its_specialist(monkeypatch):
    calls = []

    def fake_generate(student, tok, examples, *a, **kw):
        calls.append((student, [ex.id for ex in examples]))
        return [dict(id=ex.id, text=f"{student} answers", mode=student) for ex in examples]

    monkeypatch.setattr(R, "post_probabilities", lambda *a, **kw: [0.9, 0.1, 0.6])
    monkeypatch.setattr(R, "generate_answers", fake_generate)
    recs = R.routed_answers("router", {"pre": "pre", "post": "post"}, TOK, EXAMPLES, "cpu")
    assert sorted(calls) == [("post", ["a", "c"]), ("pre", ["b"])]
    assert [(r["id"], r["mode"], r["p_post"]) for r in recs] == [("a", "post", 0.9), ("b", "pre", 0.1),
                                                                  ("c", "post", 0.6)]
    calls.clear()  # the boundary: p == 0.5 goes to the pre student (answer first needs > 0.5)
    monkeypatch.setattr(R, "post_probabilities", lambda *a, **kw: [0.5, 0.5000001, 0.4999999])
    R.routed_answers("router", {"pre": "pre", "post": "post"}, TOK, EXAMPLES, "cpu")
    assert sorted(calls) == [("post", ["b"]), ("pre", ["a", "c"])]


def test_router_learns_from_the_labels_alone_through_its_own_embeddings():
    torch.manual_seed(0)
    router = Router(TOK.vocab_size, 16, n_prefix=2, n_layer=1, n_head=2)
    assert not hasattr(router, "out_proj") and not hasattr(router, "mode_prompts")  # no soft prompt
    learner = RouterLearner(router)
    b = collate(encode_items(TOK, EXAMPLES, ["post", "post", "pre"]), "cpu")
    loss, lm, aux = learner(**b)
    _, logit = router(router.wte(b["q_ids"]), b["q_mask"], b["features"])
    assert aux.item() == pytest.approx(F.binary_cross_entropy_with_logits(logit, b["post"]).item(), rel=1e-6)
    assert loss.item() == aux.item() and lm.item() == 0.0
    loss.backward()
    assert router.wte.weight.grad.abs().sum() > 0  # unlike the perception, it trains its own embeddings
    opt = torch.optim.AdamW(router.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        learner(**b)[0].backward()
        opt.step()
    p = E.post_probabilities(None, router, TOK, EXAMPLES, "cpu")
    assert [x > 0.5 for x in p] == [True, True, False]  # it fits its three labels


def test_router_job_waits_for_its_specialists():
    cfg = TrainConfig(out_dir="/nonexistent", workers=1)
    order = []

    def work(cfg, job, train, test, rt=None, tok=None, show=True):
        order.append(job.name)
        return {"summary": {"accuracy": 1.0}}

    class RT:
        master, device, world = True, "cpu", 1

    atm, pre, post = (Job("atm", [], [], "", 0, atm=True, after=("pre", "post")), Job("pre", [], [], "", 0),
                      Job("post", [], [], "", 0))
    with Students(cfg, RT(), TOK, [], [], work, [atm, pre, post]) as students:
        futures = [students.start(job) for job in (atm, pre, post)]
        assert [f.result() for f in futures] == [{"summary": {"accuracy": 1.0}}] * 3
    assert order == ["pre", "post", "atm"]
    atm.after = ()  # without the dependency the atm job started first=True goes first, as the soft prompt's does
    order.clear()
    with Students(cfg, RT(), TOK, [], [], work, [atm, pre, post]) as students:
        students.runner.pending = students.workers  # a busy pool: the jobs wait in the queue
        futures = [students.start(pre), students.start(post), students.start(atm, first=True)]
        students.runner.pending = 0
        [f.result() for f in futures]
    assert order == ["atm", "pre", "post"]


# ------------------------------------------------------------------------------------- labels from samples

def test_pass_rate_rule_and_delta():
    lab = lambda pre, post, delta=0.0, default="pre": pass_rate(pre, post, delta, default)
    assert lab(0.75, 0.75) == "post"            # as good: answer first (cheaper)
    assert lab(0.75, 0.5) == "pre"              # worse by 0.25: think first...
    assert lab(0.75, 0.5, delta=0.25) == "post"  # ...unless delta allows that much
    assert lab(1.0, 0.25, delta=0.5) == "pre"
    assert lab(1.0, 0.5, delta=0.5) == "post"
    assert lab(0.0, 0.0, default="post") == "post" and lab(0.0, 0.0, delta=1.0) == "pre"  # never right: default
    assert lab(0.0, 0.25) == "post" and lab(0.25, 0.0) == "pre"


def test_pass_rates_from_sampled_answers_repeat_and_match_their_samples(pre_run, data_dir):
    student = finished_student(os.path.join(pre_run, "ckpt.pt"), "cpu")
    held = load_examples(os.path.join(data_dir, "test.jsonl"))
    ev = pass_rates(student, TOK, held, "cpu", samples=3, temperature=1.0, seed=7, max_new_tokens=48)
    assert ev["samples"] == 3 and ev["temperature"] == 1.0
    again = pass_rates(student, TOK, held, "cpu", samples=3, temperature=1.0, seed=7, max_new_tokens=48)
    assert ev == again  # a seeded generator: the same samples every time
    gen = torch.Generator().manual_seed(7)  # by hand: three sampled rounds, scored
    right = [0] * len(held)
    for _ in range(3):
        how = E.Answering("cpu", max_new_tokens=48, sample=dict(temperature=1.0, generator=gen))
        outs = E.generate_texts(student, TOK, [ex.question for ex in held], how)
        for i, r in enumerate(E.answer_records(held, outs)):
            right[i] += r["correct"]
    assert ev["pass_rate"] == [r / 3 for r in right]
    # a temperature near 0 samples the greedy answer: pass rates become the greedy evidence
    cold = pass_rates(student, TOK, held, "cpu", samples=2, temperature=1e-4, seed=0, max_new_tokens=48)
    greedy = [r["correct"] for r in E.generate_answers(student, TOK, held, E.Answering("cpu", max_new_tokens=48))]
    assert cold["pass_rate"] == [float(c) for c in greedy] and 0 < sum(greedy) < len(held)


def test_stale_fold_cache_is_refused(tmp_path):
    job = Job("fold 1/2 pre", [0], ["pre"], str(tmp_path / "f.pt"), 0, held_out=[1, 2],
              cache=str(tmp_path / "folds" / "fold0_pre.json"))
    (tmp_path / "folds").mkdir()
    write_json(job.cache, {"held_out": [1, 2], "correct": [True, False], "p_gold": None})  # greedy only
    greedy = TrainConfig(resume=True, out_dir=str(tmp_path))
    assert read_cached(greedy, job)["correct"] == [True, False]
    sampled = TrainConfig(resume=True, out_dir=str(tmp_path), label_samples=4, label_rule="pass_rate")
    with pytest.raises(DataError, match="label_samples=4"):
        read_cached(sampled, job)
    write_json(job.cache, {"held_out": [1, 2], "correct": [True, False], "p_gold": None, "pass_rate": [1.0, 0.5],
                           "samples": 4, "temperature": 0.5})
    with pytest.raises(DataError, match="label_temperature=1.0"):  # other samples: refused, not mixed
        read_cached(sampled, job)
    write_json(job.cache, {"held_out": [1, 2], "correct": [True, False], "p_gold": None, "pass_rate": [1.0, 0.5],
                           "samples": 4, "temperature": 1.0})
    assert read_cached(sampled, job)["pass_rate"] == [1.0, 0.5]


def test_decider_and_label_settings_are_validated():
    assert parse_args(["--decider=router"]).decider == "router"
    for bad in (["--decider=votes"], ["--label_rule=pass_rate"], ["--label_samples=-1"], ["--label_delta=1.5"],
                ["--label_temperature=0"], ["--mode_threshold=1"], ["--mode_token_weight=-1"],
                ["--mechanism=pre", "--decider=mode_token"]):
        with pytest.raises(ConfigError):
            parse_args(bad)


# ------------------------------------------------------------------------------------------- whole runs

def test_tiny_runs_of_the_other_deciders(tmp_path):
    """End to end: a mode-token run and a router run (which trains the pre and post baselines it routes to)
    reuse one run's fold evidence and write their ATM row; a sampled-label run writes pass rates and labels."""
    import train as T
    base = tmp_path / "base"
    T.main(tiny_args(base, "--label_samples=2", "--label_rule=pass_rate", "--label_delta=0.5", "--baselines=false"))
    labels = json.loads((base / "labels.json").read_text())
    for v in labels.values():
        pre, post = v["pre_rate"], v["post_rate"]
        want = "pre" if pre == post == 0 else "post" if post >= pre - 0.5 else "pre"
        assert v["label"] == want
    for decider in ("mode_token", "router"):
        out = tmp_path / decider
        T.main(tiny_args(out, f"--decider={decider}", f"--evidence_from={base}", "--baselines=false",
                         "--label_samples=2", "--label_rule=pass_rate", "--label_delta=0.5"))
        res = json.loads((out / "results.json").read_text())
        assert res["atm"]["n"] == 16 and (out / "labels.json").read_text() == (base / "labels.json").read_text()
        preds = [json.loads(line) for line in (out / "predictions_atm.jsonl").read_text().splitlines()]
        assert all(0 <= r["p_post"] <= 1 for r in preds)
    assert set(json.loads((tmp_path / "router" / "results.json").read_text())) >= {"pre", "post", "atm", "oracle"}
    # what each deploys (compare.py): the student alone; the router and the two students it routes to
    from atm_min.machinery.compare import deciders_table, parameters
    student = parameters(str(tmp_path / "mode_token"))
    cfg = parse_args(tiny_args(tmp_path))
    router = sum(p.numel() for p in Router(TOK.vocab_size, cfg.n_embd, cfg.n_prefix, cfg.perc_layers,
                                           cfg.perc_heads).parameters())
    assert student == sum(p.numel() for p in GPT(GPTConfig(block_size=cfg.block_size, vocab_size=257, n_layer=1,
                                                           n_head=2, n_embd=32)).parameters())
    assert parameters(str(tmp_path / "router")) == router + 2 * student
    table = deciders_table({d: [str(tmp_path / d)] for d in ("mode_token", "router")})
    assert f"| {router + 2 * student:,} |" in table and f"| {student:,} |" in table

"""The accuracy / cost curve of an ATM student (variants/threshold_curve.py threshold_sweep, results.json
atm.tradeoff): one point per threshold on p(answer first), no retraining; its two ends are the same student's forced modes, as sample.py
--mode pre / --mode post give them on the test file."""

import json
import re
from pathlib import Path

import pytest

import sample
from atm_min.evaluate import Answering, generate_answers, summarize
from atm_min.variants.threshold_curve import SWEEP, threshold_sweep
from atm_min.machinery.checkpoint import load_checkpoint, saved_config
from atm_min.machinery.choose import learner_from_checkpoint
from atm_min.machinery.data import load_examples, write_examples
from atm_min.machinery.hf import get_tokenizer


def rec(p, mode, correct, tokens):
    return dict(id="q", group="g", text="", mode=mode, correct=correct, new_tokens=tokens, p_post=p)


def test_sweep_answers_first_where_p_is_above_the_threshold():
    ps = [0.0, 0.05, 0.3, 0.5, 0.51, 0.97, 1.0]
    pre = [rec(p, "pre", True, 40) for p in ps]
    post = [rec(p, "post", i % 2 == 0, 10) for i, p in enumerate(ps)]  # right on questions 0, 2, 4, 6
    points = {pt["threshold"]: pt for pt in threshold_sweep(pre, post)}
    assert len(points) >= 11 and set(points) == set(SWEEP)
    # the ends: every question answered first / none (p = 0.0 and p = 1.0 included)
    assert points[-1.0] == dict(threshold=-1.0, accuracy=4 / 7, tokens=10.0, post_rate=1.0)
    assert points[1.0] == dict(threshold=1.0, accuracy=1.0, tokens=40.0, post_rate=0.0)
    # t = 0.5: answer first exactly where p > 0.5 (hard routing's rule): 0.51, 0.97, 1.0
    assert points[0.5]["post_rate"] == 3 / 7 and points[0.5]["tokens"] == (4 * 40 + 3 * 10) / 7
    assert points[0.5]["accuracy"] == (4 + 2) / 7  # the 4 thought through, and 2 of the 3 answered first
    rates = [pt["post_rate"] for pt in threshold_sweep(pre, post)]
    assert rates == sorted(rates, reverse=True)  # a higher threshold never answers more questions first


@pytest.fixture
def run(atm_run):
    """A tiny trained ATM student; its labels (label_default=post, unsure fold students) make it answer first
    (conftest's atm_run: 12 test questions, answered in batches of 64)."""
    return Path(atm_run)


def sample_table(capsys, *argv):
    """sample.py's scored run on a .jsonl file: (right, n, ALL row's tokens per question)."""
    capsys.readouterr()
    assert sample.cli([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    right, n = map(int, re.search(r"^accuracy: (\d+)/(\d+) = ", out, re.M).groups())
    tokens = float(re.search(r"^ALL\s+[\d.]+\s+\d+%\s+([\d.]+)$", out, re.M).group(1))
    return right, n, tokens


def test_the_curve_ends_are_the_forced_modes_of_sample_py(run, tmp_path, capsys):
    results = json.loads((run / "results.json").read_text())
    curve = results["atm"]["tradeoff"]
    assert len(curve) >= 11 and [pt["threshold"] for pt in curve] == sorted(pt["threshold"] for pt in curve)
    assert set(curve[0]) == {"threshold", "accuracy", "tokens", "post_rate"}
    always_answer, always_think = curve[0], curve[-1]
    assert always_answer["post_rate"] == 1.0 and always_think["post_rate"] == 0.0

    # the test questions the run answered (max_test: the first 12), as a file for sample.py
    answered = [json.loads(line)["id"] for line in (run / "predictions_atm.jsonl").read_text().splitlines()]
    test = load_examples(str(run / "synth_0" / "test.jsonl"))[:len(answered)]
    assert [ex.id for ex in test] == answered
    path = tmp_path / "answered.jsonl"
    write_examples(str(path), test)
    for end, mode in ((always_think, "pre"), (always_answer, "post")):
        right, n, tokens = sample_table(capsys, "--out_dir", run, "--file", path, "--mode", mode,
                                        "--batch_size", 64)
        assert n == len(test) and right / n == end["accuracy"], mode
        assert tokens == round(end["tokens"], 1), mode

    # and exactly (tokens unrounded): the same student, forced, through generate_answers
    ck = load_checkpoint(str(run / "ckpt.pt"), map_location="cpu")
    learner = learner_from_checkpoint(ck, saved_config(ck)).eval()
    tok = get_tokenizer(ck["tokenizer"])
    for end, mode in ((always_think, "pre"), (always_answer, "post")):
        records = generate_answers(learner.student, tok, test, Answering("cpu", 64, 16), perception=learner.perception,
                                   force=mode)
        s = summarize(records, 0.0)
        assert (s["accuracy"], s["avg_new_tokens"], s["post_fraction"]) == \
            (end["accuracy"], end["tokens"], end["post_rate"]), mode
    # the two ends differ here (thinking first costs more tokens), so the test can tell them apart
    assert always_think["tokens"] > always_answer["tokens"]

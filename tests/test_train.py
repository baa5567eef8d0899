"""train.py end to end on tiny students: exact resume, failure modes, the ATM pipeline's outputs (DDP: test_ddp.py).

Everything runs on the CPU in float32 with one thread: the students are so small that threads only add overhead.
"""

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest
from tiny import assert_same_state, copy_run, tiny_args
import torch

import sample
import train as T
from atm_min.evaluate import post_probabilities
from atm_min.labels import answer_first_confidence, label
from data.synth import is_trap
from atm_min.machinery.checkpoint import CheckpointError, load_checkpoint
from atm_min.machinery.config import ConfigError, parse_args
from atm_min.learner import Learner
from atm_min.machinery.runs import build_student
from atm_min.tokenizer import byte_tokenizer
from atm_min.machinery import runtime
from atm_min.machinery import data as mdata
from atm_min.machinery import runs
from atm_min.machinery import errors

TOK = byte_tokenizer()
STAT_KEYS = {"accuracy", "n", "post_fraction", "avg_new_tokens"}


def tiny(out_dir, *extra):
    return parse_args(tiny_args(out_dir, *extra))


# ------------------------------------------------------------------------------------------------- resume

@pytest.mark.parametrize("how,order", [("interrupt", "default"), ("crash", "default"), ("interrupt", "length")])
def test_resume_gives_identical_weights_and_optimizer(tmp_path, data_dir, how, order):
    """N steps straight == K steps, a stop, then a resumed run to N: bit for bit, weights and AdamW moments.
    Dropout is on, so this also checks that the RNG state is saved and restored (the data order needs only the
    step number, with --length_batches too). "interrupt": Ctrl-C, which train_run answers by saving; "crash": a
    hard failure after a periodic save, which is all a crash leaves behind."""
    N, K = 9, 4
    extra = ["--dropout=0.1", f"--data_dir={data_dir}", f"--length_batches={order == 'length'}"]
    if how == "crash":
        extra.append("--save_interval_s=0")  # save after every step
    cfg = tiny(tmp_path, *extra)
    train, _, _ = mdata.load_data(cfg, TOK)
    modes = ["pre", "post"] * (len(train) // 2) + ["pre"] * (len(train) % 2)

    def run(cfg, path, **kw):
        rt = runtime.setup(cfg)  # seeds torch: the same initial weights for both runs
        return runs.train_run(cfg, rt, TOK, train, modes, str(path), atm=True, iters=N, seed=5, **kw)

    run(cfg, tmp_path / "straight.pt")

    def stop(it):
        if it == K:
            raise KeyboardInterrupt if how == "interrupt" else RuntimeError("simulated crash")

    stopped = tmp_path / "stopped.pt"
    with pytest.raises(KeyboardInterrupt if how == "interrupt" else RuntimeError):
        run(cfg, stopped, on_step=stop)
    ck = load_checkpoint(str(stopped))
    assert ck["iter"] == K and ck["done"] is False

    torch.manual_seed(12345)  # whatever the RNG holds now, the checkpoint's RNG state must win
    run(dataclasses.replace(cfg, resume=True), stopped)

    a, b = load_checkpoint(str(tmp_path / "straight.pt")), load_checkpoint(str(stopped))
    assert a["iter"] == b["iter"] == N and a["done"] and b["done"]
    assert_same_state(a["learner"], b["learner"], where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], where="optimizer")
    # and the run did train: the weights moved from their initial values
    init = Learner(build_student(cfg, TOK.vocab_size), None).state_dict()
    assert not torch.equal(init["student.lm_head.weight"], a["learner"]["student.lm_head.weight"])


def test_resume_without_a_checkpoint_starts_fresh(tmp_path, data_dir, capsys):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--resume")
    train, _, _ = mdata.load_data(cfg, TOK)
    runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(tmp_path / "c.pt"), iters=3)
    assert load_checkpoint(str(tmp_path / "c.pt"))["iter"] == 3
    assert "resumed" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- failures

def poison_loss_after(monkeypatch, n_good):
    """Make the loss NaN from the (n_good+1)-th forward on: a deterministic divergence."""
    real, calls = Learner.forward, [0]

    def forward(self, *a, **kw):
        calls[0] += 1
        loss, lm_loss, aux = real(self, *a, **kw)
        return (loss * float("nan") if calls[0] > n_good else loss), lm_loss, aux

    monkeypatch.setattr(Learner, "forward", forward)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--save_interval_s=0")
    train, _, _ = mdata.load_data(cfg, TOK)
    path = str(tmp_path / "ckpt.pt")
    poison_loss_after(monkeypatch, 4)
    with pytest.raises(errors.TrainingError, match=r"nan at step 4.*kept at") as e:
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["post"] * len(train), path, atm=True)
    assert path in str(e.value)
    ck = load_checkpoint(path)  # the checkpoint of step 4, untouched by the NaN step
    assert ck["iter"] == 4 and not ck["done"]
    assert all(torch.isfinite(v).all() for v in ck["learner"].values())
    # and training can go on from it once the cause is fixed (here: the poison removed)
    monkeypatch.undo()
    runs.train_run(dataclasses.replace(cfg, resume=True), runtime.setup(cfg), TOK, train, ["post"] * len(train), path,
                atm=True)
    assert load_checkpoint(path)["iter"] == cfg.max_iters


def test_nonfinite_loss_before_any_save_says_so(tmp_path, data_dir, monkeypatch):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}")  # save_interval_s=60: nothing saved in a few steps
    train, _, _ = mdata.load_data(cfg, TOK)
    path = str(tmp_path / "ckpt.pt")
    poison_loss_after(monkeypatch, 2)
    with pytest.raises(errors.TrainingError, match="no checkpoint") as e:
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), path)
    assert "kept at" not in str(e.value)
    assert not os.path.exists(path)


class RunsCode:
    """A pickle that would run a shell command on load."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, data_dir):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--resume")
    train, _, _ = mdata.load_data(cfg, TOK)
    flag, path = tmp_path / "pwned", tmp_path / "ckpt.pt"
    torch.save({"learner": RunsCode(str(flag)), "iter": 3}, str(path))
    with pytest.raises(CheckpointError, match="refused"):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    with pytest.raises(CheckpointError, match="refused"):  # the "finished earlier" path reads it the same way
        runs.trained(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    assert not flag.exists()
    with open(path, "wb") as f:  # a bare pickle (not torch's zip format) as well
        pickle.dump({"learner": RunsCode(str(flag))}, f)
    with pytest.raises(CheckpointError):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    assert not flag.exists()


def test_unknown_setting_is_a_config_error():
    """The command line's side (one `error:` line naming the setting and the nearest real one, exit status 1,
    nothing written) is a case of test_errors.py's sweep, as are malformed rows in a data file."""
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_args(["--max_iter=3"])


# ------------------------------------------------------------------------------------------------- pipeline

def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def counted(records) -> dict:
    """What results.json must say of these records, counted here: overall, and by group at both levels (a
    "multistep/3" question counts under "multistep/3" and under "multistep")."""
    def stats(rs):
        n = len(rs)
        return {"accuracy": sum(r["correct"] for r in rs) / n, "n": n,
                "post_fraction": sum(r["mode"] == "post" for r in rs) / n,
                "avg_new_tokens": sum(r["new_tokens"] for r in rs) / n}

    levels = {lvl for r in records for lvl in (r["group"].split("/")[0], r["group"])}
    by_group = {g: stats([r for r in records if g in (r["group"].split("/")[0], r["group"])]) for g in levels}
    return {**stats(records), "by_group": by_group}


def test_results_are_the_counts_of_the_predictions(atm_run, pre_run):
    """The trained students (conftest's atm_run, pre_run; tiny_run's students all think first) answer in either
    mode, with answers of other lengths: their results.json rows are what their prediction files give when
    counted here."""
    modes = {}
    for run, mech in ((Path(atm_run), "atm"), (Path(pre_run), "pre")):
        results = json.loads((run / "results.json").read_text())
        recs = read_jsonl(run / f"predictions_{mech}.jsonl")
        assert {k: v for k, v in results[mech].items() if k in STAT_KEYS | {"by_group"}} == counted(recs)
        modes[mech] = {r["mode"] for r in recs}
    assert modes == {"atm": {"post"}, "pre": {"pre"}}


def test_atm_pipeline_end_to_end_and_resume(tiny_run, data_dir, tmp_path, capsys):
    """--mechanism atm (tiny_run): k-fold labels, the ATM student and the three baselines; every number in
    results.json is the one its prediction files, labels and checkpoints give when counted here. Then a rerun
    with --resume (in a copy) reuses every finished piece instead of training again."""
    assert "k-fold labels:" in tiny_run.stdout and "wrote" in tiny_run.stdout
    out = tiny_run.out
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"pre", "post", "answer", "atm", "oracle", "random", "run"}
    assert results["run"]["command"] == " ".join(["python train.py", *tiny_run.argv])
    assert results["run"]["wall_time_s"] > 0
    cfg = parse_args(list(tiny_run.argv))
    train, test, _ = mdata.load_data(cfg, TOK)
    # the parity traps the training data leave open (none of them reaches the training data): reported apart
    assert not any(is_trap(ex.question) for ex in train)
    is_open = [is_trap(ex.question) for ex in test]
    assert 0 < sum(is_open) < 16
    for mech, r in results.items():
        extra = {"label_agreement", "label_counts", "test_oracle_agreement", "tradeoff"} if mech == "atm" else set()
        assert mech == "run" or set(r) == STAT_KEYS | {"ms_per_question", "by_group", "decided", "traps"} | extra

    def assert_rows(got, records, post_fraction=None):
        """got (a results.json row) holds the counts of records: overall and by group, and apart the questions
        the training data decide and the open traps. post_fraction: the random router's, set by construction."""
        decided = [r for r, o in zip(records, is_open) if not o]
        traps = [r for r, o in zip(records, is_open) if o]
        for row, recs in ((got, records), (got["decided"], decided), (got["traps"], traps)):
            want = counted(recs)
            if row is got["traps"]:
                del want["by_group"]
            for stats in [want, *want.get("by_group", {}).values()]:
                if post_fraction is not None:
                    stats["post_fraction"] = post_fraction
            assert set(row.get("by_group", {})) == set(want.get("by_group", {}))
            for g, stats in [("ALL", want), *want.get("by_group", {}).items()]:
                have = row if g == "ALL" else row["by_group"][g]
                assert {k: have[k] for k in STAT_KEYS} == pytest.approx({k: stats[k] for k in STAT_KEYS},
                                                                        abs=1e-12), g

    preds = {m: read_jsonl(out / f"predictions_{m}.jsonl") for m in ("pre", "post", "answer", "atm")}
    for mech, recs in preds.items():
        assert [r["id"] for r in recs] == [ex.id for ex in test]
        assert_rows(results[mech], recs)
        assert results[mech]["ms_per_question"] > 0
    assert {"multistep", "direct"} <= set(results["atm"]["by_group"]) and "multistep/1" in results["atm"]["by_group"]
    # the reference rows, from the pre and post predictions: the oracle takes the cheaper right one of the two
    # (the cheaper one when neither is right); the random router's expected values at ATM's answer-first rate
    oracle = [min([r for r in ab if r["correct"]] or ab, key=lambda r: r["new_tokens"])
              for ab in zip(preds["pre"], preds["post"])]
    assert_rows(results["oracle"], oracle)
    rate = results["atm"]["post_fraction"]
    mixed = [{"group": a["group"], "mode": None, "correct": rate * b["correct"] + (1 - rate) * a["correct"],
              "new_tokens": rate * b["new_tokens"] + (1 - rate) * a["new_tokens"]}
             for a, b in zip(preds["pre"], preds["post"])]
    assert_rows(results["random"], mixed, post_fraction=rate)
    assert results["oracle"]["ms_per_question"] == results["random"]["ms_per_question"] == 0.0

    # the labels: one per training question, from the fold students' evidence; their counts
    labels = json.loads((out / "labels.json").read_text())
    assert list(labels) == [ex.id for ex in train] and len(train) == 48
    folds = {f.name: json.loads(f.read_text()) for f in (out / "folds").glob("fold*.json")}
    assert sorted(folds) == ["fold0_post.json", "fold0_pre.json", "fold1_post.json", "fold1_pre.json"]
    for mode in ("pre", "post"):
        ok = {i: c for k in (0, 1) for i, c in zip(folds[f"fold{k}_{mode}.json"]["held_out"],
                                                     folds[f"fold{k}_{mode}.json"]["correct"])}
        assert sorted(ok) == list(range(48))  # every question held out by exactly one fold
        assert [labels[ex.id][f"{mode}_ok"] for ex in train] == [ok[i] for i in range(48)]
    for ex in train:
        v = labels[ex.id]
        assert v["label"] == label(v["pre_ok"], v["post_ok"], v["p_gold"], cfg.post_confidence, cfg.label_default)
    kinds = ["both" if v["pre_ok"] and v["post_ok"] else "pre_only" if v["pre_ok"] else "post_only"
             if v["post_ok"] else "neither" for v in labels.values()]
    counts = results["atm"]["label_counts"]
    assert counts["ALL"] == {"n": 48, **{k: kinds.count(k) for k in ("pre_only", "post_only", "both", "neither")},
                             "label_post": sum(v["label"] == "post" for v in labels.values())}
    assert counts["direct"]["n"] == sum(ex.group.startswith("direct") for ex in train)
    # the perception's agreement with the training labels, and with the test set's labels from the baselines
    student, perception, tok, _ = sample.load_model(str(out / "ckpt.pt"), "cpu")
    p_train = post_probabilities(student, perception, tok, train, "cpu")
    agree = sum((p > 0.5) == (labels[ex.id]["label"] == "post") for p, ex in zip(p_train, train)) / 48
    assert results["atm"]["label_agreement"] == agree
    post_student, _, _, _ = sample.load_model(str(out / "baseline_post.pt"), "cpu")
    p_gold = answer_first_confidence(post_student, tok, test, "cpu")
    test_labels = [label(a["correct"], b["correct"], c, cfg.post_confidence, cfg.label_default)
                   for a, b, c in zip(preds["pre"], preds["post"], p_gold)]
    agree = sum((r["p_post"] > 0.5) == (lab == "post") for r, lab in zip(preds["atm"], test_labels)) / 16
    assert results["atm"]["test_oracle_agreement"] == agree
    for name in ("ckpt.pt", "baseline_pre.pt", "baseline_post.pt", "baseline_answer.pt"):
        assert load_checkpoint(str(out / name))["done"]
    assert load_checkpoint(str(out / "ckpt.pt"))["atm"] is True
    assert not list((out / "folds").glob("*.pt"))  # fold students are deleted once their labels are cached

    # --resume in a copy: every student is loaded, no fold student retrained; the same answers
    run = copy_run(tiny_run, tmp_path / "run")
    caches = sorted((run / "folds").glob("fold*.json"))
    mtimes = [c.stat().st_mtime_ns for c in caches]
    argv = [f"--out_dir={run}", *tiny_run.argv[1:]]
    capsys.readouterr()
    T.main([*argv, "--resume"])
    again = capsys.readouterr().out
    assert again.count("finished earlier") == 4 and again.count("evidence cached") == 4  # pre, post, answer, atm
    assert "held-out questions" not in again
    assert [c.stat().st_mtime_ns for c in caches] == mtimes  # the fold caches were read, not rewritten
    assert json.loads((run / "labels.json").read_text()) == labels
    rerun = json.loads((run / "results.json").read_text())
    for mech in set(results) - {"run"}:  # greedy decoding of the same weights: the same answers
        rerun[mech].pop("ms_per_question")
        assert rerun[mech] == {k: v for k, v in results[mech].items() if k != "ms_per_question"}, mech

    T.main([*argv, "--resume", "--baselines=false"])
    assert json.loads((run / "results.json").read_text()).keys() == {"atm", "run"}

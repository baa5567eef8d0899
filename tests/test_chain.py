"""The chain-break experiment's machinery: task labels (--label_source=task), the perception's
own learning rate (--perc_lr_mult) and the perception scored on training questions it did not train on
(--atm_holdout)."""

import dataclasses
import json

import pytest
import torch
from tiny import tiny_args, variant_perception

import train as T
from atm_min.batches import encode_items
from atm_min.learner import Learner
from atm_min.machinery import choose, errors, runtime
from atm_min.machinery.config import parse_args
from atm_min.machinery.data import Example, load_data
from atm_min.model import GPT, GPTConfig
from atm_min.tokenizer import byte_tokenizer
from atm_min.training import Steps, lr_at, train
from atm_min.variants.task_labels import better_mode, task_labels

TOK = byte_tokenizer()


def two_tasks():
    """Ten training questions: five of task "coin" (groups coin/1, coin/2), five of "sqa"; the fold evidence puts
    pre ahead on coin (3 right against 2) and ties sqa (2 against 2)."""
    groups = ["coin/1", "coin/2", "coin/1", "coin/2", "coin/1", "sqa", "sqa", "sqa", "sqa", "sqa"]
    pre_ok = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    post_ok = [0, 0, 1, 1, 0, 0, 0, 1, 1, 0]
    rows = [{"pre_ok": bool(a), "post_ok": bool(b), "p_gold": 0.95 if b else 0.1} for a, b in zip(pre_ok, post_ok)]
    train = [Example(id=f"t{i}", question=f"Is {i} odd?", rationale=f"{i} ends in {i}.", answer="yes" if i % 2 else "no",
                     answer_type="yesno", group=g) for i, g in enumerate(groups)]
    return train, rows


def test_task_labels_give_each_question_its_tasks_better_mode_by_hand():
    train, rows = two_tasks()
    # coin: pre 3, post 2 -> pre; sqa: pre 2, post 2, a tie -> post, the cheaper
    assert task_labels([ex.group for ex in train], rows) == ["pre"] * 5 + ["post"] * 5
    assert better_mode(3, 2) == "pre" and better_mode(2, 2) == "post" and better_mode(0, 1) == "post"
    assert task_labels([None, None, "x"], [{"pre_ok": True, "post_ok": False}] * 2 + [{"pre_ok": 0, "post_ok": 1}]) \
        == ["pre", "pre", "post"]  # questions without a group are one task of their own


def test_task_label_source_labels_by_task_and_keeps_the_evidence(tmp_path):
    train, rows = two_tasks()
    cfg = parse_args(tiny_args(tmp_path))
    kfold, counts = T.kfold_labels(cfg, train, rows, choose.design(cfg), show=False)
    task_cfg = dataclasses.replace(cfg, label_source="task")
    task, counts_t = T.kfold_labels(task_cfg, train, rows, choose.design(task_cfg), show=False)
    assert task == ["pre"] * 5 + ["post"] * 5 and task != kfold
    assert counts == counts_t  # the same evidence; only the labels are the task's
    saved = json.loads((tmp_path / "labels.json").read_text())
    assert [saved[ex.id]["label"] for ex in train] == task  # what the ATM student trains on
    assert [saved[ex.id]["pre_ok"] for ex in train] == [r["pre_ok"] for r in rows]


def tiny_learner():
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=128, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32))
    return Learner(student, variant_perception(32, n_prefix=2, n_layer=1, n_head=2), aux_weight=1.0)


def test_perc_lr_mult_gives_the_perception_its_own_groups_at_that_multiple(tmp_path):
    cfg = parse_args(tiny_args(tmp_path, "--perc_lr_mult=4", "--warmup_iters=1", "--weight_decay=0"))
    lrn = tiny_learner()
    opt = choose.optimizer(cfg, lrn, "cpu")
    own = {id(p) for p in lrn.perception.parameters()}
    assert [g.get("lr_mult", 1.0) for g in opt.param_groups] == [1.0, 1.0, 4.0, 4.0]
    assert all((id(p) in own) == ("lr_mult" in g) for g in opt.param_groups for p in g["params"])
    before = {n: p.detach().clone() for n, p in lrn.named_parameters()}
    exs = [Example(f"e{i}", f"Is {i} odd?", f"It ends in {i}.", "yes" if i % 2 else "no", "yesno") for i in range(8)]
    items = encode_items(TOK, exs, ["pre", "post"] * 4)
    train(lrn, opt, items, cfg, runtime.setup(cfg), Steps(1, seed=0))
    lr = lr_at(cfg, 0, 1)
    assert [g["lr"] for g in opt.param_groups] == [lr, lr, 4 * lr, 4 * lr]
    # Adam's first step moves every parameter with a gradient by lr (times sign): a value check of each group's lr
    for name, want in (("student.transformer.ln_f.bias", lr), ("perception.ln_f.bias", 4 * lr),
                       ("perception.mode_head.bias", 4 * lr)):
        step = (dict(lrn.named_parameters())[name] - before[name]).abs()
        assert torch.allclose(step[step > 0], torch.tensor(want), rtol=1e-3), name
    default = choose.optimizer(dataclasses.replace(cfg, perc_lr_mult=1.0), tiny_learner(), "cpu")
    assert len(default.param_groups) == 2 and not any("lr_mult" in g for g in default.param_groups)


def test_perc_lr_mult_and_atm_holdout_are_checked(tmp_path):
    with pytest.raises(errors.ConfigError, match="perc_lr_mult=0.0: expected a number > 0"):
        parse_args(tiny_args(tmp_path, "--perc_lr_mult=0"))
    with pytest.raises(errors.ConfigError, match="atm_holdout=4: expected 0 unless --mechanism=atm"):
        parse_args(tiny_args(tmp_path, "--atm_holdout=4", "--mechanism=pre"))
    cfg = parse_args(tiny_args(tmp_path, "--atm_holdout=10"))
    with pytest.raises(errors.ConfigError, match="atm_holdout=10: expected fewer than the 10 training questions"):
        T.atm_holdout(cfg, 10)


def test_holdout_check_by_hand():
    p = [0.9, 0.2, 0.6, 0.6]
    kfold = ["post", "pre", "pre", "post"]  # positives 0.9, 0.6 against negatives 0.2, 0.6: 1 + 1 + 1 + 1/2 of 4
    h = T.holdout_check(p, kfold, own=["post"] * 4)
    assert h["n"] == 4 and h["auc"] == pytest.approx(0.875) and h["agreement"] == 0.75  # p = 0.6 > 0.5 for "pre"
    assert (h["p_min"], h["p_max"]) == (0.2, 0.9) and h["p_std"] == pytest.approx(torch.tensor(p).std(False).item())
    assert h["auc_own"] is None and h["agreement_own"] == 0.75  # one label only: no AUC
    assert "auc_own" not in T.holdout_check(p, kfold)


@pytest.mark.parametrize("source", ["kfold", "random", "task"])
def test_holdout_questions_stay_out_of_the_atm_students_training(tmp_path, data_dir, tiny_run, monkeypatch, source):
    """Each label source on a finished run's fold evidence (--evidence_from, --baselines=false), with 8 questions
    held out of the ATM student's training: it never sees them, and results.json scores its perception on them."""
    seen = {}
    original = T.trained

    def recording(cfg, job, examples, *a, **kw):
        seen[job.name] = [ex.id for ex in examples]
        return original(cfg, job, examples, *a, **kw)

    monkeypatch.setattr(T, "trained", recording)
    out = tmp_path / source
    T.main(tiny_args(out, f"--data_dir={data_dir}", "--baselines=false", f"--evidence_from={tiny_run.out}",
                     f"--label_source={source}", "--atm_holdout=8", "--perc_lr_mult=3"))
    labels = json.loads((out / "labels.json").read_text())
    held = {list(labels)[i] for i in T.atm_holdout(parse_args(tiny_args(out, "--atm_holdout=8")), len(labels))}
    assert len(held) == 8 and set(seen["atm"]) == set(labels) - held  # every other training question, once
    assert len(seen["atm"]) == len(labels) - 8 and list(seen) == ["atm"]  # no fold student, no baseline trained
    h = json.loads((out / "results.json").read_text())["atm"]["holdout"]
    assert h["n"] == 8 and 0 <= h["agreement"] <= 1 and h["p_min"] <= h["p_max"]
    assert ("auc_own" in h) == (source != "kfold")
    first = json.loads((tiny_run.out / "labels.json").read_text())
    if source == "task":  # the rule above, on the reused evidence
        train_set, _, _ = load_data(parse_args(tiny_args(out, f"--data_dir={data_dir}")), TOK)
        want = task_labels([ex.group for ex in train_set], [first[ex.id] for ex in train_set])
        assert [labels[ex.id]["label"] for ex in train_set] == want
    assert [(e["pre_ok"], e["post_ok"]) for e in labels.values()] == [(e["pre_ok"], e["post_ok"])
                                                                      for e in first.values()]


def test_the_default_run_records_no_holdout(tiny_run):
    atm = json.loads((tiny_run.out / "results.json").read_text())["atm"]
    assert "holdout" not in atm and "held-out training questions" not in tiny_run.stdout


def test_resuming_with_another_perc_lr_mult_is_one_checkpoint_error(tmp_path, data_dir):
    """A checkpoint's optimizer has the perception's groups or not: resuming it with perc_lr_mult moved between 1
    and another value cannot load it, and says which setting to use."""
    from atm_min.machinery import data as mdata
    from atm_min.machinery import runs
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}", "--save_interval_s=0"))
    train_set, _, _ = mdata.load_data(cfg, TOK)

    def stop(it):
        if it == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train_set, ["post"] * len(train_set), str(tmp_path / "half.pt"),
                       atm=True, iters=4, on_step=stop, show=False)
    other = dataclasses.replace(cfg, resume=True, perc_lr_mult=2.0)
    with pytest.raises(errors.CheckpointError, match="resume with the perc_lr_mult it was trained with"):
        runs.train_run(other, runtime.setup(cfg), TOK, train_set, ["post"] * len(train_set), str(tmp_path / "half.pt"),
                       atm=True, iters=4, show=False)

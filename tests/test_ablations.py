"""The ablation settings do what they say: hard routing (no soft prompt; the classifier picks the mode), random
labels at the k-fold post rate, and a perception that sees only features or only tokens (the module itself is
tested in test_perception.py); plus the answer-only baseline's format."""

import dataclasses
import json

import pytest
from tiny import copy_run, tiny_args, variant_perception
import torch

import train as T
from atm_min.batches import collate, encode_items
from atm_min.machinery.config import parse_args
from atm_min.machinery.data import Example
from atm_min.formats import format_target
from atm_min.learner import Learner
from atm_min.model import GPT, GPTConfig

from atm_min.tokenizer import byte_tokenizer
from atm_min.machinery import choose, runtime
from atm_min.machinery.jobs import Job
from atm_min.machinery import runs
from atm_min import evaluate
from atm_min.machinery import errors

TOK = byte_tokenizer()


def examples(n=6):
    return [Example(id=f"e{i}", question=f"Start at {i}, apply i d: result?", rationale=f"Step by step: {i + 1}, "
                    f"{(2 * i + 2) % 10}.", answer=str((2 * i + 2) % 10), answer_type="number",
                    group="multistep/2") for i in range(n)]


def learner(routing):
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=128, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32))
    perception = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, routing=routing)
    with torch.no_grad():
        perception.out_proj.weight.normal_(0, 0.5)  # a soft prompt big enough to change the loss
    return Learner(student, perception, aux_weight=1.0)


def test_hard_routing_trains_the_student_without_a_soft_prompt():
    exs = examples()
    batch = collate(encode_items(TOK, exs, ["pre", "post"] * 3), "cpu")
    soft, hard = learner("soft"), learner("hard")
    _, lm_soft, aux_soft = soft(**batch)
    _, lm_hard, aux_hard = hard(**batch)
    _, plain = hard.student(batch["x"], batch["y"])  # the student alone, no prefix
    assert torch.equal(lm_hard, plain) and not torch.allclose(lm_soft, plain)
    assert torch.equal(aux_soft, aux_hard)  # the classifier still learns the labels
    lm_hard.backward()
    assert all(p.grad is None for p in hard.perception.parameters())  # no path from the LM loss to it


def test_hard_routing_evaluation_starts_each_question_with_the_classifiers_mode(tmp_path):
    cfg = parse_args(tiny_args(tmp_path, "--routing=hard"))
    lrn = learner("hard").eval()
    rt = runtime.setup(cfg)
    test = examples(8)
    p_post = evaluate.post_probabilities(lrn.student, lrn.perception, TOK, test, "cpu")
    # make the classifier split the questions: a bias that puts half above 0.5
    with torch.no_grad():
        lrn.perception.mode_head.bias -= torch.tensor(p_post).logit().median()
    p_post = evaluate.post_probabilities(lrn.student, lrn.perception, TOK, test, "cpu")
    assert any(p > 0.5 for p in p_post) and any(p <= 0.5 for p in p_post)
    records = choose.design(cfg).generate_answers(lrn, TOK, test, cfg, rt)
    for p, r in zip(p_post, records):
        assert r["text"].startswith("Answer:" if p > 0.5 else "Reasoning:")
        assert r["mode"] == ("post" if p > 0.5 else "pre")


def test_random_labels_keep_the_kfold_post_rate(tmp_path):
    train = examples(40)
    held = list(range(40))
    ev = {"fold 1/1 pre": {"held_out": held, "correct": [i % 3 > 0 for i in held], "p_gold": None},
          "fold 1/1 post": {"held_out": held, "correct": [i % 2 == 0 for i in held],
                            "p_gold": [0.95 if i % 4 == 0 else 0.6 for i in held]}}
    cfg = parse_args(tiny_args(tmp_path))
    folds = [Job(name, [], [name.split()[-1]], "", 0, held_out=held) for name in ev]
    rows = T.evidence_rows(len(train), folds, list(ev.values()))
    kfold, counts = T.kfold_labels(cfg, train, rows, choose.design(cfg))
    random_cfg = dataclasses.replace(cfg, label_source="random")
    rand, counts_r = T.kfold_labels(random_cfg, train, rows, choose.design(random_cfg))
    assert kfold.count("post") == rand.count("post") > 0 and kfold != rand
    assert counts == counts_r  # the evidence is the same; only the labels lost it
    # confident_post: both right but unsure -> pre; sure -> post; only post right -> post
    for i, lab in enumerate(kfold):
        pre_ok, post_ok, conf = i % 3 > 0, i % 2 == 0, 0.95 if i % 4 == 0 else 0.6
        want = "post" if post_ok and (conf >= 0.9 or not pre_ok) else "pre"
        assert lab == want, i
    saved = json.loads((tmp_path / "labels.json").read_text())
    assert [saved[ex.id]["label"] for ex in train] == rand  # what the ATM student trained on


def test_answer_only_format_has_no_rationale():
    ex = examples(1)[0]
    assert format_target(ex, "answer") == f"Answer: {ex.answer}"
    item = encode_items(TOK, [ex], ["answer"])[0]
    assert TOK.decode(item.x + [item.y[-1]]).endswith(f"Answer: {ex.answer}")
    assert item.y[-1] == TOK.eot_id


def test_ablation_settings_run_end_to_end(tmp_path, data_dir):
    out = tmp_path / "abl"
    T.main(tiny_args(out, f"--data_dir={data_dir}", "--routing=hard", "--perc_input=features",
                     "--label_source=random", "--baselines=false"))
    results = json.loads((out / "results.json").read_text())
    assert results["atm"]["n"] == 16
    preds = [json.loads(line) for line in (out / "predictions_atm.jsonl").read_text().splitlines()]
    assert all(r["text"].startswith(("Answer:", "Reasoning:")) for r in preds)  # hard routing forces a marker


def test_evidence_from_reuses_an_earlier_runs_fold_students(tmp_path, data_dir, tiny_run, capsys):
    first, second = tiny_run.out, tmp_path / "second"  # the earlier run is only read
    capsys.readouterr()
    T.main(tiny_args(second, f"--data_dir={data_dir}", "--baselines=false", f"--evidence_from={first}",
                     "--label_rule=prefer_pre"))
    out = capsys.readouterr().out
    assert out.count("evidence cached") == 4 and "right on" not in out  # no fold student was trained
    assert not (second / "folds").exists() or not list((second / "folds").glob("*"))
    a, b = (json.loads((d / "labels.json").read_text()) for d in (first, second))
    for k in a:  # the same evidence, another rule
        assert (a[k]["pre_ok"], a[k]["post_ok"]) == (b[k]["pre_ok"], b[k]["post_ok"])
        if a[k]["pre_ok"]:
            assert b[k]["label"] == "pre"
    with pytest.raises(errors.DataError, match="another split"):  # other settings, other folds: refused
        T.main(tiny_args(tmp_path / "third", f"--data_dir={data_dir}", "--baselines=false",
                         f"--evidence_from={first}", "--max_train=40"))


def test_resume_refuses_a_finished_run_of_another_shape(tmp_path, data_dir, tiny_pre_run):
    out = copy_run(tiny_pre_run, tmp_path / "run")
    ckpt = (out / "ckpt.pt").read_bytes()
    with pytest.raises(errors.CheckpointError, match="n_embd=32, now 48"):
        T.main(tiny_args(out, f"--data_dir={data_dir}", "--mechanism=pre", "--resume", "--n_embd=48"))
    assert (out / "ckpt.pt").read_bytes() == ckpt  # the finished run is left as it was


def test_gated_soft_prompt_carries_only_the_decision():
    torch.manual_seed(0)
    perc = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, soft_prompt="gated")
    with torch.no_grad():
        perc.mode_prompts.normal_(0, 1.0)
    q = torch.randn(4, 6, 32)
    mask = torch.ones(4, 6, dtype=torch.bool)
    prefix, logit = perc(q, mask, torch.randn(4, 3))
    w = torch.sigmoid(logit)[:, None, None]
    assert torch.allclose(prefix, (1 - w) * perc.mode_prompts[0] + w * perc.mode_prompts[1])
    # two questions the classifier scores alike get the same soft prompt, whatever else differs between them
    with torch.no_grad():
        perc.mode_head.weight.zero_()
    prefix, _ = perc(q, mask, torch.randn(4, 3))
    assert torch.allclose(prefix[0], prefix[1]) and torch.allclose(prefix[0], prefix[3])
    assert not hasattr(perc, "out_proj")


def test_gated_soft_prompt_lets_the_students_loss_train_the_classifier():
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=128, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32))
    perc = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, soft_prompt="gated")
    with torch.no_grad():
        perc.mode_prompts.normal_(0, 1.0)
    batch = collate(encode_items(TOK, examples(), ["pre", "post"] * 3), "cpu")
    _, lm, _ = Learner(student, perc, aux_weight=1.0)(**batch)
    lm.backward()
    assert perc.mode_head.weight.grad.abs().sum() > 0  # through the mixing weight
    assert perc.mode_prompts.grad.abs().sum() > 0


def test_gated_run_end_to_end_and_an_older_checkpoint_loads_as_free(tmp_path, data_dir, tiny_run):
    from atm_min.machinery.checkpoint import load_checkpoint
    from atm_min.machinery.checkpoint import saved_config
    from atm_min.machinery.choose import learner_from_checkpoint
    out = tmp_path / "gated"
    T.main(tiny_args(out, f"--data_dir={data_dir}", "--soft_prompt=gated", "--baselines=false"))
    ck = load_checkpoint(out / "ckpt.pt")
    assert ck["config"]["soft_prompt"] == "gated" and "perception.mode_prompts" in ck["learner"]
    assert learner_from_checkpoint(ck, saved_config(ck)).perception.prompt == "gated"
    free = copy_run(tiny_run, tmp_path / "free")  # soft_prompt="free", the default
    ck = load_checkpoint(free / "ckpt.pt")
    assert ck["config"]["soft_prompt"] == "free"
    del ck["config"]["soft_prompt"]  # as written before the setting existed
    assert getattr(learner_from_checkpoint(ck, saved_config(ck)).perception, "prompt", "free") == "free"
    # a finished older checkpoint is reused by a --resume run as the model it was, whatever --soft_prompt says
    torch.save(ck, free / "ckpt.pt")
    rt = runtime.setup(parse_args(tiny_args(free, "--resume", "--soft_prompt=gated")))
    _, perception = runs.load_finished(parse_args(tiny_args(free, "--resume", "--soft_prompt=gated")), rt, TOK,
                                    str(free / "ckpt.pt"))
    assert getattr(perception, "prompt", "free") == "free"


def test_label_soft_prompt_mixes_like_gated_but_only_the_labels_train_the_classifier():
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=128, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32))
    gated = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, soft_prompt="gated")
    label = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, soft_prompt="label")
    label.load_state_dict(gated.state_dict())
    with torch.no_grad():
        label.mode_prompts.normal_(0, 1.0)
        gated.mode_prompts.copy_(label.mode_prompts)
    batch = collate(encode_items(TOK, examples(), ["pre", "post"] * 3), "cpu")
    _, lm_g, aux_g = Learner(student, gated, aux_weight=1.0)(**batch)
    _, lm_l, aux_l = Learner(student, label, aux_weight=1.0)(**batch)
    assert torch.allclose(lm_g, lm_l) and torch.allclose(aux_g, aux_l)  # the same forward pass
    lm_l.backward()
    assert label.mode_head.weight.grad is None or label.mode_head.weight.grad.abs().sum() == 0
    assert label.mode_prompts.grad.abs().sum() > 0  # the student's loss still shapes the two prompts
    student.zero_grad()
    label.zero_grad()
    aux_l.backward()
    assert label.mode_head.weight.grad.abs().sum() > 0  # the labels train the classifier

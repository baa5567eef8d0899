"""--resume and what a checkpoint may be reused for: a checkpoint of another model is refused for EVERY setting that
decides the model (machinery/runs.py model_keys), whether the run finished or not -- also where the shapes would
fit (n_head, routing, tokenizer, ...) -- and a finished run of another budget (steps, lr, batch, ...) is refused
with a message that names the change (docs/running.md, "Checkpoints and resume")."""

import dataclasses

import pytest
from tiny import tiny_args

from atm_min.machinery import data as mdata
from atm_min.machinery import errors, runs, runtime
from atm_min.machinery.checkpoint import load_checkpoint
from atm_min.machinery.config import parse_args
from atm_min.tokenizer import byte_tokenizer

TOK = byte_tokenizer()

# Every setting that decides which model a checkpoint holds, with another valid value for the tiny run (written
# out here, not read from model_keys(), so that a key the code forgets fails this test).
OTHER_VALUE = {"bias": False, "block_size": 160, "init_from": "gpt2", "n_embd": 48, "n_head": 4, "n_layer": 2,
               "n_prefix": 3, "perc_heads": 4, "perc_input": "tokens", "perc_layers": 2, "routing": "hard",
               "soft_prompt": "gated", "tokenizer": "gpt2", "decider": "mode_token"}
OTHER_BUDGET = {"batch_size": 4, "grad_accum": 2, "length_batches": True, "lr": 1e-3, "min_lr": 1e-5,
                "warmup_iters": 3, "weight_decay": 0.0, "beta1": 0.8, "beta2": 0.95, "grad_clip": 0.5,
                "aux_weight": 0.5, "perc_lr_mult": 2.0, "dropout": 0.1, "freeze_student": True, "seed": 7}


def test_the_model_keys_are_all_listed_here():
    assert set(runs.model_keys()) == set(OTHER_VALUE)
    # a baseline (no perception, no decider): none of the ATM student's own settings decide its model, so a
    # router run may reuse the default run's pre and post baselines (docs/results.md)
    atm_only = {"n_prefix", "perc_heads", "perc_input", "perc_layers", "soft_prompt", "decider"}
    assert set(runs.model_keys(atm=False)) == set(OTHER_VALUE) - atm_only


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, data_dir):
    """An unfinished (2 of 4 steps) and a finished ATM checkpoint of the tiny run."""
    d = tmp_path_factory.mktemp("resume")
    cfg = parse_args(tiny_args(d, f"--data_dir={data_dir}", "--save_interval_s=0"))
    train, _, _ = mdata.load_data(cfg, TOK)

    def stop(it):
        if it == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["post"] * len(train), str(d / "half.pt"), atm=True,
                       iters=4, on_step=stop, show=False)
    runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["post"] * len(train), str(d / "done.pt"), atm=True,
                   show=False)
    assert not load_checkpoint(str(d / "half.pt"))["done"] and load_checkpoint(str(d / "done.pt"))["done"]
    return cfg, train, d


@pytest.mark.parametrize("key", sorted(OTHER_VALUE))
def test_resume_refuses_another_model_for_every_model_key(checkpoints, key):
    cfg, train, d = checkpoints
    other = dataclasses.replace(cfg, resume=True, **{key: OTHER_VALUE[key]})
    want = f"{key}={getattr(cfg, key)!r}, now {OTHER_VALUE[key]!r}"
    with pytest.raises(errors.CheckpointError, match="does not match the model asked for") as e:  # unfinished
        runs.train_run(other, runtime.setup(cfg), TOK, train, ["post"] * len(train), str(d / "half.pt"), atm=True,
                       iters=4, show=False)
    assert want in str(e.value) and "--out_dir" in str(e.value)
    with pytest.raises(errors.CheckpointError, match="does not match the model asked for") as e:  # finished
        runs.load_finished(other, runtime.setup(cfg), TOK, str(d / "done.pt"))
    assert want in str(e.value)


@pytest.mark.parametrize("key", sorted(OTHER_BUDGET))
def test_a_finished_run_of_another_budget_is_refused(checkpoints, key):
    cfg, train, d = checkpoints
    other = dataclasses.replace(cfg, resume=True, **{key: OTHER_BUDGET[key]})
    with pytest.raises(errors.CheckpointError, match="another training budget") as e:
        runs.load_finished(other, runtime.setup(cfg), TOK, str(d / "done.pt"))
    assert f"{key}={getattr(cfg, key)!r}, now {OTHER_BUDGET[key]!r}" in str(e.value)


def test_a_finished_run_of_other_steps_is_refused_and_of_the_same_reused(checkpoints):
    cfg, train, d = checkpoints
    again = dataclasses.replace(cfg, resume=True)
    with pytest.raises(errors.CheckpointError, match=f"steps={cfg.max_iters}, now 20"):
        runs.load_finished(dataclasses.replace(again, max_iters=20), runtime.setup(cfg), TOK, str(d / "done.pt"))
    with pytest.raises(errors.CheckpointError, match=f"steps={cfg.max_iters}, now 6"):  # a fold student's budget
        runs.trained(again, runtime.setup(cfg), TOK, train, ["post"] * len(train), str(d / "done.pt"), atm=True,
                     iters=6, show=False)
    student, perception = runs.load_finished(again, runtime.setup(cfg), TOK, str(d / "done.pt"))
    assert perception is not None
    # settings that change neither the model nor its training (evaluation, logging) do not matter
    runs.load_finished(dataclasses.replace(again, max_new_tokens=4, eval_batch_size=3, log_interval=1),
                       runtime.setup(cfg), TOK, str(d / "done.pt"))


def test_an_unfinished_run_resumes_with_a_new_budget(checkpoints, tmp_path):
    """Not finished: --resume continues it with the settings given now (say a longer run, or a lower lr), as
    nanoGPT does; only the model must be the same."""
    cfg, train, d = checkpoints
    (tmp_path / "half.pt").write_bytes((d / "half.pt").read_bytes())
    runs.train_run(dataclasses.replace(cfg, resume=True, lr=1e-3), runtime.setup(cfg), TOK, train,
                   ["post"] * len(train), str(tmp_path / "half.pt"), atm=True, iters=5, show=False)
    assert load_checkpoint(str(tmp_path / "half.pt"))["iter"] == 5

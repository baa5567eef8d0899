"""Tiny runs for the tests: students of one layer that train for a handful of steps (seconds for the whole ATM
pipeline). The fixtures built from these live in conftest.py; copy_run and assert_same_state help the tests that
change a shared run or compare two."""

import shutil

import torch

TINY = ["--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2", "--batch_size=8",
        "--max_iters=10", "--fold_iters=6", "--warmup_iters=2", "--max_train=48", "--max_test=16", "--folds=2",
        "--block_size=192", "--max_new_tokens=16", "--eval_batch_size=64", "--device=cpu", "--dtype=float32",
        "--num_threads=1", "--log_interval=5", "--workers=1"]

# Trained students that sample.py can question: 250 steps at a high lr teach a one-layer student the output
# format in a few seconds. Fold students that barely train label every question label_default, so the ATM
# student (trained with --label_default=post) learns to answer first.
TRAINED = ["--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2", "--batch_size=8",
           "--max_iters=250", "--fold_iters=2", "--warmup_iters=5", "--lr=1e-2", "--min_lr=1e-3", "--max_train=48",
           "--max_test=4", "--folds=2", "--block_size=192", "--max_new_tokens=16", "--device=cpu",
           "--dtype=float32", "--num_threads=1", "--baselines=false", "--workers=1"]


def tiny_args(out_dir, *extra):
    """train.py arguments of a tiny run into out_dir; later settings in `extra` win."""
    return [f"--out_dir={out_dir}", *TINY, *extra]


def copy_run(run, dest):
    """A copy of a shared run's out_dir (conftest.py's Run) at dest, for a test that changes it. A --resume in
    the copy goes on there: it finds its files under its own out_dir and compares only the settings of the model."""
    shutil.copytree(run.out, dest)
    return dest


def assert_same_state(a, b, exact=True, where="state"):
    """Recursive equality of two state dicts (tensors: torch.equal, or allclose when not exact)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), where
    if isinstance(a, torch.Tensor):
        ok = torch.equal(a, b) if exact else torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        assert ok, f"{where} differs (max abs diff {(a.float() - b.float()).abs().max().item():.3g})"
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_state(a[k], b[k], exact, f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, exact, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def variant_perception(n_embd, n_prefix=4, n_layer=1, n_head=4, perc_input="both", soft_prompt="free",
                       routing="soft"):
    """A perception module as a run with these settings builds it (machinery/choose.py build_perception: the
    core's Perception or a variant's)."""
    from types import SimpleNamespace

    from atm_min.machinery.choose import build_perception
    return build_perception(SimpleNamespace(perc_input=perc_input, soft_prompt=soft_prompt, routing=routing,
                                            n_prefix=n_prefix, perc_layers=n_layer, perc_heads=n_head), n_embd)

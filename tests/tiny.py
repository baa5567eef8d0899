"""Tiny runs for the tests: students of one layer that train for a handful of steps (seconds for the whole ATM
pipeline). The fixtures built from these live in conftest.py."""

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

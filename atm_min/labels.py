"""Adaptive-thinking labels from k-fold cross-validation.

Split the training set into k folds. For each fold, a pre-thinking and a post-thinking student are trained on the
other k-1 folds and answer the held-out fold. Each training question then gets a label from who was right:
the perception module learns to predict that label from the question alone.

The paper says only that labels come from which mechanism gets the held-out question right; the tie-breaking
rules below are our choice (TrainConfig.label_rule / label_default).
"""

from __future__ import annotations

import numpy as np

RULES = ("prefer_post", "prefer_pre")


def fold_ids(n: int, k: int, seed: int) -> list[int]:
    """Fold index (0..k-1) of each of n examples: a seeded shuffle dealt round-robin, so folds differ in size
    by at most one and every group is spread over every fold."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = [0] * n
    for rank, i in enumerate(perm.tolist()):
        folds[i] = rank % k
    return folds


def label(pre_ok: bool, post_ok: bool, rule: str = "prefer_post", default: str = "pre") -> str:
    """prefer_post: answering first is cheaper (it stops right after the answer), so when both are right, or only
    post is, answer first; think first only when pre alone is right. prefer_pre is the mirror image. When both
    fail, `default`: the question is hard either way and the label says how we would rather spend tokens."""
    if rule not in RULES:
        raise ValueError(f"unknown label rule {rule!r}: choose one of {RULES}")
    first, second = ("post", "pre") if rule == "prefer_post" else ("pre", "post")
    ok = {"pre": pre_ok, "post": post_ok}
    if ok[first]:
        return first
    if ok[second]:
        return second
    return default

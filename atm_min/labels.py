"""Adaptive-thinking labels from k-fold cross-validation.

Split the training set into k folds. For each fold, a pre-thinking and a post-thinking student are trained on the
other k-1 folds and answer the held-out fold. Each training question then gets a label from that evidence: the
perception module learns to predict the label from the question alone.

The paper says only that labels come from which mechanism gets the held-out question right; the rules below
(which mode wins when both are right, what "right" must mean for answering first, what to do when neither is
right) are our choices (TrainConfig.label_rule / post_confidence / label_default / label_source).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

RULES = ("confident_post", "prefer_post", "prefer_pre")


def fold_ids(n: int, k: int, seed: int) -> list[int]:
    """Fold index (0..k-1) of each of n examples: a seeded shuffle dealt round-robin, so folds differ in size
    by at most one and every group is spread over every fold."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = [0] * n
    for rank, i in enumerate(perm.tolist()):
        folds[i] = rank % k
    return folds


def label(pre_ok: bool, post_ok: bool, rule: str = "confident_post", default: str = "pre",
          post_conf: float | None = None, min_conf: float = 0.9) -> str:
    """The mode a training question should be answered in, from the held-out students' evidence.

    prefer_post: answering first is cheaper (it stops right after the answer), so when both are right, or only
    post is, answer first; think first only when pre alone is right. prefer_pre is the mirror image.
    confident_post (default): like prefer_post, but when pre is right too, answering first must also be *safe*:
    the post student's probability of the gold answer (post_conf, see evaluate.answer_first_confidence) must
    reach min_conf. A greedy answer that is right with probability 0.55 is a coin flip the ATM student would
    have to win again; a question where thinking first is reliably right should think first. Cost decides only
    between two safe options; risk decides otherwise.
    When both fail, `default`: the question is hard either way and the label says how we would rather spend tokens."""
    if rule not in RULES:
        raise ValueError(f"unknown label rule {rule!r}: choose one of {RULES}")
    if rule == "confident_post":
        if post_conf is None:
            raise ValueError("label_rule 'confident_post' needs the post student's confidence (post_conf)")
        if post_ok and (post_conf >= min_conf or not pre_ok):
            return "post"
        if pre_ok:
            return "pre"
        return default
    first, second = ("post", "pre") if rule == "prefer_post" else ("pre", "post")
    ok = {"pre": pre_ok, "post": post_ok}
    if ok[first]:
        return first
    if ok[second]:
        return second
    return default


def shuffled_labels(labels: list[str], seed: int) -> list[str]:
    """The same labels in a random order: the "random labels" ablation keeps the post rate, loses the evidence."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [labels[i] for i in perm.tolist()]


def evidence_counts(groups: list[str], pre_ok: list[bool], post_ok: list[bool], labels: list[str]) -> dict:
    """Per group (and "ALL"): how many questions only pre / only post / both / neither got right, and how many
    labels say post. "neither" is exactly the number of labels that came from label_default."""
    out = defaultdict(Counter)
    for g, a, b, lab in zip(groups, pre_ok, post_ok, labels):
        kind = "both" if a and b else "pre_only" if a else "post_only" if b else "neither"
        for key in {g, g.split("/")[0], "ALL"} if g else {"ALL"}:
            out[key][kind] += 1
            out[key]["n"] += 1
            out[key]["label_post"] += lab == "post"
    keys = ("n", "pre_only", "post_only", "both", "neither", "label_post")
    return {g: {k: c[k] for k in keys} for g, c in sorted(out.items())}


def format_label_counts(counts: dict) -> str:
    """evidence_counts as a plain-text table, one row per group."""
    cols = ("n", "pre_only", "post_only", "both", "neither", "label_post")
    head = f"{'k-fold evidence':<16}" + "".join(f"{c.replace('_', ' '):>11}" for c in cols)
    rows = [head, "-" * len(head)]
    for g, c in counts.items():
        if g != "ALL":
            rows.append(f"{g:<16}" + "".join(f"{c[k]:>11}" for k in cols))
    rows.append(f"{'ALL':<16}" + "".join(f"{counts['ALL'][k]:>11}" for k in cols))
    return "\n".join(rows)

"""k-fold assignment and the pre/post label rules."""

import math
from collections import Counter

import pytest

from atm_min.labels import evidence_counts, fold_ids, label
from atm_min.variants.label_rules import pass_rate, prefer
from atm_min.variants.random_labels import shuffled_labels


@pytest.mark.parametrize("n,k", [(10, 2), (11, 3), (100, 5), (4, 5), (1, 2)])
def test_fold_ids_balanced_and_covering(n, k):
    folds = fold_ids(n, k, seed=0)
    assert len(folds) == n and set(folds) <= set(range(k))
    sizes = Counter(folds)
    if n >= k:
        assert set(sizes) == set(range(k))  # every fold holds something to label
    counts = [sizes.get(f, 0) for f in range(k)]
    assert max(counts) - min(counts) <= 1


def test_fold_ids_deterministic_and_seeded():
    assert fold_ids(50, 5, 7) == fold_ids(50, 5, 7)
    assert fold_ids(50, 5, 7) != fold_ids(50, 5, 8)
    assert fold_ids(50, 5, 7) != [i % 5 for i in range(50)]  # shuffled, not dealt in file order


def test_fold_ids_spread_groups():
    """The file is often sorted by group; a shuffle before dealing puts each group into every fold."""
    n, k = 60, 3
    folds = fold_ids(n, k, seed=1)
    first_third = folds[:n // 3]  # e.g. all of one group
    assert set(first_third) == set(range(k))


# (pre_ok, post_ok) -> label
PREFER_POST = {(True, True): "post", (False, True): "post", (True, False): "pre"}
PREFER_PRE = {(True, True): "pre", (False, True): "post", (True, False): "pre"}


@pytest.mark.parametrize("default", ["pre", "post"])
def test_prefer_post_truth_table(default):
    for (pre_ok, post_ok), want in PREFER_POST.items():
        assert prefer("post", pre_ok, post_ok, default) == want
    assert prefer("post", False, False, default) == default  # neither right: the default decides


@pytest.mark.parametrize("default", ["pre", "post"])
def test_prefer_pre_truth_table(default):
    for (pre_ok, post_ok), want in PREFER_PRE.items():
        assert prefer("pre", pre_ok, post_ok, default) == want
    assert prefer("pre", False, False, default) == default


def test_confident_post_weighs_the_risk_of_answering_first():
    # both right: answer first only when the post student was sure of the gold answer
    assert label(True, True, 0.97) == "post"
    assert label(True, True, 0.55) == "pre"  # a lucky answer-first: think instead
    assert label(True, True, 0.55, post_confidence=0.5) == "post"
    # only one right: that one, however unsure
    assert label(False, True, 0.51) == "post"
    assert label(True, False, 0.01) == "pre"
    # neither: the default
    assert label(False, False, 0.3, default="post") == "post"
    assert label(False, False, 0.3, default="pre") == "pre"


def test_post_confidence_is_reached_at_the_threshold_itself():
    """The boundary: p_gold == post_confidence is confident enough ("reaches"), a hair below is not."""
    for t in (0.9, 0.6, 0.25):
        assert label(True, True, t, post_confidence=t) == "post"
        assert label(True, True, math.nextafter(t, 0), post_confidence=t) == "pre"
    assert label(True, True, 0.9) == "post"  # the default threshold, 0.9, at its boundary


def test_pass_rate_margin_boundary():
    """Answer first when post's pass rate >= pre's - delta: equal at the margin counts."""
    assert pass_rate(0.5, 0.5) == "post"  # as good: answer first
    assert pass_rate(0.5, 0.25, delta=0.25) == "post"  # exactly at the margin
    assert pass_rate(0.5, 0.24, delta=0.25) == "pre"
    assert pass_rate(0.5, math.nextafter(0.5, 0)) == "pre"
    assert pass_rate(0.0, 0.0, default="post") == "post" and pass_rate(0.0, 0.0) == "pre"


def test_shuffled_labels_keep_the_post_rate_not_the_order():
    labels = ["post"] * 30 + ["pre"] * 70
    shuffled = shuffled_labels(labels, seed=3)
    assert sorted(shuffled) == sorted(labels) and shuffled != labels
    assert shuffled == shuffled_labels(labels, seed=3)


def test_evidence_counts_per_group_and_level():
    groups = ["multistep/1", "multistep/1", "multistep/4", "direct/2"]
    pre_ok = [True, True, True, False]
    post_ok = [True, False, False, False]
    labels = ["post", "pre", "pre", "pre"]
    c = evidence_counts(groups, pre_ok, post_ok, labels)
    assert c["multistep/1"] == dict(n=2, pre_only=1, post_only=0, both=1, neither=0, label_post=1)
    assert c["multistep"]["n"] == 3 and c["multistep"]["pre_only"] == 2
    assert c["direct"]["neither"] == 1 and c["ALL"]["n"] == 4 and c["ALL"]["label_post"] == 1

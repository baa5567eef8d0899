"""k-fold assignment and the pre/post label rules."""

from collections import Counter

import pytest

from atm_min.labels import evidence_counts, shuffled_labels, fold_ids, label


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
        assert label(pre_ok, post_ok, "prefer_post", default) == want
    assert label(False, False, "prefer_post", default) == default  # neither right: the default decides


@pytest.mark.parametrize("default", ["pre", "post"])
def test_prefer_pre_truth_table(default):
    for (pre_ok, post_ok), want in PREFER_PRE.items():
        assert label(pre_ok, post_ok, "prefer_pre", default) == want
    assert label(False, False, "prefer_pre", default) == default


def test_label_defaults_and_unknown_rule():
    # confident_post unless told otherwise: it needs the post student's confidence
    assert label(True, True, p_gold=0.95) == "post" and label(False, True, p_gold=0.1) == "post"
    with pytest.raises(ValueError, match="p_gold"):
        label(True, True)
    with pytest.raises(ValueError, match="unknown label rule"):
        label(True, False, "prefer_cheap")


def test_confident_post_weighs_the_risk_of_answering_first():
    # both right: answer first only when the post student was sure of the gold answer
    assert label(True, True, "confident_post", p_gold=0.97) == "post"
    assert label(True, True, "confident_post", p_gold=0.55) == "pre"  # a lucky answer-first: think instead
    assert label(True, True, "confident_post", p_gold=0.55, min_conf=0.5) == "post"
    # only one right: that one, however unsure
    assert label(False, True, "confident_post", p_gold=0.51) == "post"
    assert label(True, False, "confident_post", p_gold=0.01) == "pre"
    # neither: the default
    assert label(False, False, "confident_post", "post", p_gold=0.3) == "post"
    assert label(False, False, "confident_post", "pre", p_gold=0.3) == "pre"


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

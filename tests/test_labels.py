"""k-fold assignment and the pre/post label rules."""

from collections import Counter

import pytest

from atm_min.labels import fold_ids, label


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
    assert label(True, True) == "post" and label(False, True) == "post"  # prefer_post unless told otherwise
    with pytest.raises(ValueError, match="unknown label rule"):
        label(True, False, "prefer_cheap")

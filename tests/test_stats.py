"""atm_min/machinery/stats.py on small cases computed by hand (each comment shows the computation), and its edge
cases: no questions is an error, all-concordant pairs give p = 1."""

import math

import pytest

from atm_min.machinery import stats as S

Z2 = S.Z95 ** 2  # 3.841459


def test_wilson_interval_by_hand():
    # 0/10: centre = (0 + z^2/20) / (1 + z^2/10) = 0.192073 / 1.384146 = 0.138767; half = z/1.384146 * sqrt(0 +
    # z^2/400) = z^2 / (20 * 1.384146) = 0.138767, so (0, 0.277533): not the empty Wald interval (0, 0)
    assert S.wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    # 5/10: centre 0.5; half = 1.959964/1.384146 * sqrt(0.025 + z^2/400) = 1.416010 * 0.186021 = 0.263407
    assert S.wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    lo, hi = S.wilson_interval(10, 10)  # the mirror of 0/10
    assert lo == pytest.approx(1 - 0.277533, abs=1e-6) and hi <= 1.0
    with pytest.raises(ValueError, match="n = 0"):
        S.wilson_interval(0, 0)


def test_mcnemar_exact_by_hand():
    # b=1, c=5: X ~ Bin(6, 1/2), P(X <= 1) = (1 + 6) / 64, two-sided 14/64
    assert S.mcnemar_exact(1, 5) == S.mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    assert S.mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # 2 * P(X = 0)
    assert S.mcnemar_exact(3, 3) == 1.0  # 2 * (1 + 6 + 15 + 20) / 64 > 1: capped
    assert S.mcnemar_exact(0, 0) == 1.0  # all concordant: nothing tells the systems apart


def test_paired_counts():
    x, y = [1, 1, 0, 0, 1], [1, 0, 1, 0, 0]
    assert S.paired_counts(x, y) == (1, 2, 1, 1)  # a: q0; b: q1, q4; c: q2; d: q3
    with pytest.raises(ValueError, match="same questions"):
        S.paired_counts([1], [1, 0])


def test_newcombe_paired_interval_by_hand():
    # a=1, b=1, c=7, d=12, n=21 (Bentur et al. 2009, in Fagerland, Lydersen & Laake's book): D = (1-7)/21 = -0.285714
    # p1 = 2/21 = 0.095238, Wilson (0.026519, 0.289141); p2 = 8/21 = 0.380952, Wilson (0.207510, 0.591213)
    # ad - bc = 12 - 7 = 5 <= n/2 = 10.5, so phi = 0:
    # lower = D - sqrt(0.068719^2 + 0.210261^2) = -0.285714 - 0.221206 = -0.506920
    # upper = D + sqrt(0.193903^2 + 0.173442^2) = -0.285714 + 0.260155 = -0.025559
    assert S.paired_difference_interval(1, 1, 7, 12) == pytest.approx((-0.285714, -0.506920, -0.025559), abs=1e-6)
    # a=59, b=6, c=16, d=80, n=161 (Cavo et al. 2012, the same book): D = -10/161 = -0.062112
    # ad - bc = 4720 - 96 = 4624 > 80.5: phi = 4543.5 / sqrt(65 * 96 * 75 * 86) = 4543.5 / 6344.131 = 0.716174
    # p1 = 65/161 = 0.403727, Wilson (0.331037, 0.480904); p2 = 75/161 = 0.465839, Wilson (0.390481, 0.542789)
    # lower = D - sqrt(0.072690^2 - 2 phi 0.072690 * 0.076950 + 0.076950^2) = D - 0.056510 = -0.118621
    # upper = D + sqrt(0.077177^2 - 2 phi 0.077177 * 0.075358 + 0.075358^2) = D + 0.057487 = -0.004625
    assert S.paired_difference_interval(59, 6, 16, 80) == pytest.approx((-0.062112, -0.118621, -0.004625), abs=1e-6)
    d, lo, hi = S.paired_difference_interval(10, 0, 0, 0)  # all right for both: no difference, a nonzero width
    assert d == 0 and lo < 0 < hi
    with pytest.raises(ValueError, match="n = 0"):
        S.paired_difference_interval(0, 0, 0, 0)


def test_pooled_mcnemar_sums_the_discordant_counts():
    # seeds (b, c) = (1, 0), (0, 0), (2, 1): b = 3, c = 1, X ~ Bin(4, 1/2): 2 * (1 + 4) / 16 = 0.625
    assert S.pooled_mcnemar([(1, 0), (0, 0), (2, 1)]) == (3, 1, pytest.approx(0.625))
    assert S.pooled_mcnemar([(0, 0), (0, 0)]) == (0, 0, 1.0)


def test_paired_bootstrap_by_hand():
    # two questions, x - y = (1, 0): a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4
    out = S.paired_bootstrap([[1, 0]], [[0, 0]])
    assert out["mean"] == 0.5 and (out["lo"], out["hi"]) == (0.0, 1.0)
    assert out["p_le_0"] == pytest.approx(0.25, abs=0.02)  # 10000 resamples: sd 0.004
    assert S.paired_bootstrap([[1, 0]], [[0, 0]]) == out  # a fixed seed: the same numbers every time
    # the same question indices for both systems: identical outcomes differ by exactly 0 in every resample
    assert S.paired_bootstrap([[1, 0, 1, 0]], [[1, 0, 1, 0]]) == dict(mean=0.0, lo=0.0, hi=0.0, p_le_0=1.0)
    # ... and for every run: seed 0 right on q0 only, seed 1 on q1 only; per question the seeds' mean is 0.5, so a
    # resample drawing the same questions for both seeds always gives 0.5 (independent draws would not)
    assert S.paired_bootstrap([[1, 0], [0, 1]], [[0, 0], [0, 0]]) == dict(mean=0.5, lo=0.5, hi=0.5, p_le_0=0.0)
    with pytest.raises(ValueError, match="same runs and questions"):
        S.paired_bootstrap([[1, 0]], [[1, 0, 1]])
    with pytest.raises(ValueError, match="n = 0"):
        S.bootstrap_over_questions([[]])


def test_reference_rates_by_hand():
    assert S.independence_oracle(0.5, 1 / 3) == pytest.approx(1 - 0.5 * (2 / 3))  # 0.667
    assert S.most_common_share(["no", "yes", "no", None]) == ("no", 0.5)  # None (no answer) counts as not "no"
    assert S.most_common_share(["b", "a"]) == ("a", 0.5)  # a tie: the first as text
    assert S.most_common_share([None, None]) == (None, 0.0)
    with pytest.raises(ValueError, match="n = 0"):
        S.most_common_share([])


def test_cohen_kappa_by_hand():
    # x = 1 1 0 0, y = 1 0 0 0: p_o = 3/4; p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5; kappa = 0.25 / 0.5
    assert S.cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert S.cohen_kappa(["pre", "post"], ["pre", "post"]) == 1.0
    assert S.cohen_kappa(["pre", "post"], ["post", "pre"]) == -1.0  # p_o = 0, p_e = 0.5
    assert math.isnan(S.cohen_kappa(["pre"] * 3, ["pre"] * 3))  # p_e = 1: undefined
    with pytest.raises(ValueError, match="n = 0"):
        S.cohen_kappa([], [])


def test_roc_auc_by_hand():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs 0.9>0.5, 0.9>0.1, 0.5=0.5 (half), 0.5>0.1 -> 3.5 / 4
    assert S.roc_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert S.roc_auc([0.1, 0.9], [1, 0]) == 0.0
    assert S.roc_auc([0.3] * 4, [1, 0, 1, 0]) == 0.5  # all tied
    with pytest.raises(ValueError, match="positives and negatives"):
        S.roc_auc([0.1, 0.2], [1, 1])

"""Statistics a reader can trust for small test sets: intervals, paired tests, pooling over seeds, reference rates.

Everything here is a few lines of standard formulas on right/wrong outcomes (pure Python and numpy, no scipy);
tools/paper_table.py prints them. The conventions:
  - outcomes are lists of bools (or 0/1), one per test question, in the same question order for every system;
  - a paired comparison of systems x and y counts a (both right), b (x right, y wrong), c (x wrong, y right) and
    d (both wrong); only b and c, the discordant questions, say which is better;
  - "95%" means z = 1.95996 (two-sided normal quantile) for the score intervals, and the 2.5th and 97.5th
    percentiles for the bootstrap;
  - n = 0 (no question) is a ValueError wherever a rate would be 0/0; the docstrings say where nan is returned.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: two-sided 95%


def _need(n: int, what: str) -> None:
    if n <= 0:
        raise ValueError(f"{what} of no questions (n = 0) is undefined")


# ---------------------------------------------------------------------------------------------------- one system

def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy k/n:

        centre = (p + z^2/2n) / (1 + z^2/n),  half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2),  p = k/n.

    Chosen over the textbook Wald interval p +- z sqrt(p(1-p)/n) because that one collapses to a width of 0 at
    p = 0 or 1 and undercovers at small n (a 150-question test, a 50-question task of a mixture); Wilson's stays
    inside [0, 1], is never empty, and covers close to 95% down to n of ten or so. n = 0: ValueError."""
    _need(n, "an accuracy")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def most_common_share(values: list) -> tuple[object, float]:
    """(the most common value that is not None, its share of ALL values): with gold answers, the majority-answer
    rate (the accuracy of always answering it); with a system's own parsed answers, how much of its output is
    one answer. A tie goes to the value that sorts first as text (deterministic). No value at all: (None, 0.0);
    an empty list: ValueError."""
    _need(len(values), "an answer share")
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None, 0.0
    value, k = min(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return value, k / len(values)


def independence_oracle(pre: float, post: float) -> float:
    """The oracle accuracy expected if the two modes' errors were independent: 1 - (1 - pre)(1 - post). The
    observed oracle (a question counts when either mode is right) sits above it when the modes fail on different
    questions, below it when they fail on the same ones."""
    return 1 - (1 - pre) * (1 - post)


# ---------------------------------------------------------------------------------------------- two systems, paired

def paired_counts(x: list, y: list) -> tuple[int, int, int, int]:
    """(a, b, c, d) of two systems' right/wrong outcomes on the same questions: a both right, b only x, c only y,
    d neither."""
    if len(x) != len(y):
        raise ValueError(f"paired outcomes need the same questions: {len(x)} against {len(y)}")
    a = sum(bool(i) and bool(j) for i, j in zip(x, y))
    b = sum(bool(i) and not j for i, j in zip(x, y))
    c = sum(not i and bool(j) for i, j in zip(x, y))
    return a, b, c, len(x) - a - b - c


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test of "x and y are equally accurate" from the discordant counts b and c: under it each of
    the b + c discordant questions goes either way with probability 1/2, so the two-sided p-value is

        p = min(1, 2 * P(X <= min(b, c))),  X ~ Binomial(b + c, 1/2).

    Exact (no chi-square approximation), so it is right for the handful of discordant questions a small test set
    has. b = c = 0 (all questions concordant): p = 1, nothing tells the systems apart."""
    m = b + c
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1))  # integers: exact for any m
    return min(1.0, 2 * tail / 2 ** m)


def paired_difference_interval(a: int, b: int, c: int, d: int, z: float = Z95) -> tuple[float, float, float]:
    """(D, lower, upper): the difference in accuracy D = (b - c) / n of x over y on the same n questions, and
    Newcombe's (1998) hybrid score interval for paired proportions (his method 10, as in Altman et al.,
    "Statistics with confidence", ch. 6):

        p1 = (a+b)/n, p2 = (a+c)/n with Wilson intervals (l1, u1), (l2, u2);
        phi = C / sqrt((a+b)(c+d)(a+c)(b+d)), C = ad - bc - n/2 if ad - bc > n/2, ad - bc if it is < 0, else 0
              (phi = 0 when a margin is 0);
        lower = D - sqrt((p1-l1)^2 - 2 phi (p1-l1)(u2-p2) + (u2-p2)^2)
        upper = D + sqrt((u1-p1)^2 - 2 phi (u1-p1)(p2-l2) + (p2-l2)^2).

    Chosen over Wald's D +- z sqrt(b + c - (b-c)^2/n) / n because Wald's is 0 wide when b = c = 0 and overshoots
    [-1, 1] at small n; Newcombe's inherits the Wilson intervals' behaviour near 0 and 1, and phi (the
    correlation of the two systems' outcomes, shrunk by n/2 as a continuity correction) narrows it by as much as
    the pairing helps. n = 0: ValueError."""
    n = a + b + c + d
    _need(n, "a paired difference")
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = wilson_interval(a + b, n, z), wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    lower = (b - c) / n - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = (b - c) / n + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (b - c) / n, max(-1.0, lower), min(1.0, upper)


# ---------------------------------------------------------------------------------------- pooled over seeds (runs)

def pooled_mcnemar(discordant: list[tuple[int, int]]) -> tuple[int, int, float]:
    """(b, c, p): McNemar pooled over runs the Cochran-Mantel-Haenszel way, one stratum per run (seed): for
    matched pairs the stratified statistic only sums the discordant counts, b = sum of b_s and c = sum of c_s,
    and the exact test of those sums (mcnemar_exact) follows. It treats every (run, question) pair as
    independent; when the runs answer the same test questions they are not (a hard question is hard for every
    seed), so read it beside paired_bootstrap, which resamples questions."""
    b = sum(bb for bb, _ in discordant)
    c = sum(cc for _, cc in discordant)
    return b, c, mcnemar_exact(b, c)


def bootstrap_over_questions(values, resamples: int = 10_000, seed: int = 0, chunk: int = 1000) -> dict:
    """values: (runs, n) per-question numbers of each run (seed) on the same n test questions, e.g. 0/1 outcomes,
    or x - y for a paired difference. The statistic is their mean over runs and questions. One resample draws n
    question indices with replacement (numpy's default_rng(seed), so it is reproducible) and uses the SAME
    indices for every run: a question's difficulty is shared across seeds, as it is in truth. Returns
    {mean: the observed statistic, lo, hi: the 2.5th and 97.5th percentiles of the resampled statistic,
    p_le_0: the share of resamples <= 0, a one-sided p for "the mean is above 0"}. n = 0: ValueError."""
    v = np.asarray(values, dtype=float)
    v = v[None, :] if v.ndim == 1 else v
    n = v.shape[1]
    _need(n, "a bootstrap")
    per_question = v.mean(axis=0)  # (n,): the mean over runs; the statistic is its mean over questions
    rng = np.random.default_rng(seed)
    stats = np.concatenate([per_question[rng.integers(0, n, size=(min(chunk, resamples - s), n))].mean(axis=1)
                            for s in range(0, resamples, chunk)])  # (resamples,)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return dict(mean=float(per_question.mean()), lo=float(lo), hi=float(hi), p_le_0=float(np.mean(stats <= 0)))


def paired_bootstrap(x_runs, y_runs, resamples: int = 10_000, seed: int = 0) -> dict:
    """The paired bootstrap of x's accuracy minus y's, pooled over runs: x_runs and y_runs are (runs, n) 0/1
    outcomes of the two systems on the same questions. The per-question differences x - y go through
    bootstrap_over_questions, so both systems of a run always see the same resampled questions. Returns its
    dict: mean difference, 95% percentile interval (lo, hi), and p_le_0, the share of resamples where x is not
    ahead (a one-sided p for "x is more accurate")."""
    x, y = np.asarray(x_runs, dtype=float), np.asarray(y_runs, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes need the same runs and questions: {x.shape} against {y.shape}")
    return bootstrap_over_questions(x - y, resamples, seed)


# --------------------------------------------------------------------------------------------- agreement, ranking

def cohen_kappa(x: list, y: list) -> float:
    """Cohen's kappa between two label lists: (p_o - p_e) / (1 - p_e), p_o the share of equal labels, p_e the
    share expected by chance, sum over labels k of p_x(k) p_y(k). nan when p_e = 1 (both lists one and the same
    constant label: agreement is certain, kappa undefined); n = 0: ValueError."""
    if len(x) != len(y):
        raise ValueError(f"kappa needs two labels per item: {len(x)} against {len(y)}")
    _need(len(x), "kappa")
    n = len(x)
    po = sum(i == j for i, j in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    pe = sum(cx[k] * cy[k] for k in cx) / (n * n)
    return float("nan") if pe == 1 else (po - pe) / (1 - pe)


def roc_auc(scores: list[float], labels: list) -> float:
    """ROC AUC of scores against binary labels: the probability that a random positive scores above a random
    negative, ties counted half, i.e. the Mann-Whitney U / (positives * negatives), computed from average ranks:
    AUC = (sum of the positives' ranks - P(P+1)/2) / (P N). ValueError unless both classes occur."""
    s = np.asarray(scores, dtype=float)
    pos = np.asarray(labels, dtype=bool)
    if s.shape != pos.shape:
        raise ValueError(f"AUC needs one label per score: {s.shape} against {pos.shape}")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs positives and negatives; got {n_pos} and {n_neg}")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # ties share their average rank, so a tied pair counts half
        tied = s == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spread(values: list[float]) -> dict:
    """{min, max, std} of some numbers (std: the population's, numpy's default): how far a classifier's
    probabilities move from question to question; a std near 0 says its output is a constant. Empty: ValueError."""
    _need(len(values), "a spread")
    v = np.asarray(values, dtype=float)
    return dict(min=float(v.min()), max=float(v.max()), std=float(v.std()))

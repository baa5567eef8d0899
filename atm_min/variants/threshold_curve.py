"""The core, with the 0.5 threshold on p(answer first) moved: the accuracy / cost curve of one ATM student, with
no retraining (results.json atm.tradeoff, plots/curve.png).

At threshold t a question is answered first when its p(answer first) > t (the rule of hard routing and of
`agreement`, at t = 0.5), else thought through: its output is started with that mode's marker while the soft
prompt, made from the question as always, still steers everything after the marker. The threshold picks the
first word; the soft prompt is not changed. A forced question's answer does not depend on t, so two forced
passes over the test set (every question forced pre, every question forced post) give every point exactly.
t = -1 answers every question first (the same student's forced post), t = 1 none (its forced pre).
"""

from __future__ import annotations

from ..evaluate import summarize

SWEEP = (-1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # our choice: 12 points, both ends


def threshold_sweep(forced_pre: list[dict], forced_post: list[dict], thresholds=SWEEP) -> list[dict]:
    """forced_pre / forced_post: generate_answers records of the same questions, every one forced "pre" / "post"
    (with the soft prompt; p_post set). One {threshold, accuracy, tokens, post_rate} per threshold."""
    points = []
    for t in thresholds:
        chosen = [b if b["p_post"] > t else a for a, b in zip(forced_pre, forced_post, strict=True)]
        s = summarize(chosen, 0.0)
        points.append(dict(threshold=t, accuracy=s["accuracy"], tokens=s["avg_new_tokens"],
                           post_rate=s["post_fraction"]))
    return points

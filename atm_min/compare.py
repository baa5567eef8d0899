"""Reference rows for the results table, computed from the pre and post students' test predictions (no training):

    oracle   per question, the cheaper correct one of pre and post: the ceiling of any router that picks one of
             these two students' answers (when neither is right it takes the cheaper wrong one)
    random   each question answered first with probability r, ATM's own answer-first rate, else thinking first:
             the floor a router must beat. Exact expected values, not one random draw, so it has no noise.

Both take the pre and post baselines as the two modes; ATM uses ONE student for both, so it can sit above the
oracle on a question where its own student does better than either specialist.
"""

from __future__ import annotations

from .evaluate import summarize


def oracle_summary(pre: list[dict], post: list[dict]) -> dict:
    """pre/post: records of the same test questions, in the same order (evaluate.generate_answers)."""
    chosen = []
    for a, b in zip(pre, post, strict=True):
        right = [r for r in (a, b) if r["correct"]] or [a, b]
        chosen.append(min(right, key=lambda r: r["new_tokens"]))
    return summarize(chosen, ms_per_question=0.0)


def random_routing_summary(pre: list[dict], post: list[dict], rate: float) -> dict:
    """Expected accuracy and tokens when each question is answered first with probability `rate`."""
    mixed = [dict(group=a["group"], correct=rate * b["correct"] + (1 - rate) * a["correct"],
                  new_tokens=rate * b["new_tokens"] + (1 - rate) * a["new_tokens"], mode=None)
             for a, b in zip(pre, post, strict=True)]
    out = summarize(mixed, ms_per_question=0.0)
    for stats in [out, *out["by_group"].values()]:
        stats["post_fraction"] = rate  # by construction, in every group
    return out

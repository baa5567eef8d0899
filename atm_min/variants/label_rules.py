"""The core, with another rule turning the fold students' evidence into a label (--label_rule; the paper names
none, the default "confident_post" is labels.label).

prefer_post: answering first is cheaper, so when both are right, or only post is, answer first; think first only
when pre alone is right. prefer_pre is the mirror image. pass_rate: from pass rates over sampled answers
(sampled_evidence.py), answer first when post's >= pre's - delta: AdaptThink's margin, delta being how much
accuracy answering first may cost (0: only where it is as good; larger: fewer thinking answers).
When both fail, `default`, as in the core (pass_rate: when no sampled answer of either is right).
"""

from __future__ import annotations


def prefer(first: str, pre_ok: bool, post_ok: bool, default: str = "pre") -> str:
    """The mode `first` when its student was right, else the other mode when that one was, else default."""
    second = "pre" if first == "post" else "post"
    ok = {"pre": pre_ok, "post": post_ok}
    if ok[first]:
        return first
    if ok[second]:
        return second
    return default


def pass_rate(pre_rate: float, post_rate: float, delta: float = 0.0, default: str = "pre") -> str:
    if pre_rate == 0 and post_rate == 0:
        return default
    return "post" if post_rate >= pre_rate - delta else "pre"

"""The core, with each question labelled by its task (--label_source=task, an ablation): every training question
gets its task's better single mode on the fold evidence, so the labels say which task a question is from and
nothing about the question itself. On a mixture where the modes trade places by task, this is the per-task choice
a perception that learned only "which task is this?" would make; the k-fold labels are measured against it.
"""

from __future__ import annotations

from collections import Counter

from ..formats import group_levels


def better_mode(pre_right: int, post_right: int) -> str:
    """The better single mode from how many questions the held-out pre and post fold students got right. A tie
    goes to post, the cheaper (answering first stops after the answer): our choice. tools/paper_table.py picks
    the better single mode the same way."""
    return "pre" if pre_right > post_right else "post"


def task_of(group: str | None) -> str:
    """A question's task: the top level of its group ("multistep/3" -> "multistep"); "" for no group."""
    return (group_levels(group) or [""])[0]


def task_labels(groups: list[str | None], rows: list[dict]) -> list[str]:
    """Each question's label: its task's better_mode over that task's training questions' evidence rows
    ({pre_ok, post_ok}, one per question, in the order of groups)."""
    pre, post = Counter(), Counter()
    for g, r in zip(groups, rows, strict=True):
        pre[task_of(g)] += bool(r["pre_ok"])
        post[task_of(g)] += bool(r["post_ok"])
    return [better_mode(pre[task_of(g)], post[task_of(g)]) for g in groups]

"""Machinery: is a question like the ones the student was trained on, and was the student ever trained in a given
mode on questions like it? sample.py prints the answers as notes beside a student's output, because a student
answers anything it is asked, fluently: 'Is 7 even?' (1 digit; the suite has 2-4) gets 'yes' at p(answer first)
0.998, and the ATM student forced to think first on parity, a format it never learned there, writes garbage.

A question's *form* is its text with every run of digits replaced by '#' ("Is 74 even?" -> "Is # even?"). It is
outside the training forms when no training question of the run has its form, or when its length in tokens is
outside the range of the training questions that do. (The check is exact: a combination the training data happen
to lack, e.g. one of the 64 orders of a 6-operation chain, is flagged too.) The modes a student was trained in,
per form: an ATM student's from the run's labels.json (each training question's label), a baseline's from its
mechanism (pre: think first only; post and answer-only: answer first only). A mode trained on fewer than 5% of a
form's training questions (RARE, our choice) gets the note too: the default ATM student has 1 think-first label
among its 565 parity questions.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

from ..formats import normalize_ws
from .data import load_examples, run_data_dir
from .errors import DataError

MODE_WORDS = {"pre": "think first", "post": "answer first"}
RARE = 0.05  # our choice: a mode trained on under 5% of a form's training questions is "barely learned" there
# Our choice: the check needs templated training questions -- at least half of them sharing their form with
# another. Free-text questions (Fine-tune-CoT's coin_flip and strategy_qa: every form once; multiarith: 135 of
# 323 share one) would put every new question outside the training forms, a note that then says nothing.
TEMPLATED = 0.5


def form(question: str) -> str:
    """"Is 74 even?" -> "Is # even?": the question's wording without its numbers."""
    return re.sub(r"\d+", "#", normalize_ws(question))


class TrainingForms:
    """The forms of a run's training questions: per form, the token-length range, the groups, and how many of its
    training questions were trained in each mode."""

    def __init__(self, tok, examples, modes: list[str] | None):
        """modes: the mode each example was trained in; None = not known (then no mode note is given)."""
        self.forms: dict[str, dict] = {}
        for k, ex in enumerate(examples):
            f = self.forms.setdefault(form(ex.question), {"lengths": [], "groups": set(), "modes": Counter()})
            f["lengths"].append(len(tok.encode(ex.question)))
            f["groups"].add(ex.group or "(no group)")
            for mode in ([modes[k]] if modes is not None else MODE_WORDS):
                f["modes"][mode] += 1
        self.tok = tok

    def notes(self, question: str, forced: tuple[str, ...] = ()) -> list[str]:
        """What to tell a user about this question: outside the training forms (no training question has its form,
        or its length is outside theirs), and for each forced mode the student never trained in on this form."""
        f = self.forms.get(form(question))
        if f is None:
            return [f"outside the training forms: no training question reads like this one (its form "
                    f"{form(question)!r}, digits as '#'); the answer is a guess the training data never tested"]
        out = []
        n = len(self.tok.encode(question))
        lo, hi = min(f["lengths"]), max(f["lengths"])
        if not lo <= n <= hi:
            out.append(f"outside the training forms: {n} tokens, while the {len(f['lengths'])} training questions of "
                       f"its form ({', '.join(sorted(f['groups']))}) have {lo}-{hi}; the answer is a guess the "
                       f"training data never tested")
        total = sum(f["modes"].values())
        for mode in forced:
            k = f["modes"][mode]
            if k < RARE * total:
                how = ("was never trained in that format on questions of this form" if k == 0 else
                       f"was trained in that format on only {k} of the {total} training questions of this form")
                trained = ", ".join(f"{c} {MODE_WORDS.get(m, m)}" for m, c in sorted(f["modes"].items()))
                out.append(f"forced {MODE_WORDS[mode]}: this student {how} ({', '.join(sorted(f['groups']))}: "
                           f"{trained}), so that output is a format it {'never' if k == 0 else 'barely'} learned "
                           f"here, not what it would think")
        return out


def trained_modes(ck: dict, ckpt_path: str, saved, n: int, ids: list[str]) -> list[str] | None:
    """The mode each training question was trained in, or None when the run does not tell (no labels.json)."""
    if ck.get("atm"):
        path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "labels.json")
        try:
            with open(path, encoding="utf-8") as fh:
                labels = json.load(fh)
            modes = [labels[i]["label"] for i in ids]
        except (OSError, ValueError, KeyError, TypeError):  # no labels.json, or not this run's
            return None
        return modes if all(m in MODE_WORDS for m in modes) else None
    m = re.fullmatch(r"baseline_(pre|post|answer)\.pt", os.path.basename(ckpt_path))
    mechanism = m.group(1) if m else saved.mechanism
    if mechanism not in ("pre", "post", "answer"):
        return None
    return ["pre" if mechanism == "pre" else "post"] * n  # answer-only starts with "Answer:" like post


def from_run(ck: dict, ckpt_path: str, saved, tok) -> tuple[TrainingForms | None, str | None]:
    """(the run's training forms, None) or (None, why not): the training data are the run's data_dir or the
    built-in suite train.py generated beside the checkpoint (out_dir/synth_<seed>)."""
    path = os.path.join(run_data_dir(saved, os.path.dirname(os.path.abspath(ckpt_path))), "train.jsonl")
    if not os.path.isfile(path):
        return None, f"the run's training questions ({path}) are not there: no check of the question's form"
    try:
        examples = load_examples(path)
    except DataError as e:
        return None, f"no check of the question's form: {e}"
    if saved.max_train:
        examples = examples[:saved.max_train]
    counts = Counter(form(ex.question) for ex in examples)
    shared = sum(c for c in counts.values() if c > 1)
    if shared < TEMPLATED * len(examples):
        return None, (f"no check of the question's form: the training questions are free text (only {shared} of "
                      f"{len(examples)} share their wording, numbers aside, with another)")
    modes = trained_modes(ck, ckpt_path, saved, len(examples), [ex.id for ex in examples])
    return TrainingForms(tok, examples, modes), None

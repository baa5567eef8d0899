"""A finished run's results in the shape of the paper's table, per task (group), as markdown:

    python tools/paper_table.py out/ftcot-coin_flip [out/ftcot-multiarith ...] [--max_new_tokens 160]
    python tools/paper_table.py --seeds out/ftcot-coin_flip out/ftcot-coin_flip-s1   # one setup, several seeds

Three tables, one row per run (and per group, for a mixture):
  1. test accuracy of pre / post / answer-only / ATM / oracle / random, and ATM's answer-first share;
  2. new tokens per question of each student, and how often its answer never arrived: no "Answer:" within the
     run's max_new_tokens (the cost of thinking first that accuracy alone hides), and outputs that start in
     neither format;
  3. the k-fold evidence (pre only / post only / both / neither right), the labels, and how often the perception
     agrees with its labels and with the test-set oracle.
With --seeds the runs are one setup trained with different seeds, and a fourth table gives each accuracy's mean
and its range (lowest-highest) over them, per task: the spread a single-seed table hides.
Everything comes from the run's results.json and predictions_*.jsonl (train.py writes both at the end).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from atm_min.answers import parse_output  # noqa: E402
from atm_min.formats import group_levels  # noqa: E402
from atm_min.machinery.errors import ProjectError  # noqa: E402
from atm_min.machinery.report import read_predictions, read_results  # noqa: E402

STUDENTS = ("pre", "post", "answer", "atm")
NAMES = {"pre": "pre", "post": "post", "answer": "answer-only", "atm": "ATM", "oracle": "oracle", "random": "random"}


def answer_format(rows: list[dict], max_new_tokens: int) -> dict:
    """How many outputs never gave an answer ("Answer:" missing), how many of those ran out of tokens, and how many
    start in neither format (not "Reasoning:", not "Answer:")."""
    parsed = [(r, parse_output(r["text"])) for r in rows]  # (row, (mode, answer, rationale))
    no_answer = [r for r, (_, answer, _) in parsed if answer is None]
    return dict(no_answer=len(no_answer), cut=sum(r["new_tokens"] >= max_new_tokens for r in no_answer),
                no_format=sum(mode is None for _, (mode, _, _) in parsed))


def groups_of(results: dict) -> list[str]:
    """ALL, then each top-level group when there are several (a mixture of tasks)."""
    top = _tasks(results)
    return ["ALL"] + (list(top) if len(top) > 1 else [])


def _tasks(results: dict) -> tuple[str, ...]:
    """The run's top-level groups (its tasks): what --seeds compares."""
    first = results.get("pre") or results.get("atm") or {}  # a run without baselines has only ATM's
    return tuple(sorted(g for g in first.get("by_group", {}) if "/" not in g))


def _in(row: dict, group: str) -> bool:
    return group == "ALL" or group in group_levels(row.get("group"))


def _stats(results: dict, who: str, group: str) -> dict | None:
    r = results.get(who)
    if r is None:
        return None
    return r if group == "ALL" else r.get("by_group", {}).get(group)


def _acc(results, who, group) -> str:
    s = _stats(results, who, group)
    return "-" if s is None else f"{s['accuracy']:.3f}"


def tables(runs: list[tuple[str, dict, dict]], max_new_tokens: int) -> str:
    acc = ["| run | task | n | " + " | ".join(NAMES[k] for k in NAMES) + " | ATM answers first |",
           "|---|---|---|" + "---|" * (len(NAMES) + 1)]
    cost = ["| run | task | new tokens per question: pre / post / answer-only / ATM | no answer within "
            f"{max_new_tokens} new tokens: pre / post / ATM | in neither format: pre / post / ATM |",
            "|---|---|---|---|---|"]
    ev = ["| run | task | k-fold: pre only / post only / both / neither | labels answer first | perception = "
          "its labels | ATM's mode = test oracle's |", "|---|---|---|---|---|---|"]
    for name, results, preds in runs:
        for g in groups_of(results):
            n = (_stats(results, "pre", g) or _stats(results, "atm", g) or {}).get("n", "-")
            atm = _stats(results, "atm", g)
            share = "-" if atm is None else f"{atm['post_fraction']:.2f}"
            acc.append(f"| {name} | {g} | {n} | " + " | ".join(_acc(results, k, g) for k in NAMES) + f" | {share} |")
            toks = " / ".join("-" if _stats(results, s, g) is None else f"{_stats(results, s, g)['avg_new_tokens']:.1f}"
                              for s in STUDENTS)
            fmt = {s: answer_format([r for r in preds[s] if _in(r, g)], max_new_tokens) for s in preds}
            late = " / ".join(f"{fmt[s]['no_answer']} ({fmt[s]['cut']} cut)" if s in fmt else "-"
                              for s in ("pre", "post", "atm"))
            neither = " / ".join(str(fmt[s]["no_format"]) if s in fmt else "-" for s in ("pre", "post", "atm"))
            cost.append(f"| {name} | {g} | {toks} | {late} | {neither} |")
            c = ((results.get("atm") or {}).get("label_counts") or {}).get(g)
            counts = "-" if c is None else f"{c['pre_only']} / {c['post_only']} / {c['both']} / {c['neither']}"
            labels = "-" if c is None else f"{c['label_post']} of {c['n']}"
            agree = [(results.get("atm") or {}).get(k) for k in ("label_agreement", "test_oracle_agreement")]
            agree = ["-" if a is None or g != "ALL" else f"{a:.3f}" for a in agree]  # results.json: the whole run
            ev.append(f"| {name} | {g} | {counts} | {labels} | {agree[0]} | {agree[1]} |")
    return "\n".join(acc) + "\n\n" + "\n".join(cost) + "\n\n" + "\n".join(ev)


def spread(runs: list[tuple[str, dict, dict]]) -> str:
    """Mean and range (lowest-highest) of each accuracy and of ATM's answer-first share over the runs, per task."""
    head = ["| task | runs | " + " | ".join(NAMES[k] for k in NAMES) + " | ATM answers first |",
            "|---|---|" + "---|" * (len(NAMES) + 1)]
    for g in groups_of(runs[0][1]):
        cells = []
        for who, key in [(k, "accuracy") for k in NAMES] + [("atm", "post_fraction")]:
            xs = [_stats(results, who, g) for _, results, _ in runs]
            xs = [x[key] for x in xs if x is not None]
            cells.append("-" if not xs else f"{sum(xs) / len(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})")
        head.append(f"| {g} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(head)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dirs", nargs="+", help="finished runs' out_dir folders")
    p.add_argument("--max_new_tokens", type=int, default=160, help="the runs' max_new_tokens (a cut answer used "
                                                                   "them all)")
    p.add_argument("--seeds", action="store_true", help="the runs are one setup with different seeds: add the "
                                                        "mean and range of each accuracy over them")
    a = p.parse_args(argv)
    runs = []
    for out in a.out_dirs:
        try:  # the plot command's readers: the same checks and messages
            results, preds = read_results(out), read_predictions(out, STUDENTS)
        except (ProjectError, OSError) as e:
            sys.exit(f"error: {e}")
        runs.append((os.path.basename(os.path.normpath(out)), results, preds))
    tasks = {name: _tasks(results) for name, results, _ in runs} if a.seeds else {}
    if len(set(tasks.values())) > 1:
        sys.exit("error: --seeds takes runs of one setup (the same tasks), and these differ: "
                 + "; ".join(f"{name}: {', '.join(t)}" for name, t in tasks.items()))
    try:
        print(tables(runs, a.max_new_tokens) + ("\n\n" + spread(runs) if a.seeds else ""))
    except (KeyError, TypeError) as e:
        sys.exit(f"error: a results.json without the field {e}: written by another version of train.py?")


if __name__ == "__main__":
    main()

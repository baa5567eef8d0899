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
Everything comes from the run's results.json and predictions_*.jsonl (train.py writes both at the end); a run
that trained no baselines on another run's fold evidence (--evidence_from) takes that run's baselines' answers.

Then the statistics (atm_min/machinery/stats.py says each formula), from the runs' per-question outcomes
(atm_min/machinery/outcomes.py):
  4. every accuracy with its 95% Wilson interval; beside the oracle (pre or post right), the oracle expected from
     independent errors, 1 - (1-pre)(1-post), and the majority answer's rate (always answering the most common
     gold answer); each student's share of its own most common answer;
  5. ATM against each single mode, paired over the test questions: b (only ATM right), c (only the mode), the
     exact McNemar p, and ATM's accuracy minus the mode's with Newcombe's 95% interval;
  6. ATM against the better single mode, pre or post, chosen per task on the TRAINING questions' k-fold evidence
     (how many the held-out pre and post fold students got right), never on the test set;
  with --seeds, pooled over the runs: each accuracy's mean with a 95% bootstrap interval over questions, and ATM
  against each run's better single mode: the paired bootstrap (mean difference, 95% interval, share of
  resamples <= 0) and the McNemar test of the discordant counts summed over runs.

Then where the chain evidence -> labels -> perception -> routing breaks, one row per ATM run (chain_table):
  7. the run's label source (--label_source: kfold, random, task) and its labels' answer-first share (labels.json);
     with --atm_holdout, the perception on training questions it did not train on: ROC AUC and agreement at 0.5
     against their k-fold labels, and the spread of its p (min / max / std: a constant?); ATM's routing agreement
     with the test-set oracle label, and the spread of its test p(answer first);
  8. with --seeds, Cohen's kappa between each pair of runs' labels on the training questions both labelled.

    python tools/paper_table.py out/ftcot-coin_flip --outcomes outcomes/     # also write outcomes/<run>.tsv
    python tools/paper_table.py --from-outcomes outcomes/*.tsv [--seeds]     # the statistics from those alone

Gold answers (for the majority answer and the outcome files) come from the run's test questions: --data DIR, or
the data folder the command recorded in results.json names (run.command: --data_dir, or the built-in suite in
out_dir/synth_<seed>); without either they are left out.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from atm_min.answers import parse_output  # noqa: E402
from atm_min.formats import group_levels  # noqa: E402
from atm_min.machinery import outcomes as O  # noqa: E402
from atm_min.machinery import stats as S  # noqa: E402
from atm_min.machinery.errors import ArgumentParser, ConfigError, DataError, ProjectError  # noqa: E402
from atm_min.machinery.report import read_json, read_predictions, read_results  # noqa: E402
from atm_min.variants.task_labels import better_mode as _better  # noqa: E402

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


# ----------------------------------------------------------------------------------------------------- statistics

SINGLE = ("pre", "post", "answer")  # the single modes ATM is compared with (answer-only: post without rationale)
SYSTEMS = (*STUDENTS, "oracle")  # every accuracy the statistics give an interval


def _interval(k: int, n: int) -> str:
    lo, hi = S.wilson_interval(k, n)
    return f"{k / n:.3f} ({lo:.3f}-{hi:.3f})"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _diff(d: float, lo: float, hi: float) -> str:
    return f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})"


def _right(rows: list[dict], who: str) -> list[bool] | None:
    """Who's right/wrong per question; who is a student or "oracle" (pre or post right); None if the run lacks it."""
    if who == "oracle":
        pre, post = _right(rows, "pre"), _right(rows, "post")
        return None if pre is None or post is None else [a or b for a, b in zip(pre, post)]
    xs = [r[f"{who}_right"] for r in rows]
    return None if any(x is None for x in xs) else xs


def better_mode(ev: dict | None) -> str | None:
    """The better single mode on the training questions' k-fold evidence: the one whose held-out fold students got
    more of them right. A tie goes to post, the cheaper (answering first stops after the answer): our choice."""
    if not ev:
        return None
    return _better(ev["pre_right"], ev["post_right"])  # the rule label_source="task" labels with


def _groups(o: O.Outcomes) -> list[str]:
    """ALL, then each task when there are several (a mixture), as the tables above."""
    tasks = o.tasks()
    return ["ALL"] + (tasks if len(tasks) > 1 else [])


def accuracy_table(outs: list[O.Outcomes]) -> str:
    head = ["| run | task | n (accuracy, 95% Wilson interval) | " + " | ".join(NAMES[k] for k in SYSTEMS)
            + " | independence oracle 1-(1-pre)(1-post) | majority answer | own most common answer: pre / post / "
            "answer-only / ATM |", "|---|---|---|" + "---|" * (len(SYSTEMS) + 3)]
    for o in outs:
        for g in _groups(o):
            rows = o.subset(g)
            right = {k: _right(rows, k) for k in SYSTEMS}
            cells = ["-" if x is None else _interval(sum(x), len(x)) for x in right.values()]
            pre, post = right["pre"], right["post"]
            cells.append("-" if pre is None or post is None else
                         f"{S.independence_oracle(sum(pre) / len(pre), sum(post) / len(post)):.3f}")
            gold, share = S.most_common_share([r["gold"] or None for r in rows])
            cells.append("-" if gold is None else f"{share:.3f} ({gold})")
            own = [S.most_common_share([r[f"{s}_answer"] or None for r in rows]) if right[s] else None
                   for s in STUDENTS]
            cells.append(" / ".join("-" if x is None or x[0] is None else f"{x[0]} {x[1]:.2f}" for x in own))
            head.append(f"| {o.name} | {g} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(head)


def paired_cells(atm: list[bool], other: list[bool]) -> tuple[str, str, str]:
    """(b / c, exact McNemar p, ATM - other with Newcombe's 95% interval) of ATM against another system."""
    a, b, c, d = S.paired_counts(atm, other)
    return f"{b} / {c}", _p(S.mcnemar_exact(b, c)), _diff(*S.paired_difference_interval(a, b, c, d))


def paired_table(outs: list[O.Outcomes]) -> str:
    head = ["| run | task | ATM vs | only ATM right / only it right (b / c) | exact McNemar p | ATM - it (95%, "
            "Newcombe) |", "|---|---|---|---|---|---|"]
    for o in outs:
        for g in _groups(o):
            rows = o.subset(g)
            atm = _right(rows, "atm")
            for s in SINGLE:
                other = _right(rows, s)
                if atm is not None and other is not None:
                    head.append(f"| {o.name} | {g} | {NAMES[s]} | " + " | ".join(paired_cells(atm, other)) + " |")
    return "\n".join(head)


def better_table(outs: list[O.Outcomes]) -> str:
    head = ["| run | task | training k-fold: pre right / post right of n | better single mode | its test accuracy "
            "| ATM | b / c | exact McNemar p | ATM - it (95%, Newcombe) |", "|---|---|---|---|---|---|---|---|---|"]
    for o in outs:
        for g in _groups(o):
            ev, rows = o.evidence.get(g), o.subset(g)
            mode = better_mode(ev)
            atm, other = _right(rows, "atm"), mode and _right(rows, mode)
            if atm is None or not other:
                head.append(f"| {o.name} | {g} | " + ("-" if ev is None else _evidence(ev)) + " | -" * 6 + " |")
                continue
            head.append(f"| {o.name} | {g} | {_evidence(ev)} | {mode} | {sum(other) / len(other):.3f} | "
                        f"{sum(atm) / len(atm):.3f} | " + " | ".join(paired_cells(atm, other)) + " |")
    return "\n".join(head)


def _evidence(ev: dict) -> str:
    return f"{ev['pre_right']} / {ev['post_right']} of {ev['n']}"


def _same_questions(outs: list[O.Outcomes]) -> None:
    ids = [[r["id"] for r in o.rows] for o in outs]
    if any(i != ids[0] for i in ids):
        raise DataError("--seeds pools runs over the same test questions, and these runs answer different ones: "
                        + ", ".join(f"{o.name} ({len(o.rows)})" for o in outs))


def pooled_tables(outs: list[O.Outcomes]) -> str:
    """Over the runs (seeds) of one setup, per task: each accuracy's mean with a 95% bootstrap interval over
    questions, and ATM against each run's better single mode (paired bootstrap, pooled McNemar)."""
    _same_questions(outs)
    acc = ["| task | runs pooled (mean, 95% bootstrap over questions) | " + " | ".join(NAMES[k] for k in SYSTEMS)
           + " |", "|---|---|" + "---|" * len(SYSTEMS)]
    vs = ["| task | runs | better single mode per run (training evidence) | ATM - it: mean (95% paired bootstrap) | "
          "share of resamples <= 0 (one-sided p) | pooled McNemar: b / c | exact p |", "|---|---|---|---|---|---|---|"]
    for g in _groups(outs[0]):
        rows = [o.subset(g) for o in outs]
        cells = []
        for k in SYSTEMS:
            x = [_right(r, k) for r in rows]
            cells.append("-" if None in x else "{mean:.3f} ({lo:.3f}-{hi:.3f})".format(**S.bootstrap_over_questions(x)))
        acc.append(f"| {g} | {len(outs)} | " + " | ".join(cells) + " |")
        modes = [better_mode(o.evidence.get(g)) for o in outs]
        atm = [_right(r, "atm") for r in rows]
        other = [_right(r, m) if m else None for r, m in zip(rows, modes)]
        if None in atm or None in other:
            vs.append(f"| {g} | {len(outs)} | " + ", ".join(m or "-" for m in modes) + " | - | - | - | - |")
            continue
        boot = S.paired_bootstrap(atm, other)
        b, c, p = S.pooled_mcnemar([S.paired_counts(x, y)[1:3] for x, y in zip(atm, other)])
        vs.append(f"| {g} | {len(outs)} | {', '.join(modes)} | {_diff(boot['mean'], boot['lo'], boot['hi'])} | "
                  f"{boot['p_le_0']:.3f} | {b} / {c} | {_p(p)} |")
    return "\n".join(acc) + "\n\n" + "\n".join(vs)


# ------------------------------------------------------------------------------------- where the chain breaks

def _labels(out: str) -> dict | None:
    """{training question id: the label the ATM student trained on} from out/labels.json; None without one."""
    path = os.path.join(out, "labels.json")
    if not os.path.isfile(path):
        return None
    labels = read_json(path)
    if not isinstance(labels, dict) or not all(isinstance(e, dict) and "label" in e for e in labels.values()):
        raise DataError(f"{path}: expected {{question id: {{label, pre_ok, post_ok, p_gold}}}}")
    return {q: e["label"] for q, e in labels.items()}


def _spread(values: list) -> str:
    values = [v for v in values if v is not None]
    return "-" if not values else "{min:.3f} / {max:.3f} / {std:.3f}".format(**S.spread(values))


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def chain_table(runs: list[tuple[str, str, dict, dict]]) -> str:
    """Per run (name, out_dir, results, predictions) with an ATM student, each link of the chain evidence ->
    labels -> perception -> routing: where its labels came from (--label_source) and how many say answer first
    (labels.json: what the ATM student trained on); the perception on training questions it did not train on
    (--atm_holdout): ROC AUC and agreement at 0.5 against their k-fold labels, and the spread of its p (a
    constant?); its test-set routing agreement with the oracle label; the spread of its p on the test set."""
    head = ["| run | label source | labels answer first | held out | AUC vs k-fold labels | agreement at 0.5 | "
            "held-out p: min / max / std | ATM's mode = test oracle's | test p(answer first): min / max / std |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, out, results, preds in runs:
        atm = results.get("atm")
        if not isinstance(atm, dict):
            continue
        cfg = O.recorded_config(results)
        labels = _labels(out)
        share = "-" if not labels else f"{sum(v == 'post' for v in labels.values())} of {len(labels)}"
        h = atm.get("holdout") or {}
        held = [str(h["n"]), _num(h["auc"]), _num(h["agreement"]),
                "{:.3f} / {:.3f} / {:.3f}".format(h["p_min"], h["p_max"], h["p_std"])] if h else ["-"] * 4
        head.append(f"| {name} | {cfg.label_source if cfg else '-'} | {share} | " + " | ".join(held)
                    + f" | {_num(atm.get('test_oracle_agreement'))} | "
                    + _spread([r.get("p_post") for r in preds.get("atm", [])]) + " |")
    return "\n".join(head)


def kappa_table(runs: list[tuple[str, str, dict, dict]]) -> str:
    """--seeds: Cohen's kappa between the labels of each pair of runs on the training questions both labelled
    (labels.json, by question id): do the seeds' fold students agree on which questions to answer first?"""
    head = ["| run | run | training questions in both | labels answer first: one / other | Cohen's kappa |",
            "|---|---|---|---|---|"]
    labels = [(name, _labels(out)) for name, out, _, _ in runs]
    labels = [(name, lab) for name, lab in labels if lab]
    for i, (a, x) in enumerate(labels):
        for b, y in labels[i + 1:]:
            ids = sorted(set(x) & set(y))
            if not ids:
                head.append(f"| {a} | {b} | 0 | - | - |")
                continue
            xs, ys = [x[q] for q in ids], [y[q] for q in ids]
            k = S.cohen_kappa(xs, ys)
            head.append(f"| {a} | {b} | {len(ids)} | {xs.count('post')} / {ys.count('post')} | "
                        + ("undefined (one label throughout)" if k != k else f"{k:.3f}") + " |")
    return "\n".join(head)


def statistics(outs: list[O.Outcomes], seeds: bool) -> str:
    """Tables 4-6 (and, with seeds, the pooled ones), from the runs' outcomes alone."""
    blocks = [accuracy_table(outs), paired_table(outs), better_table(outs)]
    return "\n\n".join(blocks + ([pooled_tables(outs)] if seeds else []))


def run_outcomes(name: str, out: str, results: dict, preds: dict, data: str | None) -> tuple[O.Outcomes, str]:
    """(a run's outcomes, where its gold answers came from). --data must hold the run's test questions; the data
    folder its recorded command names may have changed since, and then gold is left out with a note."""
    where = data or O.recorded_data_dir(out, results)
    test = where and os.path.join(where, "test.jsonl")
    if data and not os.path.isfile(test):
        raise DataError(f"--data {data}: no test.jsonl there; give the data folder the runs were trained on")
    if not data and (not test or not os.path.isfile(test)):
        return O.from_run(name, out, results, preds, None), (f"not found ({test}); give --data DIR" if test else
                                                            "unknown (no run.command in results.json); give --data DIR")
    try:
        return O.from_run(name, out, results, preds, O.read_gold(where)), test
    except DataError as e:
        if data:
            raise
        return O.from_run(name, out, results, preds, None), f"not used, {e}".split("\n")[0]


def _one_setup(tasks: dict) -> None:
    """--seeds: the runs must be one setup, with the same tasks."""
    if len(set(tasks.values())) > 1:
        raise ConfigError("--seeds takes runs of one setup (the same tasks), and these differ: "
                          + "; ".join(f"{name}: {', '.join(t)}" for name, t in tasks.items()))


def predictions(out: str, results: dict) -> dict:
    """The run's predictions_*.jsonl; a run that trained no baselines on another run's fold evidence
    (--evidence_from, --baselines=false: the chain-break runs) gets that run's baselines' (from_run checks that
    they answered the same test questions), so ATM is still paired with each single mode."""
    preds = read_predictions(out, STUDENTS)
    cfg = O.recorded_config(results) if "pre" not in preds else None
    if cfg is not None and cfg.evidence_from:
        source = O.recorded_path(cfg.evidence_from, out)
        preds = {**read_predictions(source, SINGLE), **preds} if os.path.isdir(source) else preds
    return preds


def from_runs(a) -> str:
    """The tables and statistics of the run folders a.out_dirs; their outcome files written when a.outcomes."""
    runs = []
    for out in a.out_dirs:  # the plot command's readers: the same checks and messages
        results = read_results(out)
        runs.append((os.path.basename(os.path.normpath(out)), results, predictions(out, results)))
    if a.seeds:
        _one_setup({name: _tasks(results) for name, results, _ in runs})
    outs, gold = [], []
    try:
        for (name, results, preds), out in zip(runs, a.out_dirs):
            o, where = run_outcomes(name, out, results, preds, a.data)
            outs.append(o)
            gold.append(f"{name}: {where}")
        text = tables(runs, a.max_new_tokens) + ("\n\n" + spread(runs) if a.seeds else "")
    except (KeyError, TypeError) as e:
        raise DataError(f"a results.json or prediction without the field {e}: written by another version of "
                        "train.py?") from None
    if a.outcomes:
        if len({o.name for o in outs}) < len(outs):
            raise ConfigError("--outcomes names each file after its run's folder, and two runs share a name")
        os.makedirs(a.outcomes, exist_ok=True)
        for o in outs:
            O.write_outcomes(o, os.path.join(a.outcomes, f"{o.name}.tsv"))
    named = [(name, out, results, preds) for (name, results, preds), out in zip(runs, a.out_dirs)]
    chain = [chain_table(named)] + ([kappa_table(named)] if a.seeds else [])
    return "\n\n".join([text, statistics(outs, a.seeds), *chain]) + "\n\nGold answers: " + "; ".join(gold) + "."


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dirs", nargs="*", help="finished runs' out_dir folders")
    p.add_argument("--max_new_tokens", type=int, default=160, help="the runs' max_new_tokens (a cut answer used "
                                                                   "them all)")
    p.add_argument("--seeds", action="store_true", help="the runs are one setup with different seeds: add the "
                                                        "mean and range of each accuracy over them, and pool them")
    p.add_argument("--data", metavar="DIR", help="the runs' data folder, whose test.jsonl holds their gold answers "
                                                 "(default: the one each run's recorded command names)")
    p.add_argument("--outcomes", metavar="DIR", help="also write each run's per-question outcomes to DIR/<run>.tsv")
    p.add_argument("--from-outcomes", nargs="+", metavar="FILE", help="the statistics from outcome files alone "
                                                                      "(written by --outcomes), no run folders")
    try:
        a = p.parse_args(argv)
        if bool(a.out_dirs) == bool(a.from_outcomes):
            raise ConfigError("give finished runs' folders, or --from-outcomes FILE ...: one of the two")
        if a.from_outcomes:
            outs = [O.read_outcomes(f) for f in a.from_outcomes]
            if a.seeds:
                _one_setup({o.name: tuple(o.tasks()) for o in outs})
            print(statistics(outs, a.seeds))
        else:
            print(from_runs(a))
    except (ProjectError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

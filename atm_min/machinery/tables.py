"""Machinery: the plain-text tables train.py and sample.py print (results by group and mechanism; k-fold evidence)."""

from __future__ import annotations

REFERENCE = ("oracle", "random")  # rows computed from the pre and post students' answers (evaluate.py)


def format_table(results: dict) -> str:
    """A plain-text table: one row per group (and overall), one block of columns per mechanism: accuracy, the
    share of questions answered first (post%) and generated tokens per question."""
    mechs = list(results)
    groups = sorted({g for r in results.values() for g in r["by_group"]})
    w = 19  # "  0.995  49%  29.5"
    head1 = f"{'':<14}" + "".join(f"{m:>{w}}" for m in mechs)
    head2 = f"{'group':<14}" + f"{'acc  post%   tok':>{w}}" * len(mechs)
    lines = [head1, head2, "-" * len(head2)]

    def row(name, stats):
        cells = ""
        for m in mechs:
            s = stats(m)
            cells += f"{s['accuracy']:>7.3f}{100 * s['post_fraction']:>5.0f}%{s['avg_new_tokens']:>6.1f}" \
                if s else " " * w
        return f"{name:<14}" + cells

    for g in groups:
        lines.append(row(g, lambda m: results[m]["by_group"].get(g)))
    lines.append(row("ALL", lambda m: results[m]))
    # the reference rows (oracle, random) are computed from other students' answers: they generate nothing
    lines.append(f"{'ms/question':<14}" + "".join(f"{'-':>{w}}" if m in REFERENCE else
                                                   f"{results[m]['ms_per_question']:>{w}.2f}" for m in mechs))
    return "\n".join(lines)



def format_label_counts(counts: dict) -> str:
    """evidence_counts as a plain-text table, one row per group."""
    cols = ("n", "pre_only", "post_only", "both", "neither", "label_post")
    head = f"{'k-fold evidence':<16}" + "".join(f"{c.replace('_', ' '):>11}" for c in cols)
    rows = [head, "-" * len(head)]
    for g, c in counts.items():
        if g != "ALL":
            rows.append(f"{g:<16}" + "".join(f"{c[k]:>11}" for k in cols))
    rows.append(f"{'ALL':<16}" + "".join(f"{counts['ALL'][k]:>11}" for k in cols))
    return "\n".join(rows)


def format_decided(results: dict) -> str:
    """Accuracy per family on the questions the training data decide, and on the traps they leave open
    (machinery/decided.py), one column per mechanism: the per-group targets are read from the first rows."""
    mechs = [m for m, r in results.items() if isinstance(r, dict) and "traps" in r]
    if not mechs:
        return ""
    first = results[mechs[0]]
    families = [g for g in first["decided"]["by_group"] if "/" not in g]
    w = 9
    head = f"{'':<18}{'n':>5}" + "".join(f"{m:>{w}}" for m in mechs)
    lines = [f"accuracy on the questions the training data decide, and on the {first['traps']['n']} traps they leave "
             f"open (data/traps.py):", head, "-" * len(head)]

    def row(name, n, get):
        lines.append(f"{name:<18}{n:>5}" + "".join(f"{get(results[m]):>{w}.3f}" for m in mechs))

    for g in families:
        row(f"{g}, decided", first["decided"]["by_group"][g]["n"], lambda r: r["decided"]["by_group"][g]["accuracy"])
    row("ALL, decided", first["decided"]["n"], lambda r: r["decided"]["accuracy"])
    row("traps", first["traps"]["n"], lambda r: r["traps"]["accuracy"])
    return "\n".join(lines)


def format_summary(results: dict, decider: str = "soft_prompt") -> str:
    """What train.py prints at the end of a run: the results table; on the built-in suite, the questions the
    training data decide and the traps they leave open; for ATM the k-fold evidence and how often the decider
    agrees with the training labels and the test-set oracle."""
    lines = [format_table(results)]
    if any("traps" in r for r in results.values()):
        lines.append(format_decided(results))
    if "atm" in results:
        atm = results["atm"]
        lines.append(format_label_counts(atm["label_counts"]))
        who = {"soft_prompt": "the perception", "mode_token": "the mode token", "router": "the router"}[decider]
        lines.append(f"atm: {who} agrees with the k-fold labels on {100 * atm['label_agreement']:.1f}% of training "
                     f"questions" + (f" and with the test-set oracle label on {100 * atm['test_oracle_agreement']:.1f}% "
                                     f"of test questions" if "test_oracle_agreement" in atm else ""))
        if "holdout" in atm:
            lines.append(format_holdout(atm["holdout"], who))
    return "\n".join(lines)


def format_holdout(h: dict, who: str = "the perception") -> str:
    """train.py's holdout_check (--atm_holdout) as one line: AUC, agreement and spread of p(answer first) on the
    training questions the ATM student did not train on."""
    auc = lambda a: "undefined (one label only)" if a is None else f"{a:.3f}"  # noqa: E731
    own = (f"; against the labels it trained with: AUC {auc(h['auc_own'])}, agreement {100 * h['agreement_own']:.1f}%"
           if "auc_own" in h else "")
    return (f"atm: on {h['n']} held-out training questions {who}'s p(answer first) has AUC {auc(h['auc'])} against "
            f"their k-fold labels, agreement {100 * h['agreement']:.1f}% at 0.5; p from {h['p_min']:.3f} to "
            f"{h['p_max']:.3f} (std {h['p_std']:.3f})" + own)

"""What a training run leaves in out_dir, read back and drawn: the plot command's library (plot.py is its CLI).

    out_dir/results.json           {mechanism: {accuracy, avg_new_tokens, post_fraction, by_group, ...}, ...}
    out_dir/log.jsonl              one line per student per log interval: {student, step, loss, aux?, lr, ...}
    out_dir/predictions_*.jsonl    one line per test question: {id, group, text, mode, correct, new_tokens, p_post}
    out_dir/ckpt.pt                the main student (and its perception, for ATM)

    out_dir/labels.json            per training question: {label, pre_ok, post_ok, p_gold} (ATM runs)

Seven figures go to out_dir/plots/ and out_dir/report.md embeds them with the results table:
    loss.png          every student's training loss (single batches, and their running mean)
    tradeoff.png      accuracy vs generated tokens per question, per mechanism: overall and per group
    curve.png         the ATM student's accuracy / cost curve over thresholds on p(answer first) (atm.tradeoff)
    chain_length.png  accuracy and answer-first share against chain length, per mechanism
    p_post.png        the perception's p(answer first) on every test question, by group
    p_gold.png        the fold post students' p(gold answer) on the training questions, by group, and the label
                      rule's threshold
    attention.png     the perception's attention over a few test questions

Readers are generic: any results entry with an accuracy and avg_new_tokens is a mechanism, unknown keys are
listed as they are, and a missing input skips its figure with a note instead of failing the report.
matplotlib is imported inside the drawing functions, so the rest of the project never needs it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict

from .errors import DataError
from ..formats import group_levels
from .data import write_text_atomic

FIGURES = ("loss", "tradeoff", "curve", "chain_length", "p_post", "p_gold", "attention")
# Fixed colours for the mechanisms the project knows, so a mechanism looks the same in every figure.
KNOWN = ("pre", "post", "atm", "answer", "oracle", "random")
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan")
MARKERS = "osD^vP*Xh<>"


def color(name: str, names) -> str:
    order = list(KNOWN) + [n for n in names if n not in KNOWN]
    return COLORS[order.index(name) % len(COLORS)] if name in order else "black"


# ----------------------------------------------------------------------------------------------------- reading

def read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read it ({e})") from e


def read_jsonl(path: str) -> tuple[list[dict], int]:
    """(records, number of unreadable lines). A run killed mid-write leaves a partial last line: skip, count."""
    rows, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def mechanisms(results: dict) -> dict:
    """The entries of results.json that are mechanisms (train.py's summaries: an accuracy, a token cost and the
    rest of the table's columns), in file order."""
    return {k: v for k, v in results.items()
            if isinstance(v, dict) and _number(v.get("accuracy")) and _number(v.get("avg_new_tokens"))
            and _number(v.get("post_fraction")) and _number(v.get("ms_per_question"))
            and isinstance(v.get("by_group"), dict)}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_results(out_dir: str) -> dict:
    if not os.path.isdir(out_dir):
        raise DataError(f"{out_dir}: no such directory (give the out_dir of a training run)")
    path = os.path.join(out_dir, "results.json")
    if not os.path.isfile(path):
        raise DataError(f"{path} not found: train first, e.g. `python train.py --out_dir={out_dir}`")
    results = read_json(path)
    if not isinstance(results, dict) or not mechanisms(results):
        raise DataError(f"{path} holds no results (no entry with accuracy and avg_new_tokens)")
    return results


def read_log(path: str) -> tuple[dict[str, dict[str, list]], int]:
    """({student: {"step": [...], "loss": [...], "aux": [...]}}, unreadable lines). The log is appended to, so a
    rerun into the same out_dir adds a second run of a student: a step that does not go up starts it afresh and
    only the last run is kept (a --resume continues with higher steps and stays one curve)."""
    rows, bad = read_jsonl(path)
    curves: dict[str, dict[str, list]] = {}
    for r in rows:
        name, step, loss = r.get("student"), r.get("step"), r.get("loss")
        if not isinstance(name, str) or not _number(step) or not _number(loss):
            bad += 1
            continue
        c = curves.get(name)
        if c is None or step <= c["step"][-1]:
            c = curves[name] = {"step": [], "loss": [], "aux": []}
        c["step"].append(step)
        c["loss"].append(loss)
        c["aux"].append(r["aux"] if _number(r.get("aux")) else None)
    return curves, bad


def read_predictions(out_dir: str, names) -> dict[str, list[dict]]:
    out = {}
    for name in names:
        path = os.path.join(out_dir, f"predictions_{name}.jsonl")
        if os.path.isfile(path):
            out[name] = read_jsonl(path)[0]
    return out


# ----------------------------------------------------------------------------------------------------- figures

def _plt():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed (CI, servers)
    import matplotlib.pyplot as plt
    return plt


def _smooth(values: list, k: int = 5) -> list:
    """Trailing mean over the last k values: the logged losses are single batches, noisy."""
    return [sum(values[max(0, i - k + 1):i + 1]) / (i + 1 - max(0, i - k + 1)) for i in range(len(values))]


def plot_losses(curves: dict, path: str) -> None:
    """Training loss per student: each logged value is ONE batch's loss, logged every log_interval steps (faint),
    with its running mean over 5 log points (bold); fold students (they only label) faint, coloured by mode."""
    plt = _plt()
    has_aux = any(a is not None for c in curves.values() for a in c["aux"])
    fig, axes = plt.subplots(1, 2 if has_aux else 1, figsize=(12 if has_aux else 7, 4.4), squeeze=False)
    ax = axes[0, 0]
    main = [n for n in curves if not n.startswith("fold")]
    steps = sorted({b - a for c in curves.values() for a, b in zip(c["step"], c["step"][1:]) if b > a})
    every = f"every {steps[0]} steps" if steps else "at each log step"
    for name, c in curves.items():
        if name.startswith("fold"):  # "fold 2/5 post"
            mode = name.split()[-1]
            ax.plot(c["step"], _smooth(c["loss"]), color=color(mode, main), alpha=0.3, lw=0.8)
        else:
            ax.plot(c["step"], c["loss"], color=color(name, main), lw=0.6, alpha=0.35)
            ax.plot(c["step"], _smooth(c["loss"]), color=color(name, main), lw=1.8, label=name)
    if len(main) < len(curves):
        ax.plot([], [], color="gray", alpha=0.4, lw=0.8, label="k-fold students (colour: mode)")
    ax.set(xlabel="step", ylabel="loss of one training batch (log scale)", yscale="log",
           title=f"Training loss: one batch's loss {every} (faint), mean of 5 (bold)")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if has_aux:
        ax = axes[0, 1]
        for name, c in curves.items():
            pts = [(s, a) for s, a in zip(c["step"], c["aux"]) if a is not None]
            if pts:
                ax.plot(*zip(*pts), color=color(name, main), lw=1.5, label=name)
        ax.set(xlabel="step", ylabel="BCE of one batch", title="Perception: answer-first classification loss (aux)")
        ax.title.set_fontsize(10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


REFERENCE = ("oracle", "random")  # rows computed from the pre and post students' answers: nobody was trained


def _style(name: str, names) -> dict:
    """Trained students: filled markers; the reference rows: hollow, so they never read as trained students."""
    c = color(name, names)
    marker = MARKERS[list(names).index(name) % len(MARKERS)] if name in names else "o"
    if name in REFERENCE:
        return dict(marker=marker, facecolors="none", edgecolors=c, linewidths=1.6)
    return dict(marker=marker, color=c)


def _label_points(ax, points, fontsize=8, color="black", dy=-10):
    """Write each name beside its own point. Names whose markers sit on one spot share one label; a label that would
    touch an earlier one moves a line further out, with a thin line to its point, so no label names another point."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    groups = []
    for name, x, y in points:
        for g in groups:
            if abs(g[1] - x) < 0.01 * (x1 - x0) and abs(g[2] - y) < 0.01 * (y1 - y0):  # one marker on the other
                g[0].append(name)
                break
        else:
            groups.append([[name], x, y])
    placed = []
    for names, x, y in groups:
        # labels within this distance would touch: each earlier one nearby pushes this one a line further out
        near = sum(1 for px, py in placed if abs(px - x) < 0.09 * (x1 - x0) and abs(py - y) < 0.05 * (y1 - y0))
        placed.append((x, y))
        right = x > x0 + 0.7 * (x1 - x0)  # near the right edge: write to the left, inside the axes
        shift = dy + near * (fontsize + 3) * (1 if dy > 0 else -1)
        line = dict(arrowstyle="-", lw=0.5, color=color) if near else None
        ax.annotate("; ".join(names), (x, y), textcoords="offset points", xytext=(-6 if right else 6, shift),
                    ha="right" if right else "left", fontsize=fontsize, color=color, arrowprops=line)


def plot_tradeoff(mechs: dict, path: str) -> None:
    """Accuracy vs generated tokens per question, one point per mechanism: overall, then each group. All panels
    share one x-range; points that coincide are spread a little sideways (they are equal, not hidden)."""
    plt = _plt()
    groups = sorted({g for m in mechs.values() for g in m.get("by_group", {}) if isinstance(g, str)},
                    key=lambda g: (g.count("/"), g))
    panels = [("all questions", None)] + [(g, g) for g in groups]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.4 * nrows), squeeze=False)
    names = list(mechs)
    xmax = max([m["avg_new_tokens"] for m in mechs.values()] +
               [s["avg_new_tokens"] for m in mechs.values() for s in m.get("by_group", {}).values()
                if isinstance(s, dict) and _number(s.get("avg_new_tokens"))])
    xmax = 1.08 * xmax if xmax > 0 else 1.0
    for k, (title, g) in enumerate(panels):
        ax = axes[k // ncols, k % ncols]
        ax.set_xlim(0, xmax)
        ax.set_ylim(-0.03, 1.08)
        pts = []
        for name, m in mechs.items():
            s = m if g is None else m.get("by_group", {}).get(g)
            if s and _number(s.get("accuracy")) and _number(s.get("avg_new_tokens")):
                pts.append((name, s["avg_new_tokens"], s["accuracy"]))
        for name, x, y in pts:
            twins = [n for n, x2, y2 in pts if abs(x2 - x) < 0.03 * xmax and abs(y2 - y) < 0.03]
            dx = (twins.index(name) - (len(twins) - 1) / 2) * 0.025 * xmax if len(twins) > 1 else 0.0
            ax.scatter(x + dx, y, s=55, label=name, zorder=3, alpha=0.9, **_style(name, names))
        if g is None:
            _label_points(ax, pts)
        n = next((m.get("n") if g is None else m.get("by_group", {}).get(g, {}).get("n") for m in mechs.values()),
                 None)
        ax.set_title(f"{title} (n={n})" if n else title, fontsize=10)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("accuracy")
        if k // ncols == nrows - 1 or k + ncols >= len(panels):
            ax.set_xlabel("generated tokens / question")
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    labels = [f"{n} (reference: not trained)" if n in REFERENCE else n for n in labels]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("Accuracy vs cost: up and to the left is better (hollow: reference rows from the pre and post "
                 "students' answers)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curve(mechs: dict, curve: list[dict], path: str) -> None:
    """The ATM student's accuracy / cost curve (results.json atm.tradeoff: one point per threshold on p(answer
    first)), with the baselines, the ATM student's own choice and the reference rows on the same axes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.4))
    names = list(mechs)
    xs, ys = [p["tokens"] for p in curve], [p["accuracy"] for p in curve]
    ax.plot(xs, ys, "-", color=color("atm", names), lw=1.2, alpha=0.6, zorder=2)
    ax.scatter(xs, ys, color=color("atm", names), marker=".", s=60, zorder=3,
               label="ATM student, answer first where p(answer first) > t")
    runs = []  # consecutive thresholds that give the same point share one label
    for p in curve:
        if runs and (runs[-1][-1]["tokens"], runs[-1][-1]["accuracy"]) == (p["tokens"], p["accuracy"]):
            runs[-1].append(p)
        else:
            runs.append([p])
    labels = []
    for run in runs:
        ts = [p["threshold"] for p in run]
        low = [t for t in ts if t >= 0]
        if not low:
            text = "t < 0"
        elif any(t < 0 for t in ts):
            text = f"t <= {low[-1]:g}"
        else:
            text = f"t = {low[0]:g}" if len(low) == 1 else f"t = {low[0]:g}-{low[-1]:g}"
        labels.append((text, run[0]["tokens"], run[0]["accuracy"]))
    pts = []
    for name, m in mechs.items():
        shown = f"{name} (own choice)" if name == "atm" else name
        ax.scatter(m["avg_new_tokens"], m["accuracy"], s=70, zorder=4, label=shown, **_style(name, names))
        pts.append((shown, m["avg_new_tokens"], m["accuracy"]))
    top = max(xs + [m["avg_new_tokens"] for m in mechs.values()])
    ax.set(xlim=(0, 1.1 * top), ylim=(-0.03, 1.05), xlabel="generated tokens / question", ylabel="accuracy",
           title="ATM's accuracy / cost curve: one trained student, the threshold moved at test time")
    ax.title.set_fontsize(10)
    _label_points(ax, pts)
    _label_points(ax, labels, color=color("atm", names), dy=6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chain_levels(mechs: dict, family: str = "multistep") -> list[int]:
    """The numbered levels of a family that every mechanism has, e.g. [1, ..., 6] for multistep/1..6."""
    levels = None
    for m in mechs.values():
        have = {int(g.split("/")[1]) for g in m.get("by_group", {})
                if g.startswith(family + "/") and g.split("/")[1].isdigit()}
        levels = have if levels is None else levels & have
    return sorted(levels or [])


def plot_chain_length(mechs: dict, path: str, family: str = "multistep") -> None:
    """Accuracy and answer-first share against chain length, one line per mechanism: the paper's message in one
    figure (answering first wins on short chains, thinking first on long ones, ATM switches between them)."""
    plt = _plt()
    levels = chain_levels(mechs, family)
    names = list(mechs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, m in mechs.items():
        stats = [m["by_group"][f"{family}/{n}"] for n in levels]
        ref = name in REFERENCE
        for ax, key in zip(axes, ("accuracy", "post_fraction")):
            ax.plot(levels, [s[key] for s in stats], color=color(name, names), ls="--" if ref else "-",
                    marker=MARKERS[names.index(name) % len(MARKERS)], mfc="none" if ref else color(name, names),
                    lw=1.2 if ref else max(1.5, 4.5 - 0.8 * names.index(name)), ms=7 - names.index(name) % 4,
                    label=f"{name} (reference)" if ref else name)  # earlier lines wider: coinciding ones show
    axes[0].set(xlabel="operations in the chain", ylabel="accuracy", ylim=(-0.03, 1.05),
                title="Accuracy by chain length")
    axes[1].set(xlabel="operations in the chain", ylabel="share answered first", ylim=(-0.03, 1.05),
                title="Answered first (post%) by chain length")
    for ax in axes:
        ax.set_xticks(levels)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Chain length: lines that coincide are drawn one above the other, the first widest", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _group_order(g: str):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", g)]


def plot_p_post(preds: dict[str, list[dict]], path: str) -> None:
    """p(answer first) on every test question: one column of dots per group (every finer group has its own, the
    2-step chains included), one panel per mechanism that has a perception; filled = answered right."""
    plt = _plt()
    rows = {name: [r for r in recs if _number(r.get("p_post"))] for name, recs in preds.items()}
    rows = {k: v for k, v in rows.items() if v}
    groups = sorted({(group_levels(r.get("group")) or ["(no group)"])[-1] for v in rows.values() for r in v},
                    key=_group_order)
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(7.0, 1.0 * len(groups) + 2), 3.6 * len(rows)),
                             squeeze=False)
    for ax, (name, recs) in zip(axes[:, 0], rows.items()):
        for j, g in enumerate(groups):
            mine = [r for r in recs if ((group_levels(r.get("group")) or ["(no group)"])[-1]) == g]
            for k, r in enumerate(mine):
                x = j + 0.7 * ((k * 0.618034) % 1.0 - 0.5)  # spread the dots sideways, deterministically
                ok = bool(r.get("correct"))
                ax.scatter(x, r["p_post"], s=9, color=COLORS[j % len(COLORS)] if ok else "none",
                           edgecolors=COLORS[j % len(COLORS)], linewidths=0.6, alpha=0.7)
            if mine:
                first = sum(r["p_post"] > 0.5 for r in mine)
                ax.annotate(f"{first}/{len(mine)}", (j, 1.04), ha="center", fontsize=8)
        ax.axhline(0.5, color="black", ls=":", lw=1)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8, rotation=30 if len(groups) > 8 else 0)
        ax.set(ylim=(-0.04, 1.1), ylabel="p(answer first)",
               title=f"{name}: the perception's p(answer first) per test question (filled: answered right; "
                     f"numbers: above 0.5 / in the group)")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_p_gold(rows: list[tuple[str, dict]], threshold: float, path: str) -> None:
    """The held-out post fold students' p(gold answer) on the training questions, one panel per group, split by
    whether their greedy answer was right; the label rule's threshold (post_confidence) marked. rows: (group,
    labels.json entry {label, pre_ok, post_ok, p_gold})."""
    plt = _plt()
    groups = sorted({g for g, _ in rows}, key=_group_order)
    ncols = min(5, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.9 * nrows + 0.6), squeeze=False)
    bins = [i / 20 for i in range(21)]
    for k, g in enumerate(groups):
        ax = axes[k // ncols, k % ncols]
        mine = [e for gg, e in rows if gg == g and _number(e.get("p_gold"))]
        right = [e["p_gold"] for e in mine if e.get("post_ok")]
        wrong = [e["p_gold"] for e in mine if not e.get("post_ok")]
        ax.hist([right, wrong], bins=bins, stacked=True, color=["tab:green", "tab:gray"],
                label=["post student right", "post student wrong"])
        ax.axvline(threshold, color="black", ls="--", lw=1)
        sure = sum(p >= threshold for p in right)
        labelled = sum(1 for e in mine if e.get("label") == "post")
        ax.set_title(f"{g}: {len(right)} of {len(mine)} right,\n{sure} sure (>= {threshold:g}); "
                     f"{labelled} labelled post", fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel("training questions", fontsize=8)
        if k // ncols == nrows - 1 or k + ncols >= len(groups):
            ax.set_xlabel("p(gold answer), post fold student", fontsize=8)
    for k in range(len(groups), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(f"Why a question is labelled answer first: the held-out post student must be right and give the "
                 f"gold answer p >= {threshold:g} (dashed; label_rule=confident_post)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pick_questions(examples, n: int = 4):
    """A few test examples that span the groups: per top-level group, its easiest and hardest finer group."""
    by_top = defaultdict(dict)
    for ex in examples:
        levels = group_levels(ex.group) or ["(no group)"]
        by_top[levels[0]].setdefault(levels[-1], ex)  # the first example of each finer group
    picked = []
    for top in sorted(by_top):
        fine = sorted(by_top[top], key=lambda g: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", g)])
        picked += [by_top[top][fine[0]]] + ([by_top[top][fine[-1]]] if len(fine) > 1 else [])
    return (picked or list(examples))[:n]


def plot_attention(maps, path: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(len(maps), 1, figsize=(max(6.0, 0.28 * max(len(m[0]) for m in maps) + 2.5),
                                                     1.0 + 0.35 * sum(m[2].shape[0] + 2.5 for m in maps)),
                             squeeze=False)
    for ax, (pieces, p, att) in zip(axes[:, 0], maps):
        im = ax.imshow(att, aspect="auto", cmap="viridis", vmin=0)
        ax.set_xticks(range(len(pieces) + 1))
        ax.set_xticklabels(["feat"] + [p_.replace(" ", "\u2423") for p_ in pieces], fontsize=8,
                           rotation=90 if any(len(p_) > 2 for p_ in pieces) else 0)
        ax.set_yticks(range(att.shape[0]))
        ax.set_yticklabels([f"query {k}" for k in range(att.shape[0])], fontsize=8)
        ax.set_title(f"{''.join(pieces)!r}   p(answer first) = {p:.2f}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle("Perception attention (last block, mean over heads): feat = the feature token", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------- report

def training_command(results: dict, ck_config: dict | None) -> tuple[str | None, str]:
    """(the training command, where it came from): the one train.py recorded (results.json's run.command), else
    one rebuilt from the checkpoint's config: the settings that differ from TrainConfig's defaults (the same run,
    if the defaults have not changed since)."""
    run = results.get("run") if isinstance(results.get("run"), dict) else {}
    if isinstance(run.get("command"), str) and run["command"].strip():
        return run["command"].strip(), "results.json's run.command"
    if isinstance(ck_config, dict):
        from .config import TrainConfig
        defaults = TrainConfig().__dict__
        args = [f"--{k}={v}" for k, v in ck_config.items() if k in defaults and v != defaults[k]]
        return "python train.py " + " ".join(args), ("rebuilt from ckpt.pt's config: the settings that differ "
                                                      "from today's defaults")
    return None, "no record of the training command (no run.command in results.json, no config in ckpt.pt)"


STANDARD_KEYS = {"accuracy", "n", "post_fraction", "avg_new_tokens", "ms_per_question", "by_group"}
OWN_SECTION = {"tradeoff", "decided", "traps"}  # keys report.md shows in sections of their own
# What the numbers beyond the table mean (train.py computes them; atm_min/evaluate.py agreement)
MEANING = {
    "label_agreement": "how often the perception's p(answer first) > 0.5 agrees with the k-fold label, over the "
                       "training questions (did it learn its labels?)",
    "test_oracle_agreement": "how often the perception's p(answer first) > 0.5 agrees with the test-set oracle "
                             "label: the label rule applied to the pre and post baselines' test answers (does "
                             "it route unseen questions as the evidence would?)",
    "holdout": "--atm_holdout: the perception's p(answer first) on training questions the ATM student did not "
               "train on, against their k-fold labels: ROC AUC, agreement at 0.5, and p's spread (a constant?)",
    "label_counts": "the k-fold evidence per group: which of the held-out pre and post fold students was right, "
                    "and how many questions were labelled answer first",
}


def _markdown(name: str, v) -> list[str]:
    """One bullet for a value; a table for a {row: {column: number}} dict (e.g. label counts by group)."""
    if isinstance(v, dict) and v and all(isinstance(r, dict) and r for r in v.values()):
        cols = list(dict.fromkeys(c for r in v.values() for c in r))
        cell = lambda x: f"{x:.3g}" if isinstance(x, float) else str(x)  # noqa: E731
        return [f"- {name}:", "", "  | | " + " | ".join(cols) + " |", "  |" + "---|" * (len(cols) + 1)] + \
            [f"  | {r} | " + " | ".join(cell(row.get(c, "")) for c in cols) + " |" for r, row in v.items()] + [""]
    if isinstance(v, float):
        return [f"- {name}: {v:.4g}"]
    text = json.dumps(v)
    return [f"- {name}: `{text if len(text) < 300 else text[:300] + ' ...'}`"]


def other_numbers(results: dict, mechs: dict) -> list[str]:
    """Everything else results.json holds (label agreement, label counts, ...), as markdown."""
    lines = []
    for name, m in mechs.items():
        for k, v in m.items():
            if k not in STANDARD_KEYS and k not in OWN_SECTION:
                lines += _markdown(f"{name} {k}" + (f" ({MEANING[k]})" if k in MEANING else ""), v)
    for k, v in results.items():
        if k not in mechs:
            lines += _markdown(k, v)
    return lines


def decided_section(mechs: dict) -> list[str]:
    """Accuracy on the questions the training data decide, and on the traps they leave open (machinery/decided.py)."""
    from .tables import format_decided
    table = format_decided(mechs)
    if not table:
        return []
    return ["The per-group targets are read on the questions the training data decide; the traps, parity "
            "questions the filtered training data leave open (`data/traps.py`), are counted beside them:", "",
            "```text", table, "```", ""]


def curve_section(results: dict) -> list[str]:
    """atm.tradeoff as a table: one row per threshold on p(answer first)."""
    curve = results.get("atm", {}).get("tradeoff") if isinstance(results.get("atm"), dict) else None
    if not isinstance(curve, list) or not curve:
        return []
    lines = ["The ATM student's accuracy / cost curve (`results.json` `atm.tradeoff`): a question is answered "
             "first when its p(answer first) > t, else thought through (the student's output started with that "
             "mode's marker, the soft prompt kept); t < 0 is the same student forced to answer first, t = 1 "
             "forced to think first:", "", "| threshold t | accuracy | tokens / question | answered first |",
             "|---|---|---|---|"]
    for p in curve:
        lines.append(f"| {p['threshold']:g} | {p['accuracy']:.3f} | {p['tokens']:.1f} | "
                     f"{100 * p['post_rate']:.0f}% |")
    return lines + [""]


def write_report(out_dir: str, plot_command: str, results: dict, figures: dict, notes: list[str],
                 ck_config: dict | None) -> str:
    """out_dir/report.md: commands, the results table, the figures (relative paths) and notes."""
    from .tables import format_table
    mechs = mechanisms(results)
    train_cmd, source = training_command(results, ck_config)
    lines = [f"# Report: {os.path.basename(os.path.abspath(out_dir))}", "",
             "Written by the plot command from the files the training run left in its out_dir. The figures are "
             "PNGs in `plots/`, beside this file.", "", "## Commands", "", "```bash"]
    if train_cmd:
        lines.append(train_cmd)
    lines += [plot_command, "```", "", f"Training command: {source}." if train_cmd else f"Note: {source}.", "",
              "## Results", "", "Accuracy, share of questions answered first (post%) and generated tokens per "
              "question, by group and overall (the table `train.py` prints):", "", "```text",
              format_table(mechs), "```", "", "ms/question is the wall time of generation per question; the "
              "reference rows (oracle, random) are computed from the pre and post students' answers and generate "
              "nothing, so they show '-' (0.0 in `results.json`).", ""]
    lines += decided_section(mechs) + curve_section(results)
    extra = other_numbers(results, mechs)
    if extra:
        lines += ["Other numbers in `results.json`:", ""] + extra + [""]
    captions = {
        "loss": ("Training loss", "Next-token loss of every student over its optimiser steps (log scale). Each "
                 "logged value is the loss of one training batch, logged every `log_interval` steps (faint); "
                 "the bold line is its running mean over 5 log points. The k-fold students, which only label "
                 "the training questions, are faint and coloured by their mode; the right panel, when there is "
                 "one, is the perception's classification loss."),
        "tradeoff": ("Accuracy vs cost", "One point per mechanism: accuracy against generated tokens per "
                     "question, over all test questions and per group, on one x-range. Thinking first costs "
                     "tokens; answering first is cheap but fails where the answer needs steps. Adaptive "
                     "thinking aims for the top-left. Hollow markers are the reference rows (oracle, random), "
                     "computed from the pre and post students' answers; points that coincide are spread a "
                     "little sideways."),
        "curve": ("The accuracy / cost curve", "The ATM student with its mode picked by a threshold t on "
                  "p(answer first) instead of its own first word (no retraining; the soft prompt still steers "
                  "everything after the forced marker), one dot per threshold, with every mechanism's own "
                  "point. t < 0 is the student forced to answer first, t = 1 forced to think first."),
        "chain_length": ("Chain length", "Accuracy (left) and the share answered first (right) against the "
                         "number of operations in a chain, per mechanism (reference rows dashed): answering "
                         "first wins on short chains, thinking first on long ones, and ATM switches."),
        "p_post": ("Where the perception sends each question", "The perception's probability of answering "
                   "first on every test question, one column of dots per group (the 2-step chains have their "
                   "own): above 0.5 the soft prompt steers the student to answer first; filled dots were "
                   "answered right."),
        "p_gold": ("Where the labels come from", "The held-out post fold students' probability of the gold "
                   "answer on each training question, by group (green: their greedy answer was right), and "
                   "the label rule's threshold (dashed, `post_confidence`). A question is labelled answer "
                   "first only when the post student is right and at least that sure (or right where the pre "
                   "student is wrong): on the 2-step chains most right answers are unsure, so they are "
                   "labelled think first."),
        "attention": ("What the perception looks at", "Attention of each perception query (rows) over the "
                      "feature token and the question's tokens, for a few test questions (last perception "
                      "block, mean over heads); brighter = more weight. `python sample.py --trace` prints the "
                      "same for any question."),
    }
    for key in FIGURES:
        title, caption = captions[key]
        lines += [f"## {title}", ""]
        if key in figures:
            lines += [caption, "", f"![{title}]({os.path.relpath(figures[key], out_dir)})", ""]
        else:
            lines += [f"Not drawn: {notes_for(key, notes)}", ""]
    path = os.path.join(out_dir, "report.md")
    write_text_atomic(path, "\n".join(lines))
    return path


def notes_for(key: str, notes: list[str]) -> str:
    found = [n.split(": ", 1)[1] for n in notes if n.startswith(f"{key}: ")]
    return "; ".join(found) or "no data."

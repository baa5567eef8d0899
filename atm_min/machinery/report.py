"""What a training run leaves in out_dir, read back and drawn: the plot command's library (plot.py is its CLI).

    out_dir/results.json           {mechanism: {accuracy, avg_new_tokens, post_fraction, by_group, ...}, ...}
    out_dir/log.jsonl              one line per student per log interval: {student, step, loss, aux?, lr, ...}
    out_dir/predictions_*.jsonl    one line per test question: {id, group, text, mode, correct, new_tokens, p_post}
    out_dir/ckpt.pt                the main student (and its perception, for ATM)

Four figures go to out_dir/plots/ and out_dir/report.md embeds them with the results table:
    loss.png       every student's training loss (the k-fold students faint)
    tradeoff.png   accuracy vs generated tokens per question, per mechanism: overall and per group
    p_post.png     the perception's p(answer first) on the test questions, by group
    attention.png  the perception's attention over a few test questions

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

FIGURES = ("loss", "tradeoff", "p_post", "attention")
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


def plot_losses(curves: dict, path: str) -> None:
    """Training loss per student; fold students (they only label) faint, coloured by their mode."""
    plt = _plt()
    has_aux = any(a is not None for c in curves.values() for a in c["aux"])
    fig, axes = plt.subplots(1, 2 if has_aux else 1, figsize=(12 if has_aux else 7, 4.2), squeeze=False)
    ax = axes[0, 0]
    main = [n for n in curves if not n.startswith("fold")]
    for name, c in curves.items():
        if name.startswith("fold"):  # "fold 2/5 post"
            mode = name.split()[-1]
            ax.plot(c["step"], c["loss"], color=color(mode, main), alpha=0.25, lw=0.8)
        else:
            ax.plot(c["step"], c["loss"], color=color(name, main), lw=1.8, label=name)
    if len(main) < len(curves):
        ax.plot([], [], color="gray", alpha=0.4, lw=0.8, label="k-fold students (colour: mode)")
    ax.set(xlabel="step", ylabel="training loss (next-token cross-entropy)", yscale="log",
           title="Training loss of every student")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if has_aux:
        ax = axes[0, 1]
        for name, c in curves.items():
            pts = [(s, a) for s, a in zip(c["step"], c["aux"]) if a is not None]
            if pts:
                ax.plot(*zip(*pts), color=color(name, main), lw=1.5, label=name)
        ax.set(xlabel="step", ylabel="BCE", title="Perception: answer-first classification loss (aux)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_tradeoff(mechs: dict, path: str) -> None:
    """Accuracy vs generated tokens per question, one point per mechanism: overall, then each group."""
    plt = _plt()
    groups = sorted({g for m in mechs.values() for g in m.get("by_group", {}) if isinstance(g, str)},
                    key=lambda g: (g.count("/"), g))
    panels = [("all questions", None)] + [(g, g) for g in groups]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.2 * nrows), squeeze=False)
    names = list(mechs)
    for k, (title, g) in enumerate(panels):
        ax = axes[k // ncols, k % ncols]
        for j, (name, m) in enumerate(mechs.items()):
            s = m if g is None else m.get("by_group", {}).get(g)
            if not s or not _number(s.get("accuracy")) or not _number(s.get("avg_new_tokens")):
                continue
            ax.scatter(s["avg_new_tokens"], s["accuracy"], color=color(name, names), marker=MARKERS[j % 11],
                       s=55, label=name, zorder=3, alpha=0.85)
            if g is None:  # names on the big picture only: in the small panels points overlap (see the legend)
                ax.annotate(name, (s["avg_new_tokens"], s["accuracy"]), textcoords="offset points",
                            xytext=(5, 4), fontsize=8)
        n = next((m.get("n") if g is None else m.get("by_group", {}).get(g, {}).get("n") for m in mechs.values()),
                 None)
        ax.set_title(f"{title} (n={n})" if n else title, fontsize=10)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("accuracy")
        if k // ncols == nrows - 1 or k + ncols >= len(panels):
            ax.set_xlabel("generated tokens / question")
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=9)
    fig.suptitle("Accuracy vs cost: up and to the left is better", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.92, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_p_post(preds: dict[str, list[dict]], path: str) -> None:
    """Histogram of p(answer first) on the test questions: one row per mechanism that has a perception, one
    panel per top-level group, one line per finer group."""
    plt = _plt()
    rows = {name: [r for r in recs if _number(r.get("p_post"))] for name, recs in preds.items()}
    rows = {k: v for k, v in rows.items() if v}
    tops = sorted({(group_levels(r.get("group")) or ["(no group)"])[0] for v in rows.values() for r in v})
    fig, axes = plt.subplots(len(rows), len(tops), figsize=(4.5 * len(tops), 3.2 * len(rows)), squeeze=False)
    bins = [i / 20 for i in range(21)]
    for i, (name, recs) in enumerate(rows.items()):
        for j, top in enumerate(tops):
            ax = axes[i, j]
            fine = defaultdict(list)
            for r in recs:
                levels = group_levels(r.get("group")) or ["(no group)"]
                if levels[0] == top:
                    fine[levels[-1]].append(r["p_post"])
            for k, (g, ps) in enumerate(sorted(fine.items())):
                ax.hist(ps, bins=bins, histtype="step", lw=1.5, label=f"{g} ({len(ps)})",
                        color=COLORS[k % len(COLORS)])
            ax.axvline(0.5, color="black", ls=":", lw=1)
            ax.set(title=f"{name}: {top}", xlabel="p(answer first)", xlim=(0, 1))
            if j == 0:
                ax.set_ylabel("test questions")
            ax.legend(fontsize=7)
    fig.suptitle("The perception's p(answer first): right of the line the student is steered to answer first",
                 fontsize=10)
    fig.tight_layout()
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
            if k not in STANDARD_KEYS:
                lines += _markdown(f"{name} {k}", v)
    for k, v in results.items():
        if k not in mechs:
            lines += _markdown(k, v)
    return lines


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
              format_table(mechs), "```", ""]
    extra = other_numbers(results, mechs)
    if extra:
        lines += ["Other numbers in `results.json`:", ""] + extra + [""]
    captions = {
        "loss": ("Training loss", "Next-token loss of every student over its optimiser steps (log scale). The "
                 "k-fold students, which only label the training questions, are faint and coloured by their "
                 "mode; the right panel, when there is one, is the perception's classification loss."),
        "tradeoff": ("Accuracy vs cost", "One point per mechanism: accuracy against generated tokens per "
                     "question, over all test questions and per group. Thinking first costs tokens; answering "
                     "first is cheap but fails where the answer needs steps. Adaptive thinking aims for the "
                     "top-left."),
        "p_post": ("Where the perception sends each question", "The perception's probability of answering "
                   "first on each test question, per group: right of 0.5 the soft prompt steers the student "
                   "to answer first."),
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

"""Machinery: finished runs side by side, one row per setting, mean (min-max) over its seeds (docs/results.md's
decider and label tables).

    python -m atm_min.machinery.compare soft_prompt=out,out_1,out_2 mode_token=out_0_token,out_1_token,out_2_token
    python -m atm_min.machinery.compare --labels confident_post=out,out_1,out_2 delta_0=out_0_pr0,...

Each argument is NAME=DIR,DIR,... (the runs of one setting, one per seed). The deciders table: the ATM row's
accuracy (overall, chains, parity), generated tokens, trainable parameters of what is deployed (read from the
checkpoints: student + perception; the student alone; router + the pre and post baselines), ms per question,
agreement with the test-set oracle label, answer-first share, and how many runs collapsed to one mode (>= 98%
of the test questions in one mode); then accuracy and answer-first share per group and level. --labels: the
labels' answer-first share and how many equal confident_post's on the same evidence (labels.json keeps it). --retime: ms per question measured again, away from the runs' own load: every run's
deployed models answer its test set in this one process, one thread, the runs interleaved, best of 3 rounds.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from ..evaluate import Answering, timed_answers
from ..labels import label
from ..variants.mode_token import mode_token_answers
from ..variants.router import routed_answers
from .checkpoint import load_checkpoint, saved_config
from .choose import answers_function, learner_from_checkpoint
from .data import load_data
from .errors import ProjectError
from .hf import get_tokenizer

COLLAPSE = 0.98  # one mode on at least this share of the test questions: the decider collapsed to it


def _cell(values, fmt="{:.1f}") -> str:
    if not values or any(v is None for v in values):
        return "-"
    mean = sum(values) / len(values)
    return fmt.format(mean) + (f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else "")


def parameters(run: str) -> int:
    """Trainable parameters of what the run deploys: its ckpt.pt's learner, plus for a router the two students
    it routes to (baseline_pre.pt, baseline_post.pt)."""
    ck = load_checkpoint(os.path.join(run, "ckpt.pt"))
    cfg = saved_config(ck)
    modules = [learner_from_checkpoint(ck, cfg, run)]
    if ck["atm"] and cfg.decider == "router":
        for m in ("pre", "post"):
            path = os.path.join(run, f"baseline_{m}.pt")
            b = load_checkpoint(path)
            modules.append(learner_from_checkpoint(b, saved_config(b), path))
    return sum(p.numel() for mod in modules for p in mod.parameters())  # parameters() counts tied weights once


def answerer(run: str):
    """A function that answers the run's test set as its ATM row did (its decider), timed: () -> ms/question."""
    ck = load_checkpoint(os.path.join(run, "ckpt.pt"))
    cfg = saved_config(ck)
    cfg.out_dir, cfg.device = run, "cpu"
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    test = load_data(cfg, tok)[1]
    learner = learner_from_checkpoint(ck, cfg, run)
    args = (tok, test, "cpu", cfg.eval_batch_size, cfg.max_new_tokens)
    if cfg.decider == "router":
        students = {m: learner_from_checkpoint(load_checkpoint(os.path.join(run, f"baseline_{m}.pt")), cfg, run)
                    .student for m in ("pre", "post")}
        return lambda: timed_answers(learner.perception, students, *args, answer=routed_answers)[1]
    if cfg.decider == "mode_token":
        return lambda: timed_answers(learner.student, *args, cfg.mode_threshold, answer=mode_token_answers)[1]
    how = Answering("cpu", cfg.eval_batch_size, cfg.max_new_tokens)
    return lambda: timed_answers(learner.student, tok, test, how, perception=learner.perception,
                                 answer=answers_function(learner.perception))[1]


def retimed(rows: dict[str, list[str]], rounds: int = 3) -> dict[str, float]:
    """ms per question of every run, measured here one after another, best of `rounds` (see the module doc)."""
    torch.set_num_threads(1)
    fns = {r: answerer(r) for runs in rows.values() for r in runs}
    best = {r: float("inf") for r in fns}
    for _ in range(rounds):
        for r, fn in fns.items():
            best[r] = min(best[r], fn())
    return best


def load_atm(run: str) -> dict:
    with open(os.path.join(run, "results.json")) as f:
        return json.load(f)["atm"]


def deciders_table(rows: dict[str, list[str]], ms: dict[str, float] | None = None) -> str:
    head = ("| decider | seeds | accuracy | chains | parity | tokens | parameters | ms/question | = test-set oracle "
            "| answer first | collapsed |")
    if ms:
        head = head.replace("| = test-set", "| ms/question, again | = test-set")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    per_level = {}
    for name, runs in rows.items():
        atms = [load_atm(r) for r in runs]
        pct = lambda key, group=None: [100 * (a["by_group"].get(group, {}) if group else a).get(key, float("nan"))
                                       for a in atms]
        collapsed = sum(not (1 - COLLAPSE < a["post_fraction"] < COLLAPSE) for a in atms)
        oracle = [100 * a["test_oracle_agreement"] if "test_oracle_agreement" in a else None for a in atms]
        params = sorted({parameters(r) for r in runs})
        out.append(f"| {name} | {len(runs)} | {_cell(pct('accuracy'))} | {_cell(pct('accuracy', 'multistep'))} | "
                   f"{_cell(pct('accuracy', 'direct'))} | {_cell([a['avg_new_tokens'] for a in atms])} | "
                   f"{'/'.join(f'{p:,}' for p in params)} | {_cell([a['ms_per_question'] for a in atms], '{:.2f}')} "
                   + (f"| {_cell([ms[r] for r in runs], '{:.2f}')} " if ms else "") + f"| {_cell(oracle)} | {_cell(pct('post_fraction'), '{:.0f}%')} | {collapsed} of {len(runs)} |")
        per_level[name] = atms
    levels = sorted({g for atms in per_level.values() for a in atms for g in a["by_group"] if "/" in g})
    out += ["", "Accuracy / answer-first share per level, mean over the seeds:", "",
            "| decider | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for name, atms in per_level.items():
        cells = []
        for g in levels:
            stats = [a["by_group"][g] for a in atms if g in a["by_group"]]
            cells.append(f"{100 * sum(s['accuracy'] for s in stats) / len(stats):.1f} / "
                         f"{100 * sum(s['post_fraction'] for s in stats) / len(stats):.0f}%" if stats else "-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def labels_table(rows: dict[str, list[str]]) -> str:
    out = ["| labels | seeds | labelled answer first | = confident_post's label | ATM accuracy | tokens "
           "| = test-set oracle | perception = label |", "|---|---|---|---|---|---|---|---|"]
    for name, runs in rows.items():
        first, same = [], []
        for r in runs:
            with open(os.path.join(r, "labels.json")) as f:
                labs = json.load(f).values()
            cfg = saved_config(load_checkpoint(os.path.join(r, "ckpt.pt")))
            greedy = [label(v["pre_ok"], v["post_ok"], v["p_gold"], cfg.post_confidence, cfg.label_default)
                      for v in labs]
            first.append(100 * sum(v["label"] == "post" for v in labs) / len(labs))
            same.append(100 * sum(v["label"] == g for v, g in zip(labs, greedy)) / len(labs))
        atms = [load_atm(r) for r in runs]
        oracle = [100 * a["test_oracle_agreement"] if "test_oracle_agreement" in a else None for a in atms]
        out.append(f"| {name} | {len(runs)} | {_cell(first)}% | {_cell(same)}% | "
                   f"{_cell([100 * a['accuracy'] for a in atms])} | {_cell([a['avg_new_tokens'] for a in atms])} | "
                   f"{_cell(oracle)} | {_cell([100 * a['label_agreement'] for a in atms])} |")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    labels, retime = "--labels" in argv, "--retime" in argv
    rows = {}
    for arg in [a for a in argv if a not in ("--labels", "--retime")]:
        name, _, dirs = arg.partition("=")
        if not name or not dirs:
            raise ProjectError(f"{arg!r}: expected NAME=DIR,DIR,... (the runs of one setting)")
        rows[name] = dirs.split(",")
        for d in rows[name]:
            if not os.path.exists(os.path.join(d, "results.json")):
                raise ProjectError(f"{d}: no results.json; give the out_dir of a finished --mechanism=atm run")
    if not rows:
        raise ProjectError("nothing to compare: give NAME=DIR,DIR,... for each setting")
    print(labels_table(rows) if labels else deciders_table(rows, retimed(rows) if retime else None))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ProjectError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")

"""Learning curve: does a student learn its task? Pre and post students trained epoch by epoch, each epoch scored
on validation questions split off the TRAINING set (never the test set), so that a recipe can be sized on them:

    python tools/learning_curve.py config/finetune_cot_smollm2_cpu.py --data_dir=data/strategy_qa \\
        --out_dir=out/curve-strategy_qa --max_train=420 --val 100 --epochs 5 --lrs 3e-4,1e-4
    python tools/learning_curve.py --table out/curve-strategy_qa [out/curve-coin_flip ...]   # the table again
    python tools/learning_curve.py --plot out/curve.png out/curve-strategy_qa out/curve-coin_flip

Every setting after the tool's own options is train.py's (a config file, then --key=value). For each mode and
learning rate one student trains for --epochs epochs at a CONSTANT rate after the config's warmup (min_lr = lr, as
Fine-tune-CoT's own recipe: AdamW 3e-4 constant), so the student after epoch e is the student an e-epoch run
would give, and one run draws the whole curve. An epoch is ceil(n / batch_size) steps of the deterministic data
order (atm_min/batches.py). After each epoch the validation questions are answered in the student's mode:
  acc        share right, with its 95% Wilson interval;
  majority   the share of the validation set's most common gold answer (what always answering it scores);
  top%       the share of the student's own most common answer: a student near 100% has learned a constant;
  cut%       outputs with no answer that ran out of the generation budget (max_new_tokens): a thinking-first
             student that loops never answers.
Resumable: each finished epoch is a line of out_dir/curve.jsonl (skipped when run again), each student resumes
from its checkpoint (train.py's timed saves), and a finished student's checkpoint is deleted (the curve is what we
keep). The validation split is drawn from --val_seed alone: the same questions for every mode and rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from atm_min.answers import extract_answer, normalize, parse_output  # noqa: E402
from atm_min.evaluate import Answering, generate_answers  # noqa: E402
from atm_min.machinery.config import parse_args  # noqa: E402
from atm_min.machinery.data import load_data  # noqa: E402
from atm_min.machinery.errors import ProjectError  # noqa: E402
from atm_min.machinery.hf import get_tokenizer  # noqa: E402
from atm_min.machinery.runs import train_run  # noqa: E402
from atm_min.machinery.runtime import setup  # noqa: E402
from atm_min.machinery.stats import wilson_interval  # noqa: E402


def split_validation(n: int, n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """(fit, val) index lists of n training examples: n_val drawn at random by seed, both kept in file order."""
    if not 0 < n_val < n:
        raise ProjectError(f"--val must be between 1 and {n - 1} (the run has {n} training examples)")
    val = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return [i for i in range(n) if i not in val], sorted(val)


def epoch_record(examples, records, max_new_tokens: int) -> dict:
    """The validation scores of one epoch's answers (records from generate_answers, in examples' order)."""
    n = len(records)
    answers = [extract_answer(r["text"], ex.answer_type) for ex, r in zip(examples, records, strict=True)]
    majority = Counter(normalize(ex.answer, ex.answer_type) for ex in examples).most_common(1)[0][1] / n
    (top, top_count), = Counter(answers).most_common(1)  # None counts: "no answer" can be the commonest output
    no_answer = [parse_output(r["text"])[1] is None for r in records]
    right = sum(r["correct"] for r in records)
    return dict(n=n, right=right, acc=right / n, interval=wilson_interval(right, n), majority=majority,
                top_answer=top, top_share=top_count / n,
                cut=sum(a and r["new_tokens"] >= max_new_tokens for a, r in zip(no_answer, records)) / n,
                no_answer=sum(no_answer) / n, new_tokens=sum(r["new_tokens"] for r in records) / n,
                outcomes=[[ex.id, a, int(r["correct"]), r["new_tokens"]]
                          for ex, a, r in zip(examples, answers, records)])


def read_curve(out_dir: str) -> list[dict]:
    path = os.path.join(out_dir, "curve.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_line(path: str, row: dict) -> None:
    """One JSON line, flushed to disk before we go on (a crash loses at most the epoch being scored)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def curve_student(cfg, runtime, tok, fit, val, mode: str, lr: float, epochs: int) -> None:
    """Train one student for `epochs` epochs at constant lr; score val after each epoch into curve.jsonl.
    Epoch e continues epoch e-1's checkpoint: with a constant rate and the data order a function of (seed, step),
    that is step for step the run an e-epoch student would have had."""
    path = os.path.join(cfg.out_dir, "curve.jsonl")
    done = {r["epoch"] for r in read_curve(cfg.out_dir) if r["mode"] == mode and r["lr"] == lr}
    steps = math.ceil(len(fit) / cfg.batch_size)
    cfg.lr = cfg.min_lr = lr  # constant after the warmup (lr_at's cosine from lr to min_lr is then flat)
    ckpt = os.path.join(cfg.out_dir, f"{mode}_lr{lr:g}.pt")
    for epoch in range(1, epochs + 1):
        if epoch in done:
            continue
        student, _ = train_run(cfg, runtime, tok, fit, [mode] * len(fit), ckpt, iters=epoch * steps,
                               seed=cfg.seed, desc=f"{mode} lr {lr:g} epoch {epoch}")
        how = Answering(runtime.device, cfg.eval_batch_size, cfg.max_new_tokens, ctx=runtime.ctx)
        records = generate_answers(student, tok, val, how)
        row = dict(mode=mode, lr=lr, epoch=epoch, steps=epoch * steps, **epoch_record(val, records, cfg.max_new_tokens))
        append_line(path, row)
        print(format_row(row), flush=True)
    if os.path.exists(ckpt):
        os.remove(ckpt)  # 135M with AdamW state is ~1.6 GB; the curve is what we keep


def format_row(r: dict) -> str:
    lo, hi = r["interval"]
    return (f"{r['mode']:>4} lr {r['lr']:<7g} epoch {r['epoch']}: acc {r['acc']:.3f} [{lo:.3f}, {hi:.3f}] "
            f"(n={r['n']}, majority {r['majority']:.3f}); top answer {r['top_answer']!r} {100 * r['top_share']:.0f}%; "
            f"cut {100 * r['cut']:.0f}%; no answer {100 * r['no_answer']:.0f}%; {r['new_tokens']:.0f} new tokens")


def table(dirs: list[str]) -> str:
    """Markdown: one row per (run, mode, lr, epoch)."""
    lines = ["| run | mode | lr | epoch | acc | 95% interval | majority | top answer (share) | cut | new tokens |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in dirs:
        for r in sorted(read_curve(d), key=lambda r: (r["mode"], -r["lr"], r["epoch"])):
            lo, hi = r["interval"]
            lines.append(f"| {os.path.basename(os.path.normpath(d))} | {r['mode']} | {r['lr']:g} | {r['epoch']} | "
                         f"{r['acc']:.3f} | {lo:.3f}-{hi:.3f} | {r['majority']:.3f} | {r['top_answer']} "
                         f"({100 * r['top_share']:.0f}%) | {100 * r['cut']:.0f}% | {r['new_tokens']:.0f} |")
    return "\n".join(lines)


def plot(png: str, dirs: list[str]) -> None:
    """Accuracy per epoch with its interval, one panel per run, a line per (mode, lr); the majority rate dashed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ProjectError("--plot needs matplotlib: pip install matplotlib") from None
    fig, axes = plt.subplots(1, len(dirs), figsize=(5 * len(dirs), 3.6), squeeze=False)
    for ax, d in zip(axes[0], dirs):
        rows = read_curve(d)
        for key in sorted({(r["mode"], r["lr"]) for r in rows}):
            rs = sorted((r for r in rows if (r["mode"], r["lr"]) == key), key=lambda r: r["epoch"])
            x = [r["epoch"] for r in rs]
            ax.errorbar(x, [r["acc"] for r in rs], capsize=3, marker="o", label=f"{key[0]} lr {key[1]:g}",
                        yerr=[[r["acc"] - r["interval"][0] for r in rs], [r["interval"][1] - r["acc"] for r in rs]])
        if rows:
            ax.axhline(rows[0]["majority"], ls="--", c="grey", label="majority answer")
        ax.set(title=os.path.basename(os.path.normpath(d)), xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)  # --lr is train.py's
    p.add_argument("--modes", default="pre,post", help="comma-separated: pre, post")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lrs", default="3e-4", help="comma-separated learning rates, each a student per mode")
    p.add_argument("--val", type=int, default=100, help="validation questions split off the training set")
    p.add_argument("--val_seed", type=int, default=0)
    p.add_argument("--table", nargs="+", metavar="DIR", help="print the table of finished curves and stop")
    p.add_argument("--plot", nargs="+", metavar=("PNG", "DIR"), help="draw PNG from curve folders and stop")
    args, rest = p.parse_known_args(argv)
    if args.table:
        print(table(args.table))
        return
    if args.plot:
        if len(args.plot) < 2:
            raise ProjectError("--plot needs the PNG path and at least one curve folder")
        plot(args.plot[0], args.plot[1:])
        print(f"wrote {args.plot[0]}")
        return
    modes = args.modes.split(",")
    if not set(modes) <= {"pre", "post"}:
        raise ProjectError(f"--modes takes pre and/or post, got {args.modes!r}")
    try:
        lrs = [float(x) for x in args.lrs.split(",")]
    except ValueError:
        raise ProjectError(f"--lrs takes comma-separated numbers, got {args.lrs!r}") from None
    cfg = parse_args(rest)
    cfg.resume, cfg.baselines, cfg.mechanism = True, False, "pre"  # each student resumes from its own checkpoint
    runtime = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    os.makedirs(cfg.out_dir, exist_ok=True)
    train, _, data_dir = load_data(cfg, tok)  # the test set is never read
    fit, val = split_validation(len(train), args.val, args.val_seed)
    print(f"curve: {len(fit)} training / {len(val)} validation questions from {data_dir}; "
          f"{math.ceil(len(fit) / cfg.batch_size)} steps per epoch")
    for lr in lrs:
        for mode in modes:
            curve_student(cfg, runtime, tok, [train[i] for i in fit], [train[i] for i in val], mode, lr, args.epochs)
    print(table([cfg.out_dir]))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ProjectError, OSError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: finished epochs are in curve.jsonl; run the same command again to continue")

"""Distil a teacher's chain-of-thought into a GPT student with pre-thinking, post-thinking or adaptive thinking.

    python train.py --mechanism atm                      # built-in synthetic suite, CPU-sized student, ~3.5 min
    python train.py config/synth_cpu.py --mechanism pre  # a config file, then overrides
    torchrun --nproc_per_node=8 train.py config/gpt2_large_finetune_cot.py

main() is the paper's pipeline, top to bottom: the data; the k-fold students (for each fold, a pre and a post
student trained on the other folds) and their evidence on the held-out questions; the labels; the ATM student
(student + perception module) trained on questions formatted in their label's mode; the pre, post and
answer-only baselines of the same size and budget; the table. The lesson's steps live in atm_min/ (README's
reading order). What runs them robustly and fast lives in atm_min/machinery/: `students.start(job)` trains a
student side by side with the others (one process per core) and `.result()` waits for what it returns.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch.distributed as dist

from atm_min.evaluate import (agreement, oracle_summary, random_routing_summary, summarize,
                              timed_answers)
from atm_min.labels import answer_first_confidence, evidence_counts, fold_ids
from atm_min.machinery import choose
from atm_min.machinery.config import TrainConfig, parse_args
from atm_min.machinery.data import load_data, write_text_atomic
from atm_min.machinery.decided import add_decided_and_traps, open_questions
from atm_min.machinery.errors import ProjectError
from atm_min.machinery.gpt2 import get_tokenizer
from atm_min.machinery.jobs import Job, Students, write_json
from atm_min.machinery.runs import test_oracle_labels, trained
from atm_min.machinery.runtime import Runtime, setup
from atm_min.machinery.tables import format_summary
from atm_min.variants.threshold_curve import threshold_sweep

MECHANISMS = ("pre", "post", "answer", "atm")  # the table's column order, whichever student finished first


def fold_students(cfg: TrainConfig, train) -> list[Job]:
    """2k jobs: for each fold k, a pre and a post student trained on the other k-1 folds."""
    folds = fold_ids(len(train), cfg.folds, cfg.seed)
    fold_dir = os.path.join(cfg.out_dir, "folds")
    jobs = []
    for k in range(cfg.folds):
        fit = [i for i, f in enumerate(folds) if f != k]
        held = [i for i, f in enumerate(folds) if f == k]
        for mode in ("pre", "post"):
            jobs.append(Job(f"fold {k + 1}/{cfg.folds} {mode}", fit, [mode] * len(fit),
                            os.path.join(fold_dir, f"fold{k}_{mode}.pt"), seed=cfg.seed + 1000 * (k + 1),
                            iters=cfg.fold_iters, held_out=held, cache=os.path.join(fold_dir, f"fold{k}_{mode}.json")))
    return jobs


def baseline_students(cfg: TrainConfig, train) -> list[Job]:
    """The students the ATM student is compared with, of the same size and budget (or --mechanism's alone). A
    router (--decider=router) answers with the pre and post baselines, so it needs them even without baselines."""
    router = cfg.mechanism == "atm" and cfg.decider == "router"
    mechs = (["pre", "post", "answer"] if cfg.baselines else ["pre", "post"] if router else []) \
        if cfg.mechanism == "atm" else [cfg.mechanism]
    return [Job(m, list(range(len(train))), [m] * len(train),
                os.path.join(cfg.out_dir, "ckpt.pt" if m == cfg.mechanism else f"baseline_{m}.pt"), cfg.seed)
            for m in mechs]


def atm_student(cfg: TrainConfig, train, labels: list[str]) -> Job:
    """The ATM student, every training question formatted in its label's mode (a router after its specialists)."""
    return Job("atm", list(range(len(train))), labels, os.path.join(cfg.out_dir, "ckpt.pt"), cfg.seed, atm=True,
               after=("pre", "post") if cfg.decider == "router" else ())


def run_job(cfg: TrainConfig, job: Job, train, test, runtime: Runtime | None = None, tok=None, show=True):
    """Train job's student and put it to work. A fold student answers its held-out questions: returns the
    evidence {held_out, correct, p_gold} (cached in job.cache). A compared student answers the test set: returns
    {summary, records, ...}. None on DDP ranks other than 0. Runs in a worker process or right here."""
    runtime = runtime or setup(cfg)  # in a worker process: its own (cfg.num_threads set by the parent)
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    student, perception = trained(cfg, runtime, tok, [train[i] for i in job.fit], job.modes, job.ckpt,
                                  atm=job.atm, iters=job.iters or None, seed=job.seed, desc=job.name, show=show)
    out = None
    if runtime.master and job.held_out is not None:
        out = {"held_out": job.held_out, **choose.evidence(cfg, student, tok, [train[i] for i in job.held_out],
                                                           job.mode, runtime.device, job.seed, runtime.ctx)}
        write_json(job.cache, out)
        os.remove(job.ckpt)  # the evidence is what we keep; fold students can be large
    elif runtime.master and job.atm:  # answers as its decider gives them, and in each mode: the curve's ends
        records, ms, forced = choose.test_answers(cfg, student, perception, tok, test, runtime.device, runtime.ctx)
        out = {"summary": summarize(records, ms), "records": records, "forced": forced,
               "train_p_post": choose.train_p_post(cfg, student, perception, tok, [train[i] for i in job.fit],
                                                   runtime.device)}
    elif runtime.master:
        records, ms = timed_answers(student, tok, test, runtime.device, cfg.eval_batch_size, cfg.max_new_tokens,
                                    explain=cfg.explain, ctx=runtime.ctx)
        out = {"summary": summarize(records, ms), "records": records}
        if job.name == "post" and cfg.mechanism == "atm":  # its p(gold answer): the test-set oracle label
            out["p_gold"] = answer_first_confidence(student, tok, test, runtime.device, cfg.eval_batch_size,
                                                    ctx=runtime.ctx)
    if runtime.world > 1:
        dist.barrier()
        if job.held_out is not None:
            with open(job.cache) as f:
                out = json.load(f)
    return out


def kfold_labels(cfg: TrainConfig, train, evidence: dict, show: bool = True) -> tuple[list[str], dict]:
    """Label every training question "pre" or "post" from the fold students' evidence (job name -> result);
    write out_dir/labels.json. Returns (labels, counts per group of who was right)."""
    rows = [{} for _ in train]  # per question: pre_ok, post_ok, p_gold (and pre_rate, post_rate if sampled)
    for name, ev in evidence.items():
        mode = name.split()[-1]
        for j, i in enumerate(ev["held_out"]):
            rows[i][f"{mode}_ok"] = ev["correct"][j]
            rows[i].update({"p_gold": ev["p_gold"][j]} if mode == "post" else {})
            rows[i].update({f"{mode}_rate": ev["pass_rate"][j]} if cfg.label_samples else {})
    labels = [choose.labeller(cfg)(r) for r in rows]
    counts = evidence_counts([ex.group for ex in train], [r["pre_ok"] for r in rows], [r["post_ok"] for r in rows],
                             labels)
    labels = choose.label_source(cfg, labels)  # label_source="random": shuffled, the same post rate
    write_json(os.path.join(cfg.out_dir, "labels.json"), {
        ex.id: {"label": lab, "pre_ok": r["pre_ok"], "post_ok": r["post_ok"], "p_gold": r["p_gold"],
                **({"pre_rate": r["pre_rate"], "post_rate": r["post_rate"]} if cfg.label_samples else {})}
        for ex, lab, r in zip(train, labels, rows)}, indent=0)
    a = counts["ALL"]
    if show:
        print(f"k-fold labels: {labels.count('post')} post, {labels.count('pre')} pre of {len(labels)}; evidence: "
              f"pre only right {a['pre_only']}, post only {a['post_only']}, both {a['both']}, neither "
              f"{a['neither']} ({100 * a['neither'] / max(1, a['n']):.1f}% labelled by label_default)")
    return labels, counts


def main(argv):
    t_start = time.time()
    cfg = parse_args(argv)
    runtime = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    os.makedirs(cfg.out_dir, exist_ok=True)
    # 1. the data
    train, test, data_dir = load_data(cfg, tok)
    if runtime.master:
        print(f"data: {len(train)} train / {len(test)} test examples from {data_dir}; device {runtime.device}")
    atm = cfg.mechanism == "atm"
    folds, baselines = fold_students(cfg, train) if atm else [], baseline_students(cfg, train)
    every_job = folds + baselines + ([atm_student(cfg, train, [])] if atm else [])
    with Students(cfg, runtime, tok, train, test, run_job, every_job) as s:
        # 2. the k-fold students, and beside them the baselines, which need nothing from the folds
        folds = [s.start(job) for job in folds]
        baselines = {job.name: s.start(job) for job in baselines}
        evals = {}
        if atm:
            # 3. the labels, from the fold students' evidence on their held-out questions
            labels, counts = kfold_labels(cfg, train, {f.name: f.result() for f in folds}, runtime.master)
            # 4. the ATM student, trained on every question in its label's mode (first in the queue: the longest)
            evals["atm"] = s.start(atm_student(cfg, train, labels), first=True).result()
        # 5. the baselines' test answers
        evals.update({name: f.result() for name, f in baselines.items()})
    if not runtime.master:
        return
    # 6. the table
    results = {}
    for mech, ev in sorted(evals.items(), key=lambda kv: MECHANISMS.index(kv[0])):
        results[mech] = ev["summary"]
        write_text_atomic(os.path.join(cfg.out_dir, f"predictions_{mech}.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in ev["records"]))
    if atm:
        results["atm"].update(label_agreement=agreement(evals["atm"]["train_p_post"], labels), label_counts=counts,
                              tradeoff=threshold_sweep(evals["atm"]["forced"]["pre"], evals["atm"]["forced"]["post"]))
        test_labels = test_oracle_labels(cfg, runtime, tok, test, evals)  # from the pre and post baselines' answers
        if test_labels is not None:
            results["atm"]["test_oracle_agreement"] = agreement([r["p_post"] for r in evals["atm"]["records"]],
                                                                test_labels)
        if "pre" in evals and "post" in evals:
            pre, post = evals["pre"]["records"], evals["post"]["records"]
            results["oracle"] = oracle_summary(pre, post)
            results["random"] = random_routing_summary(pre, post, results["atm"]["post_fraction"])
    add_decided_and_traps(results, {m: ev["records"] for m, ev in evals.items()}, open_questions(train, test))
    table = dict(results)
    results["run"] = {"command": " ".join(["python train.py", *argv]), "wall_time_s": time.time() - t_start}
    write_json(os.path.join(cfg.out_dir, "results.json"), results, indent=2)
    print(format_summary(table, cfg.decider))  # the table, traps, k-fold evidence, agreements
    print(f"wrote {os.path.join(cfg.out_dir, 'results.json')}; wall time {results['run']['wall_time_s']:.0f} s")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ProjectError, OSError) as e:  # the one place errors become an `error:` line (and exit status 1)
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the checkpoint was saved; continue with --resume")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

"""Distil a teacher's chain-of-thought into a GPT student with pre-thinking, post-thinking or adaptive thinking.

    python train.py --mechanism atm                      # built-in synthetic suite, CPU-sized student, ~3.5 min
    python train.py config/synth_cpu.py --mechanism pre  # a config file, then overrides
    torchrun --nproc_per_node=8 train.py config/gpt2_large_finetune_cot.py

main() is the paper's pipeline, top to bottom: the data; the k-fold students (for each fold, a pre and a post
student trained on the other folds, training.train) and their held_out_evidence; the labels (labels.label); the
ATM student (student + perception module) trained on questions formatted in their label's mode; the pre, post
and answer-only baselines of the same size and budget; their generate_answers on the test set; the table.
run_job says what one student's job does. The lesson's steps live in atm_min/ (README's reading order); a
variant's step replaces one of them through `design` (machinery/choose.py), chosen once from the settings.
What runs them robustly and fast lives in atm_min/machinery/: `s.start(job)` trains a student side by side
with the others (one process per core) and `.result()` waits for what it returns; StudentRun wraps the loop
in checkpoints, --resume and progress.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np
import torch.distributed as dist

from atm_min.evaluate import (agreement, generate_answers, oracle_summary, random_routing_summary, summarize,
                              timed_answers)
from atm_min.formats import MODES
from atm_min.labels import answer_first_confidence, evidence_counts, fold_ids
from atm_min.machinery import choose
from atm_min.machinery.config import TrainConfig, parse_args
from atm_min.machinery.data import load_data, write_text_atomic
from atm_min.machinery.decided import add_decided_and_traps, open_questions
from atm_min.machinery import stats
from atm_min.machinery.errors import ConfigError, ProjectError
from atm_min.machinery.hf import get_tokenizer
from atm_min.machinery.jobs import Job, Students, write_json
from atm_min.machinery.runs import StudentRun, finished_learner, test_oracle_labels
from atm_min.machinery.runtime import Runtime, setup
from atm_min.machinery.tables import format_summary
from atm_min.training import train
from atm_min.variants.threshold_curve import threshold_sweep

MECHANISMS = ("pre", "post", "answer", "atm")  # the table's column order, whichever student finished first


def fold_students(cfg: TrainConfig, train_set) -> list[Job]:
    """2k jobs: for each fold k, a pre and a post student trained on the other k-1 folds."""
    folds = fold_ids(len(train_set), cfg.folds, cfg.seed)
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


def atm_holdout(cfg: TrainConfig, n: int) -> set[int]:
    """--atm_holdout of the n training questions, drawn with the seed, that the ATM student does not train on (its
    perception is scored on them afterwards: holdout_check)."""
    if cfg.atm_holdout >= n:
        raise ConfigError(f"atm_holdout={cfg.atm_holdout}: expected fewer than the {n} training questions")
    return set(np.random.default_rng(cfg.seed).choice(n, cfg.atm_holdout, replace=False).tolist())


def compared_students(cfg: TrainConfig, train_set, design: choose.Design) -> list[Job]:
    """The ATM student and the students it is compared with, of the same size and budget: the pre, post and
    answer-only baselines (those its decider needs, design.specialists, even without --baselines); or
    --mechanism's student alone. The ATM student's formats (modes) come with the labels; it trains on every
    training question but --atm_holdout's."""
    everyone = list(range(len(train_set)))
    if cfg.mechanism != "atm":
        return [Job(cfg.mechanism, everyone, [cfg.mechanism] * len(everyone), os.path.join(cfg.out_dir, "ckpt.pt"),
                    cfg.seed)]
    mechs = ["pre", "post", "answer"] if cfg.baselines else list(design.specialists)
    held = atm_holdout(cfg, len(train_set))
    return [Job(m, everyone, [m] * len(everyone), os.path.join(cfg.out_dir, f"baseline_{m}.pt"), cfg.seed)
            for m in mechs] + [Job("atm", [i for i in everyone if i not in held], None,
                                   os.path.join(cfg.out_dir, "ckpt.pt"), cfg.seed, atm=True, after=design.specialists)]


def trained(cfg: TrainConfig, job: Job, examples, runtime: Runtime, tok, show: bool = True):
    """job's student (plus its perception), trained on examples with the core's loop, training.train, inside the
    machinery's StudentRun (checkpoints, --resume, progress); or, with --resume, the one a finished run left.
    Returns its Learner."""
    finished = finished_learner(cfg, runtime, job.ckpt, job.iters or None, desc=job.name)
    if finished is not None:
        return finished
    with StudentRun(cfg, runtime, tok, job, examples, show) as run:
        train(run.model, run.optimizer, run.items, cfg, runtime, run.steps)
    return run.learner


def run_job(cfg: TrainConfig, job: Job, train_set, test, runtime: Runtime | None = None, tok=None, show=True):
    """Train job's student and put it to work. A fold student answers its held-out questions: returns its
    evidence {held_out, correct, p_gold} (cached in job.cache). A compared student answers the test set: returns
    {summary, records, ...}. None on DDP ranks other than 0. Runs in a worker process or right here."""
    runtime = runtime or setup(cfg)  # in a worker process: its own (cfg.num_threads set by the parent)
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    design = choose.design(cfg)  # the paper's steps, or a variant's in their place
    learner = trained(cfg, job, [train_set[i] for i in job.fit], runtime, tok, show)
    out = None
    if runtime.master and job.held_out is not None:
        held_out = [train_set[i] for i in job.held_out]
        fold_cfg = dataclasses.replace(cfg, seed=job.seed)  # its own seed (for sampled answers, --label_samples)
        out = {"held_out": job.held_out,
               **design.held_out_evidence(learner.student, tok, held_out, job.mode, fold_cfg, runtime)}
        write_json(job.cache, out)
        os.remove(job.ckpt)  # the evidence is what we keep; fold students can be large
    elif runtime.master and job.atm:
        out = atm_answers(cfg, learner, tok, test, runtime, design)
        out["train_p_post"] = design.p_post(learner, tok, [train_set[i] for i in job.fit], runtime)
        unseen = sorted(set(range(len(train_set))) - set(job.fit))  # --atm_holdout's questions
        if unseen:
            out["holdout"] = {"ids": unseen, "p_post": design.p_post(learner, tok, [train_set[i] for i in unseen],
                                                                     runtime)}
    elif runtime.master:
        out = baseline_answers(cfg, job, learner.student, tok, test, runtime)
    if runtime.world > 1:
        dist.barrier()
        if job.held_out is not None:
            with open(job.cache) as f:
                out = json.load(f)
    return out


def atm_answers(cfg: TrainConfig, learner, tok, test, runtime: Runtime, design: choose.Design) -> dict:
    """The ATM student's test answers as its decider gives them (design.generate_answers: generate_answers with
    the perception, or a variant's), and with every question forced into each mode (the threshold curve's ends)."""
    records, ms = timed_answers(learner, tok, test, cfg, runtime, answer=design.generate_answers)
    forced = {m: design.generate_answers(learner, tok, test, cfg, runtime, force=m) for m in MODES}
    return {"summary": summarize(records, ms), "records": records, "forced": forced}


def baseline_answers(cfg: TrainConfig, job: Job, student, tok, test, runtime: Runtime) -> dict:
    """A compared student's generate_answers on the test set; the post baseline of an ATM run also gives its
    p(gold answer) of each test question (the test-set oracle label)."""
    records, ms = timed_answers(student, tok, test, choose.answering(cfg, runtime), answer=generate_answers)
    out = {"summary": summarize(records, ms), "records": records}
    if job.name == "post" and cfg.mechanism == "atm":
        out["p_gold"] = answer_first_confidence(student, tok, test, runtime.device, cfg.eval_batch_size,
                                                ctx=runtime.ctx)
    return out


def kfold_labels(cfg: TrainConfig, train_set, rows: list[dict], design: choose.Design, show: bool = True):
    """Label every training question "pre" or "post" from its evidence row (evidence_rows), by the label rule
    (labels.label, or a variant's: design.label); write out_dir/labels.json. Returns (the labels the ATM student
    trains on, counts per group of who was right)."""
    labels = [design.label(r) for r in rows]
    counts = evidence_counts([ex.group for ex in train_set], [r["pre_ok"] for r in rows],
                             [r["post_ok"] for r in rows], labels)
    labels = design.training_labels(labels, rows, [ex.group for ex in train_set])  # label_source's
    write_json(os.path.join(cfg.out_dir, "labels.json"), {ex.id: {"label": lab, **r}
                                                          for ex, lab, r in zip(train_set, labels, rows)}, indent=0)
    a = counts["ALL"]
    if show:
        print(f"k-fold labels: {labels.count('post')} post, {labels.count('pre')} pre of {len(labels)}; evidence: "
              f"pre only right {a['pre_only']}, post only {a['post_only']}, both {a['both']}, neither "
              f"{a['neither']} ({100 * a['neither'] / max(1, a['n']):.1f}% labelled by label_default)")
    return labels, counts


def holdout_check(p_post: list[float], kfold: list[str], own: list[str] | None = None) -> dict:
    """The perception's p(answer first) on held-out training questions against their k-fold labels: the ROC AUC
    (None when the labels are all one mode), the agreement at 0.5, and the spread of p (is it a constant?); with
    `own`, the labels it trained with when they are not the k-fold ones, its AUC and agreement against those too."""
    def auc(labels):
        pos = [lab == "post" for lab in labels]
        return stats.roc_auc(p_post, pos) if 0 < sum(pos) < len(pos) else None
    p = stats.spread(p_post)
    out = dict(n=len(kfold), auc=auc(kfold), agreement=agreement(p_post, kfold), p_min=p["min"], p_max=p["max"],
               p_std=p["std"])
    return out if own is None else {**out, "auc_own": auc(own), "agreement_own": agreement(p_post, own)}


def evidence_rows(n: int, folds: list[Job], evidence: list[dict]) -> list[dict]:
    """Per training question, what the fold students that held it out showed: {pre_ok, post_ok, p_gold} (and
    pre_rate, post_rate where the evidence has pass rates)."""
    rows = [{} for _ in range(n)]
    for job, ev in zip(folds, evidence, strict=True):
        for j, i in enumerate(ev["held_out"]):
            rows[i][f"{job.mode}_ok"] = ev["correct"][j]
            rows[i].update({"p_gold": ev["p_gold"][j]} if job.mode == "post" else {})
            rows[i].update({f"{job.mode}_rate": ev["pass_rate"][j]} if "pass_rate" in ev else {})
    keys = ("pre_ok", "post_ok", "p_gold", "pre_rate", "post_rate")
    return [{k: r[k] for k in keys if k in r} for r in rows]


def main(argv):
    t_start = time.time()
    cfg = parse_args(argv)
    runtime = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    design = choose.design(cfg)  # the paper's steps, or a variant's in their place: chosen here, once
    os.makedirs(cfg.out_dir, exist_ok=True)
    # 1. the data
    train_set, test, data_dir = load_data(cfg, tok)
    if runtime.master:
        print(f"data: {len(train_set)} train / {len(test)} test examples from {data_dir}; device {runtime.device}")
    folds = fold_students(cfg, train_set) if cfg.mechanism == "atm" else []
    compared = compared_students(cfg, train_set, design)
    with Students(cfg, runtime, tok, train_set, test, run_job, folds + compared) as s:
        # 2. the k-fold students, each trained (training.train) on the other folds, then its held_out_evidence;
        #    beside them the baselines, which need nothing from the folds (run_job says what each job does)
        evidence = [s.start(job) for job in folds]
        answers = {job.name: s.start(job) for job in compared if not job.atm}
        evals = {}
        if cfg.mechanism == "atm":
            # 3. the labels: the label rule on each training question's evidence
            rows = evidence_rows(len(train_set), folds, [f.result() for f in evidence])
            labels, counts = kfold_labels(cfg, train_set, rows, design, runtime.master)
            # 4. the ATM student, trained on every question in its label's mode (first in the queue: the longest),
            #    then its generate_answers on the test set
            atm = dataclasses.replace(compared[-1], modes=[labels[i] for i in compared[-1].fit])
            evals["atm"] = s.start(atm, first=True).result()
            if runtime.master:
                evals["atm"]["summary"].update(label_agreement=agreement(evals["atm"]["train_p_post"], atm.modes),
                                               label_counts=counts)
                if "holdout" in evals["atm"]:  # --atm_holdout: the perception on training questions it never saw
                    held = evals["atm"]["holdout"]["ids"]
                    evals["atm"]["summary"]["holdout"] = holdout_check(
                        evals["atm"]["holdout"]["p_post"], [design.label(rows[i]) for i in held],
                        [labels[i] for i in held] if cfg.label_source != "kfold" else None)
        # 5. the baselines' generate_answers on the test set
        evals.update({name: f.result() for name, f in answers.items()})
    if runtime.master:  # 6. the table
        report(cfg, table(cfg, evals, (train_set, test), runtime, tok), argv, t_start)


def table(cfg: TrainConfig, evals: dict, data, runtime: Runtime, tok) -> dict:
    """The results: each student's summary (and its predictions_*.jsonl); for an ATM run also the threshold
    curve, the agreement with the test-set oracle labels, the oracle and random-routing rows; the decided
    questions and traps."""
    (train_set, test), results = data, {}
    for mech, ev in sorted(evals.items(), key=lambda kv: MECHANISMS.index(kv[0])):
        results[mech] = ev["summary"]
        write_text_atomic(os.path.join(cfg.out_dir, f"predictions_{mech}.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in ev["records"]))
    if "atm" in evals:
        results["atm"]["tradeoff"] = threshold_sweep(evals["atm"]["forced"]["pre"], evals["atm"]["forced"]["post"])
        test_labels = test_oracle_labels(cfg, runtime, tok, test, evals)  # from the pre and post baselines' answers
        if test_labels is not None:
            results["atm"]["test_oracle_agreement"] = agreement([r["p_post"] for r in evals["atm"]["records"]],
                                                                test_labels)
        if "pre" in evals and "post" in evals:
            pre, post = evals["pre"]["records"], evals["post"]["records"]
            results["oracle"] = oracle_summary(pre, post)
            results["random"] = random_routing_summary(pre, post, results["atm"]["post_fraction"])
    add_decided_and_traps(results, {m: ev["records"] for m, ev in evals.items()}, open_questions(train_set, test))
    return results


def report(cfg: TrainConfig, results: dict, argv, t_start: float):
    """Write results.json (with the command and the wall time) and print the table."""
    summary = dict(results)
    results["run"] = {"command": " ".join(["python train.py", *argv]), "wall_time_s": time.time() - t_start}
    write_json(os.path.join(cfg.out_dir, "results.json"), results, indent=2)
    print(format_summary(summary, cfg.decider))  # the table, traps, k-fold evidence, agreements
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

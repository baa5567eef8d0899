"""Distil a teacher's chain-of-thought into a GPT student with pre-thinking, post-thinking or adaptive thinking.

    python train.py --mechanism atm                      # built-in synthetic suite, CPU-sized student, ~3.5 min
    python train.py config/synth_cpu.py --mechanism pre  # a config file, then overrides
    torchrun --nproc_per_node=8 train.py config/gpt2_large_finetune_cot.py

The paper's pipeline, top to bottom: the data; k-fold students (for each fold, a pre and a post student trained on
the other folds answer the held-out questions); labels from their evidence; the ATM student (student + perception
module) trained on questions formatted in their label's mode, and beside it the pre, post and answer-only
baselines of the same size and budget; the table. The lesson's steps live in atm_min/ (README's reading order);
what runs them robustly and fast -- settings, checkpoints and resume, workers, caches, progress -- in
atm_min/machinery/, called here.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch.distributed as dist

from atm_min.evaluate import (agreement, generate_answers, oracle_summary, post_probabilities,
                              random_routing_summary, summarize, threshold_sweep, timed_answers)
from atm_min.formats import MODES
from atm_min.labels import answer_first_confidence, evidence_counts, fold_ids, held_out_evidence, label, \
    shuffled_labels
from atm_min.machinery.config import TrainConfig, parse_args
from atm_min.machinery.data import load_data, write_text_atomic
from atm_min.machinery.decided import add_decided_and_traps, open_questions
from atm_min.machinery.errors import ProjectError
from atm_min.machinery.gpt2 import get_tokenizer
from atm_min.machinery.jobs import Job, run_all, write_json
from atm_min.machinery.deciders import decider_answers
from atm_min.machinery.runs import test_oracle_labels, trained
from atm_min.machinery.runtime import Runtime, setup
from atm_min.machinery.tables import format_summary

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


def compared_students(cfg: TrainConfig, train) -> list[Job]:
    """The students compared on the test set: cfg.mechanism's, and with atm + baselines the pre, post and
    answer-only students of the same size and budget. The atm job's modes are its labels, filled in later; a
    router (cfg.decider) answers with the pre and post baselines, so it needs them and runs after them."""
    everything = list(range(len(train)))
    router = cfg.mechanism == "atm" and cfg.decider == "router"
    mechs = ["pre", "post", "answer"] if cfg.mechanism == "atm" and cfg.baselines else ["pre", "post"] if router else []
    jobs = [Job(m, everything, [m] * len(train), os.path.join(cfg.out_dir, f"baseline_{m}.pt"), cfg.seed)
            for m in mechs]
    jobs.append(Job(cfg.mechanism, everything, [] if cfg.mechanism == "atm" else [cfg.mechanism] * len(train),
                    os.path.join(cfg.out_dir, "ckpt.pt"), cfg.seed, atm=cfg.mechanism == "atm",
                    after=("pre", "post") if router else ()))
    return jobs


def run_job(cfg: TrainConfig, job: Job, train, test, rt: Runtime | None = None, tok=None, show: bool = True):
    """Train job's student and put it to work. A fold student answers its held-out questions: returns the
    evidence {held_out, correct, p_gold} (cached in job.cache). A compared student answers the test set: returns
    {summary, records, ...}. None on DDP ranks other than 0. Runs in a worker process or right here."""
    rt = rt or setup(cfg)  # in a worker process: this process's own runtime (cfg.num_threads set by the parent)
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    student, perception = trained(cfg, rt, tok, [train[i] for i in job.fit], job.modes, job.ckpt, atm=job.atm,
                                  iters=job.iters or None, seed=job.seed, desc=job.name, show=show)
    out = None
    if rt.master and job.held_out is not None:
        out = {"held_out": job.held_out, **held_out_evidence(
            student, tok, [train[i] for i in job.held_out], job.mode, rt.device, cfg.eval_batch_size,
            cfg.max_new_tokens, ctx=rt.ctx, samples=cfg.label_samples, temperature=cfg.label_temperature,
            seed=job.seed)}
        write_json(job.cache, out)
        os.remove(job.ckpt)  # the evidence is what we keep; fold students can be large
    elif rt.master:
        out = answer_test_set(cfg, rt, tok, student, perception, test, atm=job.atm)
        if job.name == "post" and cfg.mechanism == "atm":  # its p(gold answer): the test-set oracle label
            out["p_gold"] = answer_first_confidence(student, tok, test, rt.device, cfg.eval_batch_size, ctx=rt.ctx)
        if job.atm:
            out["train_p_post"] = post_probabilities(student, perception, tok, [train[i] for i in job.fit],
                                                     rt.device)
    if rt.world > 1:
        dist.barrier()
        if job.held_out is not None:
            with open(job.cache) as f:
                out = json.load(f)
    return out


def answer_test_set(cfg: TrainConfig, rt: Runtime, tok, student, perception, test, atm: bool = False) -> dict:
    """Greedy answers to the test set: {summary, records}; the ATM job's also "forced": every question answered
    in each mode, the ends of the threshold curve. With routing="hard" (an ablation) the perception's classifier
    picks each question's mode and the student is started with that mode's marker (it never saw a soft prompt).
    Issue 15's other deciders (cfg.decider: the student's mode token; a router) answer in machinery/deciders.py."""
    if atm and cfg.decider != "soft_prompt":
        records, ms, forced = decider_answers(cfg, rt, tok, student, perception, test)
        return {"summary": summarize(records, ms), "records": records, "forced": forced}
    args = (tok, test, rt.device, cfg.eval_batch_size, cfg.max_new_tokens)
    force = "classifier" if perception is not None and cfg.routing == "hard" else None
    records, ms = timed_answers(student, *args, perception=perception, explain=cfg.explain, ctx=rt.ctx, force=force,
                                routing=cfg.routing)
    forced = {m: generate_answers(student, *args, perception=perception, explain=cfg.explain, ctx=rt.ctx, force=m,
                                  routing=cfg.routing) for m in MODES} if atm else None  # the curve's ends
    return {"summary": summarize(records, ms), "records": records, **({"forced": forced} if atm else {})}


def kfold_labels(cfg: TrainConfig, train, evidence: dict, show: bool = True) -> tuple[list[str], dict]:
    """Label every training question "pre" or "post" from the fold students' evidence (job name -> result);
    write out_dir/labels.json. Returns (labels, counts per group of who was right)."""
    n = len(train)
    ok, rate, p_gold = {"pre": [None] * n, "post": [None] * n}, {"pre": [None] * n, "post": [None] * n}, [None] * n
    for name, ev in evidence.items():
        mode = name.split()[-1]
        for j, i in enumerate(ev["held_out"]):
            ok[mode][i] = ev["correct"][j]
            rate[mode][i] = ev["pass_rate"][j] if cfg.label_samples else None
            if mode == "post":
                p_gold[i] = ev["p_gold"][j]
    labels = [label(ok["pre"][i], ok["post"][i], cfg.label_rule, cfg.label_default, p_gold[i], cfg.post_confidence,
                    (rate["pre"][i], rate["post"][i]), cfg.label_delta) for i in range(n)]
    counts = evidence_counts([ex.group for ex in train], ok["pre"], ok["post"], labels)
    if cfg.label_source == "random":  # the ablation: the same post rate, no evidence
        labels = shuffled_labels(labels, cfg.seed)
    write_json(os.path.join(cfg.out_dir, "labels.json"), {
        ex.id: {"label": lab, "pre_ok": ok["pre"][i], "post_ok": ok["post"][i], "p_gold": p_gold[i],
                **({"pre_rate": rate["pre"][i], "post_rate": rate["post"][i]} if cfg.label_samples else {})}
        for i, (ex, lab) in enumerate(zip(train, labels))}, indent=0)
    a = counts["ALL"]
    if show:
        print(f"k-fold labels: {labels.count('post')} post, {labels.count('pre')} pre of {len(labels)}; evidence: "
              f"pre only right {a['pre_only']}, post only {a['post_only']}, both {a['both']}, neither "
              f"{a['neither']} ({100 * a['neither'] / max(1, a['n']):.1f}% labelled by label_default)")
    return labels, counts


def main(argv):
    t_start = time.time()
    cfg = parse_args(argv)
    rt = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    os.makedirs(cfg.out_dir, exist_ok=True)
    train, test, data_dir = load_data(cfg, tok)
    if rt.master:
        print(f"data: {len(train)} train / {len(test)} test examples from {data_dir}; device {rt.device}")

    folds = fold_students(cfg, train) if cfg.mechanism == "atm" else []
    evals, labels, counts = run_all(cfg, rt, tok, train, test, folds, compared_students(cfg, train), run_job,
                                    lambda evidence: kfold_labels(cfg, train, evidence, rt.master))
    if not rt.master:
        return
    results = {}
    for mech, ev in sorted(evals.items(), key=lambda kv: MECHANISMS.index(kv[0])):
        results[mech] = ev["summary"]
        write_text_atomic(os.path.join(cfg.out_dir, f"predictions_{mech}.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in ev["records"]))
    if "atm" in evals:
        atm = results["atm"]
        atm["label_agreement"] = agreement(evals["atm"]["train_p_post"], labels)
        atm["label_counts"] = counts
        atm["tradeoff"] = threshold_sweep(evals["atm"]["forced"]["pre"], evals["atm"]["forced"]["post"])
        test_labels = test_oracle_labels(cfg, rt, tok, test, evals)  # from the pre and post baselines' answers
        if test_labels is not None:
            atm["test_oracle_agreement"] = agreement([r["p_post"] for r in evals["atm"]["records"]], test_labels)
        if "pre" in evals and "post" in evals:
            pre, post = evals["pre"]["records"], evals["post"]["records"]
            results["oracle"] = oracle_summary(pre, post)
            results["random"] = random_routing_summary(pre, post, atm["post_fraction"])
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

"""Machinery: the jobs of a run and their scheduling, with the fold cache.

A job trains one student and puts it to work: a fold student answers its held-out questions (evidence for the
k-fold labels), a compared student answers the test set. train.py says what the jobs are and what each does;
run_all runs them, as many at once as plan_workers allows (parallel.py), reuses the evidence of fold students
that finished earlier (out_dir/folds/*.json, or --evidence_from's), and starts the ATM student as soon as the
labels exist. A job takes only picklable arguments, so it can run in a worker process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass

from .data import write_text_atomic
from .errors import ConfigError, DataError
from .parallel import JobRunner, plan_workers


@dataclass
class Job:
    name: str                    # "pre", "post", "answer", "atm" or "fold 2/3 post"
    fit: list[int]               # indices of the training examples it learns from
    modes: list[str]             # the target format of each of them ("pre", "post" or "answer")
    ckpt: str                    # its checkpoint (resume; the compared students keep theirs)
    seed: int                    # initialisation and data order
    iters: int = 0               # optimiser steps; 0 = cfg.max_iters
    held_out: list[int] | None = None  # fold students: indices of the training questions they label
    cache: str = ""              # fold students: where their evidence is kept (a resumed run reuses it)
    atm: bool = False            # train the perception module too
    after: tuple = ()            # names of jobs that must finish before this one starts (a router's specialists)

    @property
    def mode(self) -> str:
        return self.modes[0] if self.modes else "pre"


def write_json(path: str, obj, indent=None):
    write_text_atomic(path, json.dumps(obj, indent=indent))  # a crash leaves the old file or the new one


def read_cached(cfg, job: Job):
    """A fold student's evidence from this run (--resume) or from cfg.evidence_from's run, if there is one."""
    path = job.cache if cfg.resume and os.path.exists(job.cache) else ""
    if cfg.evidence_from:
        path = os.path.join(cfg.evidence_from, "folds", os.path.basename(job.cache))
        if not os.path.exists(path):
            raise ConfigError(f"evidence_from={cfg.evidence_from!r}: no {path}; give the out_dir of a finished "
                              f"--mechanism=atm run with the same folds")
    if not path:
        return None
    try:
        with open(path) as f:
            cached = json.load(f)
        held_out, correct = cached["held_out"], cached["correct"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not a fold student's evidence ({e}); delete it to recompute it") from None
    if "p_gold" not in cached and "confidence" in cached:  # written before the measurement had its own name
        cached["p_gold"] = cached.pop("confidence")
    if job.mode == "post" and not isinstance(cached.get("p_gold"), list):
        raise DataError(f"{path} has no answer-first confidences (an older version wrote it); delete it to "
                        f"recompute it")
    if cfg.label_samples and (cached.get("samples"), cached.get("temperature"), isinstance(
            cached.get("pass_rate"), list)) != (cfg.label_samples, cfg.label_temperature, True):
        raise DataError(f"{path} holds no pass rates of label_samples={cfg.label_samples} at label_temperature="
                        f"{cfg.label_temperature} (it has label_samples={cached.get('samples', 0)}): give "
                        f"--evidence_from a run with those settings, or delete the file to recompute it")
    if held_out != job.held_out or len(correct) != len(held_out):
        raise DataError(f"{path} holds the evidence of another split (other data, seed, folds or max_train); "
                        f"use the same settings, or delete it to recompute it")
    return cached


def _test_hook_fold_cached(n_done: int):
    """Test hook (tests/test_parallel.py): with ATM_TEST_KILL_AFTER_FOLDS=N in the environment the run kills itself
    outright (SIGKILL, as kill -9 would) once N fold students of this run have cached their evidence, so the kill
    lands between fold students whatever the machine's speed. Unset (always, outside that test): nothing."""
    kill_after = int(os.environ.get("ATM_TEST_KILL_AFTER_FOLDS", "0"))
    if kill_after and n_done == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)


def run_all(cfg, rt, tok, train, test, folds: list[Job], mains: list[Job], work, make_labels):
    """Every job of the run. work(cfg, job, train, test, rt, tok, show) trains a job's student and returns its
    result; make_labels(evidence by fold job name) -> (labels, counts) once every fold student has answered,
    which gives the atm job its modes. Returns (results of the compared students by name, labels, counts)."""
    evidence = {}
    for job in folds:  # a resumed run reuses the evidence of finished fold students
        cached = read_cached(cfg, job)
        if cached is not None:
            evidence[job.name] = cached
            if rt.master:
                print(f"{job.name}: evidence cached in "
                      f"{os.path.join(cfg.evidence_from, 'folds') if cfg.evidence_from else job.cache}")
    todo = [j for j in folds if j.name not in evidence] + [j for j in mains if not j.atm]
    n_jobs = len(todo) + sum(j.atm for j in mains)  # the atm job joins the pool once the labels exist
    workers, threads = plan_workers(cfg.workers, n_jobs, rt.device, rt.world)
    if folds:
        fold_dir = os.path.dirname(folds[0].cache)
        os.makedirs(fold_dir, exist_ok=True)
        for name in os.listdir(fold_dir) if rt.master else []:  # what a killed run was writing: never complete
            if name.endswith(".tmp"):
                os.remove(os.path.join(fold_dir, name))
    if rt.master:
        print(f"training {n_jobs} student{'s' * (n_jobs != 1)}"
              + (f", {workers} at a time ({threads} thread{'s' * (threads > 1)} each)" if workers > 1 else ""))
    job_cfg = dataclasses.replace(cfg, device=rt.device, num_threads=threads or cfg.num_threads)
    results, labels, counts = {}, None, None
    started = time.time()
    with JobRunner(workers, threads) as runner:
        in_worker = workers > 1
        folds_cached = 0  # fold students of this run that have cached their evidence (for the test hook)

        def submit(job):
            nonlocal folds_cached
            if in_worker:
                runner.submit(job.name, work, job_cfg, job, train, test, None, None, False)
            else:
                runner.submit(job.name, work, cfg, job, train, test, rt, tok)  # runs the job here, now
                if job.held_out is not None:
                    folds_cached += 1
                    _test_hook_fold_cached(folds_cached)

        # Jobs are handed to the pool only as workers come free, so the atm job, which waits for the labels,
        # can go to the front of the queue: it is the longest job, and starting it last would leave one worker
        # idle at the end while it trains alone. With workers=1 submit() runs a job at once, in this order.
        queued = list(todo)
        atm_job = next((j for j in mains if j.atm), None)
        while True:
            if atm_job is not None and labels is None and len(evidence) == len(folds):
                labels, counts = make_labels(evidence)
                atm_job.modes = labels
            if atm_job is not None and labels is not None and all(n in results for n in atm_job.after):
                queued.insert(0, atm_job)
                atm_job = None
            while queued and runner.pending < workers:
                submit(queued.pop(0))
            finished = runner.next_finished()
            if finished is None:
                break
            name, out = finished
            if name.startswith("fold"):
                evidence[name] = out
                if in_worker:
                    folds_cached += 1
                    _test_hook_fold_cached(folds_cached)
                if rt.master:
                    print(f"{name}: right on {sum(out['correct'])}/{len(out['correct'])} held-out questions "
                          f"({time.time() - started:.0f} s)")
            else:
                results[name] = out
                if rt.master:
                    print(f"{name}: accuracy {out['summary']['accuracy']:.3f} on the test set "
                          f"({time.time() - started:.0f} s)")
    return results, labels, counts

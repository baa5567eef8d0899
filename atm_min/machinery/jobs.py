"""Machinery: the jobs of a run and their scheduling, with the fold cache.

A job trains one student and puts it to work: a fold student answers its held-out questions (evidence for the
k-fold labels), a compared student answers the test set. train.py says what the jobs are, what each does and in
which order the pipeline needs their results; Students runs them, as many at once as plan_workers allows
(parallel.py), and reuses the evidence of fold students that finished earlier (out_dir/folds/*.json, or
--evidence_from's). A job takes only picklable arguments, so it can run in a worker process.
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
    modes: list[str] | None      # the target format of each ("pre", "post", "answer"); the ATM student's come
                                 # with the labels (train.py gives them when it starts the job)
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


class Future:
    """One job's result, once it has one: result() waits for it (running other jobs meanwhile)."""

    def __init__(self, students, name: str):
        self.students, self.name = students, name

    def result(self):
        while self.name not in self.students.results:
            self.students.step()
        return self.students.results[self.name]


class Students:
    """The students of a run, trained as many at once as plan_workers allows (parallel.py). start(job) queues a
    job and returns its Future; jobs go to the pool only as workers come free, so a job started with
    first=True (the ATM student, the longest, which waits for the labels) goes to the front of the queue
    rather than training alone at the end. A fold student whose evidence is cached (out_dir/folds/*.json from
    an earlier --resume'd run, or --evidence_from's) is not trained again. work(cfg, job, train, test, runtime, tok,
    show) trains a job's student and returns its result; it must be picklable to run in a worker process."""

    def __init__(self, cfg, runtime, tok, train, test, work, jobs: list[Job]):
        self.cfg, self.runtime, self.tok, self.train, self.test, self.work = cfg, runtime, tok, train, test, work
        self.results, self.queued, self.folds_cached, self.started = {}, [], 0, time.time()
        folds = [j for j in jobs if j.held_out is not None]
        for job in folds:  # a resumed run reuses the evidence of finished fold students
            cached = read_cached(cfg, job)
            if cached is not None:
                self.results[job.name] = cached
                if runtime.master:
                    print(f"{job.name}: evidence cached in "
                          f"{os.path.join(cfg.evidence_from, 'folds') if cfg.evidence_from else job.cache}")
        n_jobs = sum(j.name not in self.results for j in jobs)
        self.workers, threads = plan_workers(cfg.workers, n_jobs, runtime.device, runtime.world)
        if folds:
            fold_dir = os.path.dirname(folds[0].cache)
            os.makedirs(fold_dir, exist_ok=True)
            for name in os.listdir(fold_dir) if runtime.master else []:  # what a killed run was writing: never complete
                if name.endswith(".tmp"):
                    os.remove(os.path.join(fold_dir, name))
        if runtime.master:
            print(f"training {n_jobs} student{'s' * (n_jobs != 1)}" + (
                f", {self.workers} at a time ({threads} thread{'s' * (threads > 1)} each)" if self.workers > 1 else ""))
        self.job_cfg = dataclasses.replace(cfg, device=runtime.device, num_threads=threads or cfg.num_threads)
        self.runner = JobRunner(self.workers, threads)

    def start(self, job: Job, first: bool = False) -> Future:
        if job.name not in self.results:
            self.queued.insert(0, job) if first else self.queued.append(job)
            self._dispatch()
        return Future(self, job.name)

    def _dispatch(self):
        while self.runner.pending < self.workers:
            ready = [j for j in self.queued if all(n in self.results for n in j.after)]
            if not ready:
                return
            job = ready[0]
            self.queued.remove(job)
            if self.workers > 1:
                self.runner.submit(job.name, self.work, self.job_cfg, job, self.train, self.test, None, None, False)
            else:
                self.runner.submit(job.name, self.work, self.cfg, job, self.train, self.test, self.runtime, self.tok)
                self._finished(*self.runner.next_finished())  # it ran here, now

    def step(self):
        """Hand queued jobs to free workers, then wait for the next job to finish. (Nothing is handed out when a
        job finishes: the pipeline may first want to start a job at the front of the queue.)"""
        n_done = len(self.results)
        self._dispatch()
        if len(self.results) > n_done:  # workers=1: a job ran in this process, right now
            return
        finished = self.runner.next_finished()
        if finished is None:
            raise RuntimeError(f"nothing is running; queued jobs wait for others: {[j.name for j in self.queued]}")
        self._finished(*finished)

    def _finished(self, name, out):
        self.results[name] = out
        if name.startswith("fold"):
            self.folds_cached += 1
            _test_hook_fold_cached(self.folds_cached)
            if self.runtime.master:
                print(f"{name}: right on {sum(out['correct'])}/{len(out['correct'])} held-out questions "
                      f"({time.time() - self.started:.0f} s)")
        elif self.runtime.master:
            print(f"{name}: accuracy {out['summary']['accuracy']:.3f} on the test set "
                  f"({time.time() - self.started:.0f} s)")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.runner.close(cancel=exc_type is not None)

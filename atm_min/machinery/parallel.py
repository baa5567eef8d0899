"""Speed machinery: train independent students side by side, one process each.

The k-fold labellers and the baselines do not depend on each other, so they need not wait for each other. A tiny
student cannot keep two CPU cores busy with one process: on the project's 2-core CPU, `bench.py --only parallel`
measured 11.7-12.8 ms per student-step for one process with two threads and 9.9-10.1 ms for two one-thread
processes side by side (1.17-1.28x). Stacking the students into one batched model (torch.func.vmap) did not help
there (0.78x): each step is already compute-bound, not overhead-bound.

JobRunner is the whole idea; workers=1 runs the same calls one after another in this process, which is
the reference the parallel path is tested against (tests/test_parallel.py: same labels, same weights).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time

import torch

MAX_AUTO_WORKERS = 4  # beyond this, memory bandwidth, not cores, limits tiny students (our choice)


def plan_workers(requested: int, n_jobs: int, device: str, world: int = 1) -> tuple[int, int]:
    """(processes, torch threads per process) for n_jobs independent jobs. requested=0 means auto: one process
    per core on a CPU (up to MAX_AUTO_WORKERS); one process on a GPU/MPS (the jobs would share one device) and
    under torchrun (each rank is already a process, and every rank must take part in every job)."""
    if world > 1 or not device.startswith("cpu") or n_jobs <= 1:
        return 1, 0
    cores = os.cpu_count() or 1
    workers = requested or min(cores, MAX_AUTO_WORKERS)
    workers = max(1, min(workers, n_jobs))
    return workers, (max(1, cores // workers) if workers > 1 else 0)


def _init_worker(threads: int, parent_pid: int | None = None):
    if threads:
        torch.set_num_threads(threads)
    if parent_pid is not None:  # a worker outlives a parent killed outright (kill -9), idle or busy: not ours
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int):
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)  # the parent is gone: what was trained is in the checkpoints, a --resume goes on from there


class JobRunner:
    """Submit jobs (a picklable function and its arguments); collect results as they finish.

    With workers == 1 a job runs at submit() time, in this process. Otherwise a pool of `workers` processes
    started with "spawn" (a fresh interpreter: no copied locks or thread pools from this process) runs them.
    On an error or Ctrl-C the pool is terminated at once (close(cancel=True)): no worker goes on training a
    student nobody will use, and the checkpoints written so far are what --resume continues from."""

    def __init__(self, workers: int, threads: int = 0):
        self.workers = workers
        self.pool = None
        self.pending = 0
        self.done = queue.Queue()  # (name, result, exception) of finished jobs, in the order they finished
        if workers > 1:
            self.pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                                     initargs=(threads, os.getpid()))

    def submit(self, name, fn, *args):
        if self.pool is None:
            self.done.put((name, fn(*args), None))
            return
        self.pending += 1
        self.pool.apply_async(fn, args, callback=lambda r: self.done.put((name, r, None)),
                              error_callback=lambda e: self.done.put((name, None, e)))

    def next_finished(self):
        """(name, result) of a finished job, waiting for one if needed; None when nothing is left. A job's
        exception is raised here."""
        if self.done.empty() and not self.pending:
            return None
        name, result, error = self.done.get()
        if self.pool is not None:
            self.pending -= 1
        if error is not None:
            raise error
        return name, result

    def close(self, cancel: bool = False):
        if self.pool is not None:
            if cancel:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(cancel=exc_type is not None)


def time_training_steps(steps: int, seed: int = 0, threads: int = 0) -> float:
    """Seconds for `steps` training steps of the default CPU student (TrainConfig's sizes, batch 16 x 88 byte
    tokens, the synthetic suite's mean length) on random tokens: the unit of work `bench.py --only parallel`
    gives to one process or to several. A module-level function, so a worker process can import it."""
    from .config import TrainConfig
    from ..model import GPT, GPTConfig
    _init_worker(threads)
    cfg = TrainConfig()
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=cfg.block_size, vocab_size=257, n_layer=cfg.n_layer, n_head=cfg.n_head,
                          n_embd=cfg.n_embd))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    x = torch.randint(0, 257, (cfg.batch_size, 88))
    t0 = time.perf_counter()
    for _ in range(steps):
        _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0

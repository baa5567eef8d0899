"""Machinery: one student's training run around the teaching loop (atm_min/training.py train): a fresh or
pretrained student, resume from a checkpoint, progress and log.jsonl, timed saves, a save on Ctrl-C, and a
finished run reused instead of trained again."""

from __future__ import annotations

import json
import os
import time

import torch
import torch.nn as nn

from ..batches import encode_items
from ..labels import answer_first_confidence, label
from ..model import GPT, GPTConfig
from ..training import Steps, train
from . import choose
from .checkpoint import load_checkpoint, load_learner_state, rng_state, save_checkpoint, saved_config, set_rng_state
from .choose import build_learner, finished_student, labeller, learner_from_checkpoint
from .config import TrainConfig, config_to_dict
from .errors import CheckpointError, TrainingError
from .hf import load_student
from .jobs import Job
from .progress import Progress


def build_student(cfg, vocab_size: int) -> GPT:
    """A fresh student for TrainConfig cfg: from scratch, or pretrained weights (cfg.init_from: GPT-2, or a
    Llama-family checkpoint, machinery/hf.py)."""
    if cfg.init_from == "scratch":
        return GPT(GPTConfig(block_size=cfg.block_size, vocab_size=vocab_size, n_layer=cfg.n_layer,
                             n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                             attn_impl=cfg.attn_impl))
    # Pretrained: its own shapes; our block_size may be shorter (GPT-2's position table is cropped).
    return load_student(cfg.init_from, dropout=cfg.dropout, attn_impl=cfg.attn_impl, block_size=cfg.block_size)


class StudentRun:
    """One student's training run: the machinery around the core's loop (training.train). Builds job's learner
    fresh, or continues the one its checkpoint holds (--resume). Inside `with run:` progress, log.jsonl and timed
    saves run on each step (Steps.on_step), Ctrl-C saves, a non-finite loss becomes a TrainingError, and the end
    saves the finished checkpoint:

        with StudentRun(cfg, runtime, tok, job, examples) as run:
            train(run.model, run.optimizer, run.items, cfg, runtime, run.steps)
        run.learner  # trained

    job: a jobs.Job (its name, modes, ckpt, seed, iters, atm); examples: its training examples, formatted in
    job.modes. on_step(it) is called after each step (tests use it to simulate a crash); show=False keeps the
    progress off the screen (worker processes), the log.jsonl records are written either way."""

    def __init__(self, cfg: TrainConfig, runtime, tok, job, examples, show: bool = True, on_step=None):
        self.cfg, self.runtime, self.tok, self.job, self.on_step = cfg, runtime, tok, job, on_step
        self.iters = job.iters or cfg.max_iters
        self.learner, self.optimizer, start = self._build()
        self.items = encode_items(tok, examples, job.modes)
        self.steps = Steps(self.iters, job.seed, start, self._step_done)
        self.model = self._wrapped()
        self.progress = Progress(job.name, self.iters, initial=start, enabled=runtime.master,
                                 log_path=os.path.join(cfg.out_dir, "log.jsonl"), show=show)
        self.state = {"it": start, "last_save": time.time(), "t0": time.time(), "tokens": 0}

    def _build(self):
        """(learner, optimizer, first step): fresh, or as the checkpoint left them (--resume)."""
        cfg, runtime, tok, job = self.cfg, self.runtime, self.tok, self.job
        ck = load_checkpoint(job.ckpt, map_location=runtime.device) if cfg.resume and os.path.exists(job.ckpt) \
            else None
        if ck is not None:
            check_same_model(cfg, ck, job.ckpt)  # before building: init_from may name weights to download
        torch.manual_seed(job.seed)
        router = job.atm and cfg.decider == "router"  # no student of its own: its specialists are the baselines
        learner = build_learner(cfg, None if router else build_student(cfg, tok.vocab_size), job.atm,
                                tok.vocab_size).to(runtime.device)
        if learner.student is not None and learner.perception is not None and cfg.freeze_student:
            learner.student.requires_grad_(False)
        optimizer = choose.optimizer(cfg, learner, runtime.device)  # the core's, or the perception's lr apart
        if ck is None:
            return learner, optimizer, 0
        load_learner_state(learner, ck["learner"], job.ckpt)  # another model's checkpoint: a CheckpointError
        try:
            optimizer.load_state_dict(ck["optimizer"])
        except ValueError as e:  # other parameter groups: perc_lr_mult changed between 1 and another value
            raise CheckpointError(f"{job.ckpt}: its optimizer state does not fit this run's ({e}); resume with the "
                                  f"perc_lr_mult it was trained with, or drop --resume") from None
        if runtime.scaler is not None and "scaler" in ck:  # float16: the loss scale and its growth counter
            runtime.scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        if runtime.master:
            print(f"{job.name}: resumed from {job.ckpt} at step {ck['iter']}/{self.iters}")
        return learner, optimizer, ck["iter"]

    def _wrapped(self):
        """What computes the forward: the learner, compiled (cfg.compile) and wrapped in DDP (several ranks)."""
        model = torch.compile(self.learner) if self.cfg.compile else self.learner
        if self.runtime.world > 1:
            device_ids = [self.runtime.device] if "cuda" in self.runtime.device else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return model

    def save(self, done: bool):
        if not self.runtime.master:
            return
        student, tok, scaler = self.learner.student, self.tok, self.runtime.scaler
        save_checkpoint(self.job.ckpt, {
            "learner": self.learner.state_dict(), "optimizer": self.optimizer.state_dict(), "iter": self.state["it"],
            "done": done, "config": config_to_dict(self.cfg),
            "model_args": student.config.__dict__ if student is not None else {"vocab_size": tok.vocab_size},
            "tokenizer": tok.name, "atm": self.job.atm, "rng": rng_state(),
            **({"scaler": scaler.state_dict()} if scaler is not None else {})})

    def _step_done(self, it, lr, lm_loss, aux, tokens):  # the loop's hook: progress, log, timed saves
        state, cfg = self.state, self.cfg
        state["it"] = it
        state["tokens"] += tokens
        self.progress.advance()
        if it % cfg.log_interval == 0 or it == self.iters:
            elapsed = time.time() - state["t0"]
            metrics = {"loss": lm_loss.item(), **({"aux": aux.item()} if self.job.atm else {})}
            self.progress.log(it, {self.job.name: metrics}, lr=lr, tok_s=float(state["tokens"]) / elapsed,
                              elapsed_s=elapsed)
        if time.time() - state["last_save"] > cfg.save_interval_s:
            self.save(done=False)
            state["last_save"] = time.time()
        if self.on_step is not None:
            self.on_step(it)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is KeyboardInterrupt:
            self.save(done=False)
        self.progress.close()
        if exc_type is FloatingPointError:
            kept = (f"the last good checkpoint is kept at {self.job.ckpt}" if os.path.exists(self.job.ckpt) else
                    "no checkpoint had been saved yet (one is written every save_interval_s)")
            raise TrainingError(f"{self.job.name}: {exc}; {kept} (try a lower --lr)") from None
        if exc_type is None:
            self.save(done=True)
        return False


def train_run(cfg: TrainConfig, runtime, tok, examples, modes, ckpt_path: str, atm: bool = False,
              iters: int | None = None, seed: int = 0, desc: str = "train", on_step=None, show: bool = True):
    """Train one student (plus the perception module if atm) on `examples`, formatted in `modes`, for `iters`
    optimiser steps, with the core's loop inside a StudentRun; returns (student, perception). `seed` fixes the
    initialisation and the data order, so a run is the same whatever ran before it (in this process or
    another). A finished checkpoint is trained again unless --resume (then: trained)."""
    job = Job(desc, list(range(len(examples))), modes, ckpt_path, seed, iters or 0, atm=atm)
    with StudentRun(cfg, runtime, tok, job, examples, show, on_step) as run:
        train(run.model, run.optimizer, run.items, cfg, runtime, run.steps)
    return run.learner.student, run.learner.perception
def model_keys(atm: bool = True) -> tuple[str, ...]:
    """The settings that decide which model a checkpoint holds: those that build_student and build_learner read
    (found by building one on the meta device through a recording config, so this list cannot drift from the
    code), plus the tokenizer. dropout and attn_impl are read too but change how it computes, not its weights;
    aux_weight, the weight of the perception's loss, is part of the budget (BUDGET_KEYS).
    atm=False: a plain student's (a baseline's), which no perception or decider setting changes."""
    seen = set()

    class Recorder:
        def __getattr__(self, name):
            seen.add(name)
            return getattr(TrainConfig(), name)

    with torch.device("meta"):
        build_learner(Recorder(), build_student(Recorder(), 257), atm=atm)
    return tuple(sorted(seen - {"dropout", "attn_impl", "aux_weight"})) + ("tokenizer",)  # aux_weight: a budget key


# Our rule for --resume and a FINISHED checkpoint: it is reused only if it was trained as this run would train it --
# the same model (model_keys) and the same budget: the same number of steps and these settings. Otherwise a
# CheckpointError names what changed; reusing it would silently report another run's student as this one's.
BUDGET_KEYS = ("batch_size", "grad_accum", "length_batches", "lr", "min_lr", "warmup_iters", "weight_decay", "beta1", "beta2",
               "grad_clip", "aux_weight", "perc_lr_mult", "dropout", "freeze_student", "seed")


def _changes(cfg, saved: dict, keys) -> list[str]:
    return [f"{k}={saved[k]!r}, now {getattr(cfg, k)!r}" for k in keys if k in saved and saved[k] != getattr(cfg, k)]


def check_same_model(cfg: TrainConfig, ck: dict, ckpt_path: str) -> None:
    """A checkpoint of another model (any of model_keys changed) is a CheckpointError naming the settings, even
    where the shapes would fit (n_head, routing, tokenizer): resuming it would train another model."""
    changed = _changes(cfg, ck.get("config", {}), model_keys(ck.get("atm", True)))
    if changed:
        raise CheckpointError(f"{ckpt_path} does not match the model asked for ({'; '.join(changed)}): use the "
                              f"settings it was trained with, another --out_dir, or drop --resume to train afresh")


def load_finished(cfg: TrainConfig, runtime, tok, ckpt_path: str, iters: int | None = None):
    """(student, perception) of finished_learner, or None."""
    learner = finished_learner(cfg, runtime, ckpt_path, iters)
    return None if learner is None else (learner.student, learner.perception)


def finished_learner(cfg: TrainConfig, runtime, ckpt_path: str, iters: int | None = None, desc: str = ""):
    """The Learner of a finished run's checkpoint (--resume), or None if there is none to reuse (desc: say so,
    naming it). A finished run of another model or budget (iters steps, BUDGET_KEYS) is a CheckpointError."""
    if not (cfg.resume and os.path.exists(ckpt_path)):
        return None
    ck = load_checkpoint(ckpt_path, map_location=runtime.device)
    if not ck.get("done"):
        return None
    check_same_model(cfg, ck, ckpt_path)
    saved = ck.get("config", {})
    steps = iters or cfg.max_iters
    changed = ([f"steps={ck['iter']}, now {steps}"] if ck["iter"] != steps else []) + _changes(cfg, saved, BUDGET_KEYS)
    if changed:
        raise CheckpointError(f"{ckpt_path} is a finished run with another training budget ({'; '.join(changed)}): "
                              f"use the settings it was trained with, another --out_dir, or drop --resume to train "
                              f"again")
    learner = learner_from_checkpoint(ck, saved_config(ck), ckpt_path).to(runtime.device)  # the model that was saved
    if desc and runtime.master:
        print(f"{desc}: finished earlier, loaded {ckpt_path}")
    return learner


def reference_baselines(cfg, runtime, tok, test):
    """(pre records, post records, the post student's p(gold answer)) of the test set, from the pre and post
    baselines of cfg.evidence_from's run, for the test-set oracle label of a run that trains no baselines; None
    when that run has none (or answered another test set)."""
    d = cfg.evidence_from
    paths = [os.path.join(d, f) for f in ("predictions_pre.jsonl", "predictions_post.jsonl", "baseline_post.pt")]
    if not d or not all(os.path.exists(p) for p in paths):
        return None
    records = []
    for p in paths[:2]:
        with open(p) as f:
            records.append([json.loads(line) for line in f if line.strip()])
    if any([r["id"] for r in recs] != [ex.id for ex in test] for recs in records):
        return None
    p_gold = answer_first_confidence(finished_student(paths[2], runtime.device), tok, test, runtime.device,
                                     cfg.eval_batch_size, ctx=runtime.ctx)
    return records[0], records[1], p_gold


def test_oracle_labels(cfg, runtime, tok, test, evals: dict) -> list[str] | None:
    """The test-set oracle label of each test question: the run's label rule applied to the pre and post
    baselines' test answers (evals, or --evidence_from's run when this one trains none: reference_baselines);
    for label_rule "pass_rate" confident_post's (labels.label), as sampled pass rates exist for training
    questions only.
    None when there are no baselines to read."""
    base = (evals["pre"]["records"], evals["post"]["records"], evals["post"]["p_gold"]) \
        if "pre" in evals and "post" in evals else reference_baselines(cfg, runtime, tok, test)
    if base is None:
        return None
    rule = labeller(cfg) if cfg.label_rule != "pass_rate" else \
        (lambda r: label(r["pre_ok"], r["post_ok"], r["p_gold"], cfg.post_confidence, cfg.label_default))
    return [rule(dict(pre_ok=a["correct"], post_ok=b["correct"], p_gold=c)) for a, b, c in zip(*base)]


def trained(cfg, runtime, tok, examples, modes, ckpt_path, **kw):
    """A finished student from ckpt_path if --resume found one, else a training run."""
    learner = finished_learner(cfg, runtime, ckpt_path, kw.get("iters"), kw.get("desc", "train"))
    return (learner.student, learner.perception) if learner is not None else \
        train_run(cfg, runtime, tok, examples, modes, ckpt_path, **kw)

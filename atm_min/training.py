"""The training loop: forward, loss, backward, clip, step, with a warmup + cosine learning-rate schedule.

One loop trains every student of the project: a pre, post or answer-only baseline, a k-fold student, or the ATM
student with its perception module (the Learner's forward gives the loss either way). What makes a run robust --
checkpoints and resume, progress bars and logs, saving on Ctrl-C, friendly errors -- is machinery around this
loop (atm_min/machinery/runs.py), plugged in through one hook, Steps.on_step, which does nothing by default (as
minGPT's trainer callbacks do).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from .batches import batch_indices, collate, micro_batch


def lr_at(cfg, it: int, iters: int) -> float:
    """Linear warmup to cfg.lr over cfg.warmup_iters steps, then a cosine decay that reaches cfg.min_lr at step
    `iters`, the end of the run (the last step taken, iters - 1, is just above it)."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / cfg.warmup_iters
    progress = (it - cfg.warmup_iters) / max(1, iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - cfg.min_lr)


def make_optimizer(cfg, model: nn.Module, device: str):
    """AdamW; weight decay on matrices only (not on biases, LayerNorm gains). Fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=device.startswith("cuda"))


@dataclass
class Steps:
    """Which optimiser steps one call of train() takes: from `start` (0, or where a resumed run stopped) up to
    `iters`, the run's length, where the lr schedule ends. `seed` fixes the data order: batch `it` is a function
    of (seed, it) alone, so a resumed run sees the batches the uninterrupted one would have seen.
    on_step(it, lr, lm_loss, aux, tokens) runs after every step (it = steps done, tokens = target tokens in that
    step, a tensor): the machinery's one hook (progress, logs, timed saves); by default nothing."""
    iters: int
    seed: int
    start: int = 0
    on_step: Callable = lambda *args: None


def train(learner, optimizer, items, cfg, runtime, steps: Steps):
    """Train `learner` (a Learner: student + optional perception; or it compiled or wrapped in DDP) on `items`
    (batches.encode_items) for `steps`, in place.

    cfg: the settings the loop reads (batch_size, grad_accum, length_batches, grad_clip and lr_at's); runtime: where it runs
    (device, ctx = autocast or a no-op, scaler = GradScaler for float16 or None, rank, world for DDP). A
    non-finite loss raises FloatingPointError before any update (a read of the loss on the host at every
    micro-step: tools/gpu_check.sh measures what that costs on a GPU)."""
    global_batch = cfg.batch_size * cfg.grad_accum * runtime.world  # sequences per optimiser step, all ranks
    lengths = [len(item.x) for item in items] if cfg.length_batches else None  # batches of similar lengths
    learner.train()
    for it in range(steps.start, steps.iters):
        lr = lr_at(cfg, it, steps.iters)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)  # a group may learn at a multiple (variants/perc_lr.py)
        indices = batch_indices(len(items), steps.seed, it, global_batch, lengths)
        tokens = 0
        for micro in range(cfg.grad_accum):
            share = micro_batch(indices, micro, runtime.rank, runtime.world, cfg.batch_size)
            batch = collate([items[i] for i in share], runtime.device)
            tokens += (batch["y"] != -1).sum() * runtime.world  # a tensor: read on the host only when logged
            sync = micro == cfg.grad_accum - 1  # DDP: all-reduce gradients only on the last micro-step
            with (learner.no_sync() if runtime.world > 1 and not sync else nullcontext()), runtime.ctx:
                loss, lm_loss, aux = learner(**batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {it}")
            loss = loss / cfg.grad_accum  # the gradients of grad_accum micro-batches add up to one batch's mean
            (runtime.scaler.scale(loss) if runtime.scaler else loss).backward()
        step(learner, optimizer, cfg, runtime)
        steps.on_step(it + 1, lr, lm_loss, aux, tokens)


def step(learner, optimizer, cfg, runtime):
    """Clip the gradients (cfg.grad_clip, 0 = off), take the optimiser step, clear the gradients."""
    if runtime.scaler:
        runtime.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
    if runtime.scaler:
        runtime.scaler.step(optimizer)
        runtime.scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)

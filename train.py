"""Distil a teacher's chain-of-thought into a GPT student with pre-thinking, post-thinking or adaptive thinking.

    python train.py --mechanism atm                      # built-in synthetic suite, CPU-sized student, ~5 min
    python train.py config/synth_cpu.py --mechanism pre  # a config file, then overrides
    torchrun --nproc_per_node=8 train.py config/gpt2_large_finetune_cot.py

Read top to bottom: setup -> data -> one training run (the loop) -> k-fold labels -> evaluation -> main.
--mechanism atm runs the whole pipeline: k-fold pre/post students label the training questions, then one student
plus the perception module learns from questions formatted in their label's mode; with baselines=True the pre
and post students are trained on the same data and budget so one command prints the full comparison.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from atm_min.batches import batch_indices, collate, encode_items, micro_batch, perception_inputs, question_inputs
from atm_min.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from atm_min.config import ConfigError, TrainConfig, config_to_dict, parse_args
from atm_min.evaluate import format_table, summarize, timed_answers
from atm_min.examples import DataError, load_split
from atm_min.formats import check_lengths
from atm_min.labels import fold_ids, label
from atm_min.learner import Learner, build_student, learner_from_checkpoint
from atm_min.perception import Perception, soft_prompt
from atm_min.tokenizer import get_tokenizer


class TrainingError(RuntimeError):
    """A run cannot go on (e.g. the loss became NaN); the message says what was kept."""


# ----------------------------------------------------------------------------------------------------------------
# Setup: device, precision, distributed

@dataclass
class Runtime:
    device: str
    ctx: object            # autocast context (or a no-op) for forward passes
    scaler: object         # GradScaler for float16, else None
    rank: int = 0
    world: int = 1

    @property
    def master(self):
        return self.rank == 0


def setup(cfg: TrainConfig) -> Runtime:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else (
            "mps" if torch.backends.mps.is_available() else "cpu")
    rank, world = 0, 1
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    dtype = cfg.dtype
    if dtype == "auto":  # bf16 where the GPU has it, fp16 (with a grad scaler) where not, fp32 on CPU/MPS
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if device.startswith("cuda") \
            else "float32"
    device_type = device.split(":")[0]
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: free speed on Ampere+ for fp32 parts
        torch.backends.cudnn.allow_tf32 = True
    ctx = nullcontext() if dtype == "float32" else torch.autocast(device_type, dtype=getattr(torch, dtype))
    scaler = torch.amp.GradScaler(device_type) if dtype == "float16" else None
    torch.manual_seed(cfg.seed + rank)
    return Runtime(device, ctx, scaler, rank, world)


# ----------------------------------------------------------------------------------------------------------------
# Data

def load_data(cfg: TrainConfig, tok):
    """The examples of cfg.data_dir, or the built-in synthetic suite (generated into out_dir/synth on first use).
    Examples too long for the context fail the run before training, or are dropped, as cfg.on_too_long says."""
    data_dir = cfg.data_dir
    if not data_dir:
        from data.synth import SynthConfig, write_suite  # the generator lives beside the other data scripts
        data_dir = os.path.join(cfg.out_dir, f"synth_{cfg.synth_seed}")
        if not os.path.exists(os.path.join(data_dir, "test.jsonl")):
            write_suite(SynthConfig(seed=cfg.synth_seed), data_dir, verbose=False)
    train, test = load_split(data_dir)
    if cfg.max_train:
        train = train[:cfg.max_train]
    if cfg.max_test:
        test = test[:cfg.max_test]
    prefix = cfg.n_prefix if cfg.mechanism == "atm" else 0
    train = check_lengths(tok, train, cfg.block_size, prefix_len=prefix, on_too_long=cfg.on_too_long)
    test = check_lengths(tok, test, cfg.block_size, prefix_len=prefix, on_too_long=cfg.on_too_long)
    return train, test, data_dir


# ----------------------------------------------------------------------------------------------------------------
# One training run: a student (and, for ATM, the perception module) on examples formatted in given modes

def lr_at(cfg: TrainConfig, it: int, iters: int) -> float:
    """Linear warmup, then cosine decay to min_lr at the last step."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / cfg.warmup_iters
    progress = (it - cfg.warmup_iters) / max(1, iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - cfg.min_lr)


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: str):
    """AdamW; weight decay on matrices only (not on biases, LayerNorm gains). Fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=device.startswith("cuda"))


def train_run(cfg: TrainConfig, rt: Runtime, tok, examples, modes, ckpt_path: str, atm: bool = False,
              iters: int | None = None, seed: int = 0, desc: str = "train", on_step=None):
    """Train one student (plus the perception module if atm) on `examples`, formatted in `modes`, for `iters`
    optimiser steps. Resumes from ckpt_path when cfg.resume and it exists; returns (student, perception).
    on_step(it) is called after each step (tests use it to simulate a crash)."""
    iters = iters or cfg.max_iters
    student = build_student(cfg, tok.vocab_size)
    perception = Perception(student.config.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads,
                            cfg.perc_input) if atm else None
    if perception is not None and cfg.freeze_student:
        student.requires_grad_(False)
    learner = Learner(student, perception).to(rt.device)
    optimizer = make_optimizer(cfg, learner, rt.device)
    items = encode_items(tok, examples, modes)

    it = 0
    if cfg.resume and os.path.exists(ckpt_path):
        ck = load_checkpoint(ckpt_path, map_location=rt.device)
        learner.load_state_dict(ck["learner"])
        optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        it = ck["iter"]
        if rt.master:
            print(f"{desc}: resumed from {ckpt_path} at step {it}/{iters}")

    def save(done: bool):
        if rt.master:
            save_checkpoint(ckpt_path, {
                "learner": learner.state_dict(), "optimizer": optimizer.state_dict(), "iter": it, "done": done,
                "config": config_to_dict(cfg), "model_args": student.config.__dict__, "tokenizer": tok.name,
                "atm": atm, "rng": rng_state()})

    model = learner
    if cfg.compile:
        model = torch.compile(model)
    if rt.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[rt.device] if "cuda" in rt.device else None)
    global_batch = cfg.batch_size * cfg.grad_accum * rt.world
    bar = tqdm(total=iters, initial=it, desc=desc, disable=not rt.master, dynamic_ncols=True, leave=False)
    last_save, t0, tokens = time.time(), time.time(), 0
    learner.train()
    try:
        while it < iters:
            lr = lr_at(cfg, it, iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = batch_indices(len(items), seed, it, global_batch)
            for micro in range(cfg.grad_accum):
                batch = collate([items[i] for i in micro_batch(indices, micro, rt.rank, rt.world, cfg.batch_size)],
                                rt.device)
                tokens += int((batch["y"] != -1).sum()) * rt.world
                sync = micro == cfg.grad_accum - 1  # DDP: all-reduce gradients only on the last micro-step
                with (model.no_sync() if rt.world > 1 and not sync else nullcontext()), rt.ctx:
                    loss, lm_loss, aux = model(**batch, aux_weight=cfg.aux_weight)
                if not torch.isfinite(loss):
                    kept = (f"the last good checkpoint is kept at {ckpt_path}" if os.path.exists(ckpt_path) else
                            f"no checkpoint had been saved yet (one is written every save_interval_s)")
                    raise TrainingError(f"{desc}: the loss became {loss.item()} at step {it}; {kept} "
                                        f"(try a lower --lr)")
                loss = loss / cfg.grad_accum
                (rt.scaler.scale(loss) if rt.scaler else loss).backward()
            if rt.scaler:
                rt.scaler.unscale_(optimizer)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
            if rt.scaler:
                rt.scaler.step(optimizer)
                rt.scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            it += 1
            bar.update(1)
            if it % cfg.log_interval == 0 or it == iters:
                tok_s = tokens / (time.time() - t0)
                extra = {"aux": f"{aux.item():.3f}"} if atm else {}
                bar.set_postfix(loss=f"{lm_loss.item():.3f}", **extra, tok_s=f"{tok_s:.0f}")
            if time.time() - last_save > cfg.save_interval_s:
                save(done=False)
                last_save = time.time()
            if on_step is not None:
                on_step(it)
    except KeyboardInterrupt:
        save(done=False)
        bar.close()
        raise
    bar.close()
    save(done=True)
    return student, perception


def load_finished(cfg: TrainConfig, rt: Runtime, tok, ckpt_path: str):
    """(student, perception) from a finished run's checkpoint, or None if there is none to reuse."""
    if not (cfg.resume and os.path.exists(ckpt_path)):
        return None
    ck = load_checkpoint(ckpt_path, map_location=rt.device)
    if not ck.get("done"):
        return None
    learner = learner_from_checkpoint(ck, cfg).to(rt.device)
    return learner.student, learner.perception


def trained(cfg, rt, tok, examples, modes, ckpt_path, **kw):
    """A finished student from ckpt_path if --resume found one, else a training run."""
    done = load_finished(cfg, rt, tok, ckpt_path)
    if done is not None:
        if rt.master:
            print(f"{kw.get('desc', 'train')}: finished earlier, loaded {ckpt_path}")
        return done
    return train_run(cfg, rt, tok, examples, modes, ckpt_path, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Adaptive thinking, step 1: k-fold labels

def kfold_labels(cfg: TrainConfig, rt: Runtime, tok, train) -> list[str]:
    """Label every training question "pre" or "post" from held-out fold students. Each finished fold is cached
    in out_dir/folds/, so an interrupted run (restarted with --resume) does not redo it."""
    folds = fold_ids(len(train), cfg.folds, cfg.seed)
    fold_dir = os.path.join(cfg.out_dir, "folds")
    os.makedirs(fold_dir, exist_ok=True)
    ok = {}  # (mode, example index) -> held-out answer correct?
    for k in range(cfg.folds):
        fit = [ex for ex, f in zip(train, folds) if f != k]
        held = [i for i, f in enumerate(folds) if f == k]
        for mode in ("pre", "post"):
            cache = os.path.join(fold_dir, f"fold{k}_{mode}.json")
            if cfg.resume and os.path.exists(cache):
                with open(cache) as f:
                    correct = json.load(f)["correct"]
            else:
                ckpt = os.path.join(fold_dir, f"fold{k}_{mode}.pt")
                student, _ = train_run(cfg, rt, tok, fit, [mode] * len(fit), ckpt, iters=cfg.fold_iters or None,
                                       seed=cfg.seed + 1000 * (k + 1), desc=f"fold {k + 1}/{cfg.folds} {mode}")
                correct = []
                if rt.master:
                    recs, _ = timed_answers(student, tok, [train[i] for i in held], rt.device,
                                            cfg.eval_batch_size, cfg.max_new_tokens, ctx=rt.ctx)
                    correct = [r["correct"] for r in recs]
                    tmp = cache + ".tmp"
                    with open(tmp, "w") as f:
                        json.dump({"held_out": held, "correct": correct}, f)
                    os.replace(tmp, cache)
                    os.remove(ckpt)  # the labels are what we keep; fold students can be large
                if rt.world > 1:
                    dist.barrier()
                    with open(cache) as f:
                        correct = json.load(f)["correct"]
            for i, c in zip(held, correct):
                ok[(mode, i)] = c
    labels = [label(ok[("pre", i)], ok[("post", i)], cfg.label_rule, cfg.label_default) for i in range(len(train))]
    if rt.master:
        with open(os.path.join(cfg.out_dir, "labels.json"), "w") as f:
            json.dump({ex.id: {"label": lab, "pre_ok": ok[("pre", i)], "post_ok": ok[("post", i)]}
                       for i, (ex, lab) in enumerate(zip(train, labels))}, f, indent=0)
        n_post = labels.count("post")
        print(f"k-fold labels: {n_post} post, {len(labels) - n_post} pre "
              f"(pre right on {sum(ok[('pre', i)] for i in range(len(train)))}, "
              f"post right on {sum(ok[('post', i)] for i in range(len(train)))} of {len(train)} held-out questions)")
    return labels


# ----------------------------------------------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def label_agreement(student, perception, tok, examples, labels, device) -> float:
    """How often the perception's answer-first probability (> 0.5) agrees with the k-fold label."""
    hits = 0
    for s in range(0, len(examples), 512):
        chunk = examples[s:s + 512]
        q_rows, f_rows = zip(*(question_inputs(tok, ex.question) for ex in chunk))
        _, logit = soft_prompt(perception, student, *perception_inputs(q_rows, f_rows, device))
        hits += sum((lg > 0) == (lab == "post") for lg, lab in zip(logit.tolist(), labels[s:s + 512]))
    return hits / max(1, len(examples))


def evaluate(cfg, rt, tok, student, perception, test):
    records, ms = timed_answers(student, tok, test, rt.device, cfg.eval_batch_size, cfg.max_new_tokens,
                                perception=perception, explain=cfg.explain, ctx=rt.ctx)
    return summarize(records, ms), records


# ----------------------------------------------------------------------------------------------------------------

def main(argv):
    cfg = parse_args(argv)
    rt = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    os.makedirs(cfg.out_dir, exist_ok=True)
    train, test, data_dir = load_data(cfg, tok)
    if rt.master:
        print(f"data: {len(train)} train / {len(test)} test examples from {data_dir}; device {rt.device}")

    runs = {}  # mechanism -> (student, perception, checkpoint path)
    mechs = ["pre", "post"] if cfg.mechanism == "atm" and cfg.baselines else []
    mechs.append(cfg.mechanism)
    labels = None
    for mech in mechs:
        main_run = mech == cfg.mechanism
        path = os.path.join(cfg.out_dir, "ckpt.pt" if main_run else f"baseline_{mech}.pt")
        if mech == "atm":
            labels = kfold_labels(cfg, rt, tok, train)
            student, perception = trained(cfg, rt, tok, train, labels, path, atm=True, seed=cfg.seed, desc="atm")
        else:
            student, perception = trained(cfg, rt, tok, train, [mech] * len(train), path, seed=cfg.seed, desc=mech)
        runs[mech] = (student, perception)

    if not rt.master:
        return
    results = {}
    for mech, (student, perception) in runs.items():
        results[mech], records = evaluate(cfg, rt, tok, student, perception, test)
        if mech == "atm":
            results[mech]["label_agreement"] = label_agreement(student, perception, tok, train, labels, rt.device)
        with open(os.path.join(cfg.out_dir, f"predictions_{mech}.jsonl"), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    tmp = os.path.join(cfg.out_dir, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, os.path.join(cfg.out_dir, "results.json"))
    print(format_table(results))
    if "atm" in results:
        print(f"atm: perception agrees with the k-fold labels on {100 * results['atm']['label_agreement']:.1f}% "
              f"of training questions")
    print(f"wrote {os.path.join(cfg.out_dir, 'results.json')}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ConfigError, DataError, CheckpointError, TrainingError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the checkpoint was saved; continue with --resume")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

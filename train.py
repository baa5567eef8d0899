"""Distil a teacher's chain-of-thought into a GPT student with pre-thinking, post-thinking or adaptive thinking.

    python train.py --mechanism atm                      # built-in synthetic suite, CPU-sized student, ~3.5 min
    python train.py config/synth_cpu.py --mechanism pre  # a config file, then overrides
    torchrun --nproc_per_node=8 train.py config/gpt2_large_finetune_cot.py

Read top to bottom: setup -> data -> one training run (the loop) -> k-fold labels -> evaluation -> main.
--mechanism atm runs the whole pipeline: k-fold pre/post students label the training questions, then one student
plus the perception module learns from questions formatted in their label's mode; with baselines=True the pre
and post students are trained on the same data and budget so one command prints the full comparison.
"""

from __future__ import annotations

import dataclasses
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

from atm_min.batches import batch_indices, collate, encode_items, micro_batch, perception_inputs, question_inputs
from atm_min.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from atm_min.config import TrainConfig, config_to_dict, parse_args
from atm_min.errors import CheckpointError, ConfigError, DataError, ProjectError, TrainingError
from atm_min.compare import oracle_summary, random_routing_summary
from atm_min.evaluate import answer_first_confidence, format_table, summarize, timed_answers
from atm_min.examples import load_split, write_text_atomic
from atm_min.formats import check_lengths
from atm_min.labels import evidence_counts, fold_ids, format_label_counts, label, shuffled_labels
from atm_min.learner import build_learner, build_student, learner_from_checkpoint, load_learner_state, saved_config
from atm_min.perception import soft_prompt
from atm_min.parallel import JobRunner, plan_workers
from atm_min.progress import Progress
from atm_min.tokenizer import get_tokenizer


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


def check_device(device: str) -> None:
    """A device this machine lacks is a ConfigError that says what to use, not torch's AssertionError later."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
            raise ConfigError(f"device={device!r}: no CUDA GPU is available here{build}; use --device=cpu "
                              f"(or --device=auto, which picks what there is)")
        if index and int(index) >= n:
            raise ConfigError(f"device={device!r}: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1} "
                              f"(under torchrun: at most one process per GPU, --nproc_per_node={n})")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps': Apple's MPS backend is not available here; use --device=cpu "
                          "(or --device=auto)")


def setup(cfg: TrainConfig) -> Runtime:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else (
            "mps" if torch.backends.mps.is_available() else "cpu")
    check_device(device)
    rank, world = 0, 1
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            check_device(device)  # one GPU per process: more processes than GPUs stop here
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
        from data.synth import SynthConfig, is_current, write_suite  # the generator lives with the data scripts
        data_dir = os.path.join(cfg.out_dir, f"synth_{cfg.synth_seed}")
        # Under torchrun every rank may get here at once: each writes the same bytes through a temp file of its
        # own and renames it into place (atomic), so no rank reads a half-written file or loses a rename.
        # suite.json is written last, so its presence means the suite is complete; a suite from other generator
        # settings (an older version's) is made again.
        if not is_current(data_dir, SynthConfig(seed=cfg.synth_seed)):
            write_suite(SynthConfig(seed=cfg.synth_seed), data_dir, verbose=False)
    train, test = load_split(data_dir)
    if cfg.max_train:
        train = train[:cfg.max_train]
    if cfg.max_test:
        test = test[:cfg.max_test]
    prefix = cfg.n_prefix if cfg.mechanism == "atm" else 0
    checked = []
    for split, examples in (("train", train), ("test", test)):
        if not examples:  # would fail much later (a division by zero in the data order, an empty table)
            raise DataError(f"{os.path.join(data_dir, split + '.jsonl')} has no examples: a data folder needs at "
                            f"least one in each of train.jsonl and test.jsonl (see data/README.md)")
        kept = check_lengths(tok, examples, cfg.block_size, prefix_len=prefix, on_too_long=cfg.on_too_long)
        if not kept:
            raise DataError(f"every {split} example is longer than block_size={cfg.block_size} allows, so none "
                            f"is left after on_too_long='drop': raise --block_size")
        checked.append(kept)
    train, test = checked
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
              iters: int | None = None, seed: int = 0, desc: str = "train", on_step=None, show: bool = True):
    """Train one student (plus the perception module if atm) on `examples`, formatted in `modes`, for `iters`
    optimiser steps. Resumes from ckpt_path when cfg.resume and it exists; returns (student, perception).
    `seed` fixes the initialisation and the data order, so a run is the same whatever ran before it (in this
    process or another). on_step(it) is called after each step (tests use it to simulate a crash); show=False
    keeps the progress off the screen (worker processes), the log.jsonl records are written either way."""
    iters = iters or cfg.max_iters
    torch.manual_seed(seed)
    learner = build_learner(cfg, build_student(cfg, tok.vocab_size), atm).to(rt.device)
    student, perception = learner.student, learner.perception
    if perception is not None and cfg.freeze_student:
        student.requires_grad_(False)
    optimizer = make_optimizer(cfg, learner, rt.device)
    items = encode_items(tok, examples, modes)

    it = 0
    if cfg.resume and os.path.exists(ckpt_path):
        ck = load_checkpoint(ckpt_path, map_location=rt.device)
        load_learner_state(learner, ck["learner"], ckpt_path)  # another model's checkpoint: a CheckpointError
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
    progress = Progress(desc, iters, initial=it, enabled=rt.master, log_path=os.path.join(cfg.out_dir, "log.jsonl"),
                        show=show)
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
                            "no checkpoint had been saved yet (one is written every save_interval_s)")
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
            progress.advance()
            if it % cfg.log_interval == 0 or it == iters:
                elapsed = time.time() - t0
                metrics = {"loss": lm_loss.item(), **({"aux": aux.item()} if atm else {})}
                progress.log(it, {desc: metrics}, lr=lr, tok_s=tokens / elapsed, elapsed_s=elapsed)
            if time.time() - last_save > cfg.save_interval_s:
                save(done=False)
                last_save = time.time()
            if on_step is not None:
                on_step(it)
    except KeyboardInterrupt:
        save(done=False)
        progress.close()
        raise
    progress.close()
    save(done=True)
    return student, perception


# Settings that make a different model: a finished checkpoint with other values is not the run asked for.
SHAPE_KEYS = ("init_from", "tokenizer", "n_layer", "n_head", "n_embd", "block_size", "bias", "n_prefix",
              "perc_layers", "perc_heads", "perc_input", "routing", "soft_prompt")


def load_finished(cfg: TrainConfig, rt: Runtime, tok, ckpt_path: str):
    """(student, perception) from a finished run's checkpoint, or None if there is none to reuse."""
    if not (cfg.resume and os.path.exists(ckpt_path)):
        return None
    ck = load_checkpoint(ckpt_path, map_location=rt.device)
    if not ck.get("done"):
        return None
    saved = ck.get("config", {})
    changed = [k for k in SHAPE_KEYS if k in saved and saved[k] != getattr(cfg, k)]
    if changed:  # reusing it would silently evaluate another model than the one asked for
        raise CheckpointError(f"{ckpt_path} is a finished run with other settings ("
                              + ", ".join(f"{k}={saved[k]!r}, now {getattr(cfg, k)!r}" for k in changed)
                              + "): use another --out_dir, or drop --resume to train again")
    learner = learner_from_checkpoint(ck, saved_config(ck), ckpt_path).to(rt.device)  # the model that was saved
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
# Jobs. A job trains one student and puts it to work: a fold student answers its held-out questions (evidence for
# the k-fold labels), a main student answers the test set. The jobs that do not depend on each other (all fold
# students and the baselines) may run side by side in worker processes (atm_min/parallel.py), so a job takes
# only picklable arguments and rebuilds its runtime and tokenizer; with workers=1 it runs right here.

@dataclass
class Job:
    name: str                    # "pre", "post", "answer", "atm" or "fold 2/3 post"
    fit: list[int]               # indices of the training examples it learns from
    modes: list[str]             # the target format of each of them ("pre", "post" or "answer")
    ckpt: str                    # its checkpoint (resume; the main students keep theirs)
    seed: int                    # initialisation and data order
    iters: int = 0               # optimiser steps; 0 = cfg.max_iters
    held_out: list[int] | None = None  # fold students: indices of the training questions they label
    cache: str = ""              # fold students: where their evidence is kept (a resumed run reuses it)
    atm: bool = False            # train the perception module too

    @property
    def mode(self) -> str:
        return self.modes[0] if self.modes else "pre"


def run_job(cfg: TrainConfig, job: Job, train, test, rt: Runtime | None = None, tok=None, show: bool = True):
    """Train job's student and use it. Returns the fold evidence {held_out, correct, confidence} or a main
    student's evaluation {summary, records, ...}; None on DDP ranks other than 0."""
    rt = rt or setup(cfg)  # in a worker process: this process's own runtime (cfg.num_threads set by the parent)
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)

    student, perception = trained(cfg, rt, tok, [train[i] for i in job.fit], job.modes, job.ckpt, atm=job.atm,
                                  iters=job.iters or None, seed=job.seed, desc=job.name, show=show)
    out = None
    if rt.master and job.held_out is not None:
        held = [train[i] for i in job.held_out]
        recs, _ = timed_answers(student, tok, held, rt.device, cfg.eval_batch_size, cfg.max_new_tokens, ctx=rt.ctx)
        conf = (answer_first_confidence(student, tok, held, rt.device, cfg.eval_batch_size, ctx=rt.ctx)
                if job.mode == "post" else None)
        out = {"held_out": job.held_out, "correct": [r["correct"] for r in recs], "confidence": conf}
        write_json(job.cache, out)
        os.remove(job.ckpt)  # the evidence is what we keep; fold students can be large
    elif rt.master:
        out = evaluate(cfg, rt, tok, student, perception, test)
        if job.name == "post" and cfg.mechanism == "atm":  # its p(gold answer): the test-set oracle label
            out["confidence"] = answer_first_confidence(student, tok, test, rt.device, cfg.eval_batch_size,
                                                        ctx=rt.ctx)
        if job.atm:
            p_post = post_probabilities(student, perception, tok, [train[i] for i in job.fit], rt.device)
            out["train_p_post"] = p_post
    if rt.world > 1:
        dist.barrier()
        if job.held_out is not None:
            with open(job.cache) as f:
                out = json.load(f)
    return out


def write_json(path: str, obj, indent=None):
    write_text_atomic(path, json.dumps(obj, indent=indent))  # a crash leaves the old file or the new one


def read_cached(cfg: TrainConfig, job: Job):
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
    if job.mode == "post" and not isinstance(cached.get("confidence"), list):
        raise DataError(f"{path} has no answer-first confidences (an older version wrote it); delete it to "
                        f"recompute it")
    if held_out != job.held_out or len(correct) != len(held_out):
        raise DataError(f"{path} holds the evidence of another split (other data, seed, folds or max_train); "
                        f"use the same settings, or delete it to recompute it")
    return cached


# ----------------------------------------------------------------------------------------------------------------
# Adaptive thinking, step 1: k-fold labels

def fold_jobs(cfg: TrainConfig, train) -> list[Job]:
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


def kfold_labels(cfg: TrainConfig, train, evidence: dict) -> tuple[list[str], dict]:
    """Label every training question "pre" or "post" from the fold students' evidence (job name -> result).
    Returns (labels, counts): counts per group of who was right (atm_min/labels.py evidence_counts)."""
    n = len(train)
    ok = {"pre": [None] * n, "post": [None] * n}
    conf = [None] * n
    for name, ev in evidence.items():
        mode = name.split()[-1]
        for j, i in enumerate(ev["held_out"]):
            ok[mode][i] = ev["correct"][j]
            if mode == "post":
                conf[i] = ev["confidence"][j]
    labels = [label(ok["pre"][i], ok["post"][i], cfg.label_rule, cfg.label_default, conf[i], cfg.post_confidence)
              for i in range(n)]
    counts = evidence_counts([ex.group for ex in train], ok["pre"], ok["post"], labels)
    if cfg.label_source == "random":  # the ablation: the same post rate, no evidence
        labels = shuffled_labels(labels, cfg.seed)
    write_json(os.path.join(cfg.out_dir, "labels.json"), {
        ex.id: {"label": lab, "pre_ok": ok["pre"][i], "post_ok": ok["post"][i], "post_confidence": conf[i]}
        for i, (ex, lab) in enumerate(zip(train, labels))}, indent=0)
    return labels, counts


# ----------------------------------------------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def post_probabilities(student, perception, tok, examples, device) -> list[float]:
    """The perception's probability of answering first for each example (it reads the question only)."""
    perception.eval()
    out = []
    for s in range(0, len(examples), 512):
        chunk = examples[s:s + 512]
        q_rows, f_rows = zip(*(question_inputs(tok, ex.question) for ex in chunk))
        _, logit = soft_prompt(perception, student, *perception_inputs(q_rows, f_rows, device))
        out.extend(torch.sigmoid(logit.float()).tolist())
    return out


def evaluate(cfg, rt, tok, student, perception, test) -> dict:
    """Greedy answers to the test set: {summary, records}. With routing="hard" the perception's classifier
    picks each question's mode and the student is started with that mode's marker (it never saw a soft prompt)."""
    force = "classifier" if perception is not None and cfg.routing == "hard" else None
    records, ms = timed_answers(student, tok, test, rt.device, cfg.eval_batch_size, cfg.max_new_tokens,
                                perception=perception, explain=cfg.explain, ctx=rt.ctx, force=force,
                                soft_prompt_on=cfg.routing == "soft")
    return {"summary": summarize(records, ms), "records": records}


def agreement(p_post: list[float], labels: list[str]) -> float:
    """How often p(answer first) > 0.5 agrees with a label."""
    return sum((p > 0.5) == (lab == "post") for p, lab in zip(p_post, labels)) / max(1, len(labels))


# ----------------------------------------------------------------------------------------------------------------

def main_jobs(cfg: TrainConfig, train) -> list[Job]:
    """The students compared on the test set: cfg.mechanism's, and with atm + baselines the pre, post and
    answer-only students of the same size and budget. The atm job's modes are filled in once labels exist."""
    everything = list(range(len(train)))
    mechs = ["pre", "post", "answer"] if cfg.mechanism == "atm" and cfg.baselines else []
    jobs = [Job(m, everything, [m] * len(train), os.path.join(cfg.out_dir, f"baseline_{m}.pt"), cfg.seed)
            for m in mechs]
    jobs.append(Job(cfg.mechanism, everything, [] if cfg.mechanism == "atm" else [cfg.mechanism] * len(train),
                    os.path.join(cfg.out_dir, "ckpt.pt"), cfg.seed, atm=cfg.mechanism == "atm"))
    return jobs


def run_all(cfg: TrainConfig, rt: Runtime, tok, train, test):
    """Every job of the run, as many at once as plan_workers allows. Returns (evaluations by mechanism, labels,
    label counts). The atm job waits for the fold students' evidence; everything else can start at once."""
    folds = fold_jobs(cfg, train) if cfg.mechanism == "atm" else []
    mains = main_jobs(cfg, train)
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
        fold_dir = os.path.join(cfg.out_dir, "folds")
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

        def submit(job):
            if in_worker:
                runner.submit(job.name, run_job, job_cfg, job, train, test, None, None, False)
            else:
                runner.submit(job.name, run_job, cfg, job, train, test, rt, tok)

        # Jobs are handed to the pool only as workers come free, so the atm job, which waits for the labels,
        # can go to the front of the queue: it is the longest job, and starting it last would leave one worker
        # idle at the end while it trains alone. With workers=1 submit() runs a job at once, in this order.
        queued = list(todo)
        atm_job = next((j for j in mains if j.atm), None)
        while True:
            if atm_job is not None and labels is None and len(evidence) == len(folds):
                labels, counts = kfold_labels(cfg, train, evidence)
                atm_job.modes = labels
                if rt.master:
                    report_labels(labels, counts)
                queued.insert(0, atm_job)
            while queued and runner.pending < workers:
                submit(queued.pop(0))
            finished = runner.next_finished()
            if finished is None:
                break
            name, out = finished
            if name.startswith("fold"):
                evidence[name] = out
                if rt.master:
                    right = sum(out["correct"])
                    print(f"{name}: right on {right}/{len(out['correct'])} held-out questions "
                          f"({time.time() - started:.0f} s)")
            else:
                results[name] = out
                if rt.master:
                    print(f"{name}: accuracy {out['summary']['accuracy']:.3f} on the test set "
                          f"({time.time() - started:.0f} s)")
    return results, labels, counts


def report_labels(labels, counts):
    a = counts["ALL"]
    print(f"k-fold labels: {labels.count('post')} post, {labels.count('pre')} pre of {len(labels)}; evidence: "
          f"pre only right {a['pre_only']}, post only {a['post_only']}, both {a['both']}, neither {a['neither']} "
          f"({100 * a['neither'] / max(1, a['n']):.1f}% labelled by label_default)")


def main(argv):
    t_start = time.time()
    cfg = parse_args(argv)
    rt = setup(cfg)
    tok = get_tokenizer(cfg.tokenizer, cfg.tokenizer_path or None)
    os.makedirs(cfg.out_dir, exist_ok=True)
    train, test, data_dir = load_data(cfg, tok)
    if rt.master:
        print(f"data: {len(train)} train / {len(test)} test examples from {data_dir}; device {rt.device}")

    evals, labels, counts = run_all(cfg, rt, tok, train, test)
    if not rt.master:
        return
    results = {}
    order = ["pre", "post", "answer", "atm"]  # a fixed column order, whichever student finished first
    for mech, ev in sorted(evals.items(), key=lambda kv: order.index(kv[0])):
        results[mech] = ev["summary"]
        write_text_atomic(os.path.join(cfg.out_dir, f"predictions_{mech}.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in ev["records"]))
    if "atm" in evals:
        atm = results["atm"]
        atm["label_agreement"] = agreement(evals["atm"]["train_p_post"], labels)
        atm["label_counts"] = counts
        if "pre" in evals and "post" in evals:
            pre, post = evals["pre"]["records"], evals["post"]["records"]
            test_labels = [label(a["correct"], b["correct"], cfg.label_rule, cfg.label_default, c,
                                 cfg.post_confidence) for a, b, c in zip(pre, post, evals["post"]["confidence"])]
            atm["test_oracle_agreement"] = agreement([r["p_post"] for r in evals["atm"]["records"]], test_labels)
            results["oracle"] = oracle_summary(pre, post)
            results["random"] = random_routing_summary(pre, post, atm["post_fraction"])
    table = dict(results)
    results["run"] = {"command": " ".join(["python train.py", *argv]), "wall_time_s": time.time() - t_start}
    write_json(os.path.join(cfg.out_dir, "results.json"), results, indent=2)
    print(format_table(table))
    if "atm" in results:
        atm = results["atm"]
        print(format_label_counts(atm["label_counts"]))
        print(f"atm: the perception agrees with the k-fold labels on {100 * atm['label_agreement']:.1f}% of training "
              f"questions" + (f" and with the test-set oracle label on {100 * atm['test_oracle_agreement']:.1f}% of "
                              f"test questions" if "test_oracle_agreement" in atm else ""))
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

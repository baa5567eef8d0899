"""The GPU proof: on one CUDA GPU, in at most about 8 minutes, everything the CPU cannot show, ending in one table.

    bash tools/gpu_check.sh                # on a machine with a CUDA GPU
    bash tools/gpu_check.sh --dry_run      # no GPU needed: every step at toy sizes on the CPU (checks this script)

Steps, in the order of what matters most if time runs short (each in its own process, with its own time limit):
  cuda tests   the tests that need a GPU (tests/test_cuda.py: CUDA RNG state, fused AdamW, bf16 and float16 +
               GradScaler training with an exact resume), then the precision, resume and training tests
  resume       train.py on cuda (bf16) killed with SIGKILL mid-run, then --resume: the final weights and the
               last logged loss against an uninterrupted run (and against a second uninterrupted run: the GPU's
               own run-to-run noise, if any)
  torchrun     torchrun --nproc_per_node=1: a process group on NCCL, DDP around the Learner, the same weights as
               without DDP
  gpt2-small   GPT-2 124M and 774M shapes from random weights, bf16 autocast + torch.compile + fused AdamW:
  gpt2-large   training tokens/s, MFU against the GPU's peak, peak memory; KV-cache generation tokens/s; and
               what reading the loss back to the host on every step (the loop's finite check) costs
  default      `python train.py --mechanism atm` on cuda with bf16: its table and wall time
  llama        gpt2-small's measurements for the Llama-family student (atm_min/students/llama.py) at
               Qwen2.5-0.5B's shapes (24 layers, 896 wide, 14 query / 2 key-value heads, vocab 151,936)
  suite        the whole fast test suite with CUDA visible, in the time left
Without a CUDA GPU (and without --dry_run) it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Small model and run for the resume and default checks on the CPU (--dry_run): seconds, not minutes.
TOY = ["--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2", "--batch_size=8",
       "--max_train=48", "--max_test=8", "--folds=2", "--block_size=192", "--max_new_tokens=16", "--num_threads=1"]
PERF = {  # name -> (n_layer, n_head, n_embd, batch, seq_len); vocab 50257, block 1024: GPT-2's shapes
    "gpt2-small": (12, 12, 768, 16, 1024),
    "gpt2-large": (36, 20, 1280, 8, 1024),
    "toy": (2, 2, 64, 4, 64),  # --dry_run
}
# The Llama-family step: name -> (LlamaConfig fields, batch, seq_len); random weights, the checkpoint's shapes.
LLAMA_PERF = {
    "llama": (dict(n_layer=24, n_head=14, n_kv_head=2, n_embd=896, intermediate_size=4864, vocab_size=151936,
                   rope_theta=1e6, block_size=1024), 8, 1024),  # Qwen2.5-0.5B
    "toy-llama": (dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, intermediate_size=128, vocab_size=257,
                       block_size=256), 4, 64),  # --dry_run
}


def result(**kw):
    print("RESULT " + json.dumps(kw), flush=True)


def sh(cmd, timeout, env=None, log=None):
    """Run cmd (a list) from the repository root; (exit status or 'timeout', stdout+stderr)."""
    env = {**os.environ, **(env or {})}
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out, status = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = "timeout"
    if log:
        with open(log, "w") as f:
            f.write(out)
    return status, out


def parse_result(out: str) -> dict:
    rows = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    return rows[-1] if rows else {}


# ---------------------------------------------------------------------------------------------------- steps
# Each returns (ok: bool | None for skipped, numbers: str).

def step_tests(a, timeout):
    files = ["tests/test_cuda.py"] + ([] if a.dry_run else ["tests/test_precision.py", "tests/test_resume_rules.py",
                                                            "tests/test_train.py", "tests/test_values.py"])
    status, out = sh([sys.executable, "-m", "pytest", "-q", "-rs", *files], timeout, log=a.log("tests"))
    last = next((ln for ln in reversed(out.splitlines()) if re.search(r"passed|failed|skipped|error", ln)), "")
    return status == 0, last.strip("= ")


def step_suite(a, timeout):
    if a.dry_run:
        return None, "skipped in --dry_run (the suite is run without a GPU anyway)"
    status, out = sh([sys.executable, "-m", "pytest", "-q"], timeout, log=a.log("suite"))
    last = next((ln for ln in reversed(out.splitlines()) if re.search(r"passed|failed", ln)), "")
    return (None if status == "timeout" else status == 0), (f"cut at {timeout:.0f} s" if status == "timeout"
                                                            else last.strip("= "))


def train_args(a, out_dir, *extra):
    dev = ["--device=cpu", "--dtype=bfloat16"] if a.dry_run else ["--device=cuda", "--dtype=bfloat16"]
    return [sys.executable, "train.py", f"--out_dir={out_dir}", *dev, *extra]


def step_default(a, timeout):
    out_dir = os.path.join(a.out, "default")
    extra = [*TOY, "--max_iters=20", "--fold_iters=10"] if a.dry_run else []
    t0 = time.time()
    status, out = sh(train_args(a, out_dir, "--mechanism=atm", *extra), timeout, log=a.log("default"))
    wall = time.time() - t0
    if status != 0:
        return False, f"exit {status}"
    lines = out.splitlines()
    first = next((i - 1 for i, ln in enumerate(lines) if "acc  post%" in ln), 0)
    print("\n".join(lines[max(0, first):]))  # train.py's table, label counts and wall time
    res = json.load(open(os.path.join(out_dir, "results.json")))
    accs = ", ".join(f"{m} {res[m]['accuracy']:.3f}" for m in ("pre", "post", "answer", "atm") if m in res)
    return True, f"wall {wall:.0f} s; accuracy {accs}"


def _final_state(path):
    from atm_min.machinery.checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    return ck["iter"], {k: v.float() for k, v in ck["learner"].items()}


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _last_loss(out_dir, step):
    rows = [json.loads(line) for line in open(os.path.join(out_dir, "log.jsonl"))]
    return next(r["loss"] for r in reversed(rows) if r["step"] == step)


def step_resume(a, timeout):
    n, kill_at = (30, 10) if a.dry_run else (300, 100)
    common = [*TOY, "--mechanism=pre", f"--max_iters={n}", "--log_interval=1", "--save_interval_s=0",
              "--max_test=4", "--max_new_tokens=4", "--dropout=0.1", "--seed=3"]
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    deadline = time.time() + timeout
    dirs = {k: os.path.join(a.out, f"resume_{k}") for k in ("straight", "again", "killed")}
    for k in ("straight", "again"):
        status, _ = sh(train_args(a, dirs[k], *common), max(1, deadline - time.time()), env, a.log(f"resume_{k}"))
        if status != 0:
            return False, f"uninterrupted run {k}: exit {status}"
    # the killed run: SIGKILL once the log shows step kill_at (the last checkpoint is at most a step behind)
    log_path = os.path.join(dirs["killed"], "log.jsonl")
    with open(a.log("resume_killed_first"), "w") as f:
        p = subprocess.Popen(train_args(a, dirs["killed"], *common), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                             env={**os.environ, **env})
        killed_at = None
        while p.poll() is None and time.time() < deadline:
            if os.path.exists(log_path):
                steps = [json.loads(line)["step"] for line in open(log_path) if line.strip()]
                if steps and steps[-1] >= kill_at:
                    p.send_signal(signal.SIGKILL)
                    killed_at = steps[-1]
                    break
            time.sleep(0.05)
        p.wait()
    if killed_at is None:
        return False, "the run ended (or time ran out) before it could be killed"
    status, out = sh(train_args(a, dirs["killed"], *common, "--resume"), max(1, deadline - time.time()), env,
                     a.log("resume_killed_then"))
    if status != 0 or "resumed from" not in out:
        return False, f"--resume: exit {status}"
    resumed_from = re.search(r"resumed from \S+ at step (\d+)", out).group(1)
    (i1, s1), (i2, s2), (i3, s3) = (_final_state(os.path.join(dirs[k], "ckpt.pt")) for k in ("straight", "again",
                                                                                            "killed"))
    noise, diff = _max_diff(s1, s2), _max_diff(s1, s3)
    losses = [_last_loss(dirs[k], n) for k in ("straight", "killed")]
    ok = i1 == i3 == n and diff <= noise and (noise > 0 or losses[0] == losses[1])
    return ok, (f"killed at step {killed_at}, resumed from {resumed_from}; final loss {losses[0]} vs {losses[1]}; "
                f"max weight diff {diff:.3g} (two uninterrupted runs: {noise:.3g})")


def step_torchrun(a, timeout):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           "tools/gpu_check.py", "--ddp_worker"] + (["--dry_run"] if a.dry_run else [])
    status, out = sh(cmd, timeout, log=a.log("torchrun"))
    r = parse_result(out)
    if status != 0 or not r:
        return False, f"exit {status}"
    return r["same"], f"backend {r['backend']}, world {r['world']}; DDP vs no DDP max weight diff {r['diff']:.3g}"


def step_perf(a, name, timeout):
    toy = "toy-llama" if name == "llama" else "toy"
    cmd = [sys.executable, "tools/gpu_check.py", f"--perf_worker={toy if a.dry_run else name}"] + \
          (["--dry_run"] if a.dry_run else [])
    status, out = sh(cmd, timeout, log=a.log(name))
    r = parse_result(out)
    if status != 0 or not r:
        return False, f"exit {status}" + (" (time limit)" if status == "timeout" else "")
    mfu = f"MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else "MFU n/a (unknown peak)"
    return True, (f"{r['name']} shapes: train {r['tok_s']:,.0f} tok/s, {mfu}, peak {r['peak_gib']:.1f} GiB, compile {r['compile_s']:.0f} s; "
                  f"with a host read per step {r['tok_s_sync']:,.0f} tok/s; generate (KV cache) "
                  f"{r['gen_tok_s']:,.0f} tok/s at batch 1, {r['gen_tok_s_b16']:,.0f} at batch 16")


# ---------------------------------------------------------------------------------------------------- workers

def perf_worker(name, dry_run):
    """Training and generation speed of one GPT-2 (PERF) or Llama (LLAMA_PERF) shape from random weights; prints
    RESULT {...}."""
    import torch
    from atm_min import engine
    from atm_min.machinery.gpt2 import PEAK_FLOPS
    from atm_min.model import GPT, GPTConfig
    from atm_min.students.llama import Llama, LlamaConfig
    from atm_min.training import make_optimizer
    if name in LLAMA_PERF:
        fields, B, T = LLAMA_PERF[name]
    else:
        L, H, C, B, T = PERF[name]
    dev = "cpu" if dry_run else "cuda"
    vocab = fields["vocab_size"] if name in LLAMA_PERF else 257 if dry_run else 50257
    torch.manual_seed(0)
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    model = Llama(LlamaConfig(**fields)).to(dev) if name in LLAMA_PERF else \
        GPT(GPTConfig(block_size=max(T, 256) if dry_run else 1024, vocab_size=vocab, n_layer=L, n_head=H,
                      n_embd=C)).to(dev)
    from types import SimpleNamespace
    opt = make_optimizer(SimpleNamespace(lr=3e-4, weight_decay=0.1, beta1=0.9, beta2=0.95), model, dev)
    fwd = model if dry_run else torch.compile(model)  # compile on CPU needs a C compiler and minutes: skipped
    ctx = torch.autocast(dev, dtype=torch.bfloat16)
    x = torch.randint(0, vocab, (B, T), device=dev)
    y = torch.randint(0, vocab, (B, T), device=dev)

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def steps(n, host_read):
        for _ in range(n):
            with ctx:
                _, loss = fwd(x, y)
            if host_read and not torch.isfinite(loss):  # what the training loop does on every micro-step
                raise FloatingPointError
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

    t0 = time.time()
    steps(1 if dry_run else 3, False)  # compiles
    sync()
    compile_s = time.time() - t0
    n = 2 if dry_run else 20
    rates = {}
    for host_read in (False, True, False, True):  # interleaved, the better of two for each
        sync()
        t0 = time.time()
        steps(n, host_read)
        sync()
        rates[host_read] = max(rates.get(host_read, 0), B * T * n / (time.time() - t0))
    gpu = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    # the GPU's bf16 peak: an entry whose words (less "bf16") all appear in the device name, else its chip alone
    peak = next((v for k, v in PEAK_FLOPS.items() if all(w in gpu for w in k.split()[:-1])),
                next((v for k, v in PEAK_FLOPS.items() if k.split()[0] in gpu), None))
    mfu = model.estimate_mfu(rates[False], peak, seq_len=T) if peak else None
    peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if dev == "cuda" else 0.0
    gen = {}
    model.eval()
    new = 8 if dry_run else 128
    for gb in (1, 16):
        idx = torch.randint(0, vocab, (gb, 16), device=dev)
        with ctx:
            engine.generate(model, idx, engine.GenSettings(2))  # warm up
            sync()
            t0 = time.time()
            outs = engine.generate(model, idx, engine.GenSettings(new))
            sync()
        gen[gb] = sum(len(o) for o in outs) / (time.time() - t0)
    result(name=name, gpu=gpu, tok_s=rates[False], tok_s_sync=rates[True], mfu=mfu, peak_gib=peak_gib,
           compile_s=compile_s, gen_tok_s=gen[1], gen_tok_s_b16=gen[16])


def ddp_worker(dry_run):
    """Under torchrun: a process group (NCCL on a GPU), DDP around a tiny Learner trained by the teaching loop,
    against the same training without DDP; prints RESULT {...} on rank 0."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from atm_min.batches import encode_items
    from atm_min.formats import Example
    from atm_min.learner import Learner
    from atm_min.machinery.runtime import Runtime
    from atm_min.model import GPT, GPTConfig
    from atm_min.tokenizer import byte_tokenizer
    from atm_min.training import Steps, make_optimizer, train
    dev = "cpu" if dry_run else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    backend = "gloo" if dry_run else "nccl"
    if dev.startswith("cuda"):
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend)
    tok = byte_tokenizer()
    exs = [Example(f"e{i}", f"Is {i} odd?", f"It ends in {i}.", "yes" if i % 2 else "no", "yesno") for i in range(16)]
    items = encode_items(tok, exs, ["pre", "post"] * 8)
    cfg = SimpleNamespace(batch_size=8, grad_accum=1, length_batches=False, aux_weight=1.0, grad_clip=1.0, lr=1e-3,
                          min_lr=1e-4, warmup_iters=2, weight_decay=0.1, beta1=0.9, beta2=0.99)
    states = []
    for wrap in (False, True):
        torch.manual_seed(0)
        learner = Learner(GPT(GPTConfig(block_size=128, vocab_size=tok.vocab_size, n_layer=1, n_head=2,
                                        n_embd=32)), None).to(dev)
        model = nn.parallel.DistributedDataParallel(learner, device_ids=None if dry_run else [dev]) if wrap \
            else learner
        rt = Runtime(dev, nullcontext(), None, dist.get_rank(), dist.get_world_size())
        train(model, make_optimizer(cfg, learner, dev), items, cfg, rt, Steps(5, seed=0))
        states.append({k: v.detach().float().cpu() for k, v in learner.state_dict().items()})
    t = torch.ones(1, device=dev)
    dist.all_reduce(t)
    diff = max((states[0][k] - states[1][k]).abs().max().item() for k in states[0])
    if dist.get_rank() == 0:
        result(backend=dist.get_backend(), world=dist.get_world_size(), diff=diff,
               same=diff == 0.0 and t.item() == dist.get_world_size())
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry_run", action="store_true", help="no GPU: run every step at toy sizes on the CPU")
    p.add_argument("--budget_s", type=float, default=480, help="total time; steps that cannot start are skipped")
    p.add_argument("--out", default=os.path.join(ROOT, "out_gpu_check"), help="run folders and logs")
    p.add_argument("--perf_worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--ddp_worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.perf_worker:
        return perf_worker(a.perf_worker, a.dry_run)
    if a.ddp_worker:
        return ddp_worker(a.dry_run)

    import torch
    if not a.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU: skipped the GPU proof (CUDA tests, exact resume of a killed CUDA run, torchrun on NCCL, "
              "GPT-2 small/large and a Llama-family student bf16 + compile speed, the default suite on cuda); --dry_run runs its steps on the CPU")
        return 0
    os.makedirs(os.path.join(a.out, "logs"), exist_ok=True)
    a.log = lambda name: os.path.join(a.out, "logs", f"{name}.txt")
    gpu = "CPU (--dry_run)" if a.dry_run else torch.cuda.get_device_name()
    print(f"GPU proof on {gpu}, torch {torch.__version__}, budget {a.budget_s:.0f} s; logs in {a.out}/logs",
          flush=True)
    # (name, step, its time limit in seconds): the suite gets whatever is left
    plan = [("cuda tests", step_tests, 90), ("resume", step_resume, 90), ("torchrun", step_torchrun, 45),
            ("gpt2-small", lambda a, t: step_perf(a, "gpt2-small", t), 75),
            ("gpt2-large", lambda a, t: step_perf(a, "gpt2-large", t), 120),
            ("default", step_default, 150), ("llama", lambda a, t: step_perf(a, "llama", t), 100), ("suite", step_suite, None)]
    start, rows = time.time(), []
    for name, fn, limit in plan:
        left = a.budget_s - (time.time() - start)
        t0 = time.time()
        if left < 15:
            ok, numbers = None, "skipped: out of time"
        else:
            print(f"\n== {name}", flush=True)
            try:
                ok, numbers = fn(a, min(limit or left, left))
            except Exception as e:  # a broken step is a failed row, not a lost table
                ok, numbers = False, f"{type(e).__name__}: {e}"[:200]
            print(f"{name}: {'ok' if ok else 'skipped' if ok is None else 'FAILED'} -- {numbers}", flush=True)
        rows.append((name, ok, time.time() - t0, numbers))
    print(f"\nGPU proof summary ({gpu}, torch {torch.__version__}; {time.time() - start:.0f} s in all)")
    print(f"| {'step':11s} | {'result':7s} | {'s':>4s} | numbers |")
    print(f"|{'-' * 13}|{'-' * 9}|{'-' * 6}|---|")
    for name, ok, s, numbers in rows:
        print(f"| {name:11s} | {'ok' if ok else 'skipped' if ok is None else 'FAILED':7s} | {s:4.0f} | {numbers} |")
    return 0 if all(ok is not False for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

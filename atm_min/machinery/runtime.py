"""Machinery: where a run computes -- the one device picker, precision (autocast, GradScaler) and DDP setup."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


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


def pick_device(name: str = "auto") -> str:
    """The device a script runs on: "auto" is CUDA, then Apple's MPS, then the CPU; any other name is checked
    (check_device). train.py, sample.py, plot.py and bench.py all pick theirs here."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    check_device(name)
    return name


def setup(cfg) -> Runtime:
    """Threads, device, DDP process group (under torchrun), precision and the seed, for TrainConfig cfg."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    device = pick_device(cfg.device)
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

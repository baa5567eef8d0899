"""Machinery: checkpoints that are safe to write (atomically) and safe to read (tensors and plain data only),
and the Learner's state loaded from one (machinery/choose.py learner_from_checkpoint rebuilds the Learner).

A checkpoint is one dict of tensors, numbers, strings, lists, tuples and dicts: model/optimiser state dicts,
the config as a dict (config.config_to_dict), counters, and the RNG states from `rng_state()`. Keeping it to
those types is what lets `load_checkpoint` use `torch.load(weights_only=True)`, which refuses any pickle that
would import and call arbitrary code.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import random
import re
import uuid
import warnings
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import torch

from ..learner import Learner
from .config import TrainConfig
from .errors import CheckpointError  # the project's one checkpoint error (gpt2.py's GPT-2 loader raises it too)


# What a checkpoint may hold: the types torch.load(weights_only=True) rebuilds without importing anything else.
_PLAIN = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def _check_plain(obj, where: str):
    """Fail at save time, naming the offending entry, rather than at load time with a vague refusal."""
    if isinstance(obj, torch.Tensor) or isinstance(obj, _PLAIN):
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            _check_plain(k, f"{where} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise CheckpointError(
        f"{where} has type {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds only tensors and "
        f"plain dicts/lists/tuples/str/int/float/bool/None (e.g. save a config with config_to_dict, numpy "
        f"arrays as tensors), so that it can be loaded with weights_only=True")


def save_checkpoint(path: str, state: dict) -> None:
    """Write `state` to `path` atomically: a crash mid-write leaves the previous checkpoint (or none), never a
    half-written one. We write a temp file in the same directory (so the final rename stays on one filesystem),
    fsync it, then os.replace it over `path`, which is atomic on POSIX and Windows."""
    if type(state) not in (dict, OrderedDict):
        raise CheckpointError(f"a checkpoint is a dict, got {type(state).__name__}")
    _check_plain(state, "state")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # "x": never clobber a file we did not create
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the checkpoint
        os.replace(tmp, path)
    except BaseException:  # includes KeyboardInterrupt: do not leave the temp file behind
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX); best effort
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def _imported_name(path: str, error: str) -> str | None:
    """If weights_only refused `path` because its pickle imports a Python object (unsafe), name that object;
    None if the bytes are simply garbage. torch names the global for zip checkpoints; for a bare pickle it may
    stop at an unsupported opcode first, so we scan the opcodes ourselves (pickletools reads, never runs them)."""
    m = re.search(r"GLOBAL ([\w.]+)", error)  # "... unsupported GLOBAL posix.system whose module ..."
    if m:
        return m.group(1)
    strings = []  # STACK_GLOBAL takes module and name from the two strings pushed before it
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if isinstance(arg, str):
                    strings = (strings + [arg])[-2:]
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL":
                    return ".".join(strings) or "a Python object"
                if op.name in ("REDUCE", "OBJ"):
                    return "a Python object"
    except Exception:  # not a pickle stream at all
        pass
    return None


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Load a checkpoint written by save_checkpoint, with weights_only=True; every failure is a CheckpointError."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: train first with `python train.py ...` "
                              f"(it writes ckpt files into --out_dir)")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of hand-made files; noise here
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        imported = _imported_name(path, str(e)) if "weights only load failed" in str(e).lower() else None
        if imported is None:  # torch's message is long and suggests weights_only=False; keep what went wrong
            reason = next((ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln), str(e)[:200])
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated (UnpicklingError: {reason}); "
                                  f"delete it and train again (or resume from an older copy)") from e
        raise CheckpointError(
            f"checkpoint {path} contains non-tensor Python objects (it imports {imported}) and was refused for "
            f"safety: loading it could run arbitrary code. A checkpoint written by save_checkpoint holds only "
            f"tensors and plain data; only load other files with torch.load(weights_only=False) if you trust "
            f"where they came from.") from e
    except OSError as e:  # permissions, I/O errors
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    except Exception as e:  # truncated zip (RuntimeError), empty file (EOFError), garbage bytes (KeyError, ...)
        first = re.split(r"(?<=\.)\s", str(e).strip(), maxsplit=1)[0][:200]  # torch's advice that follows: noise
        detail = f"{type(e).__name__}: {first}".strip().rstrip(":")
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({detail}); delete it and "
                              f"train again (or resume from an older copy)") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


# ----------------------------------------------------------------------------------------------------------
# RNG state, so that a resumed run draws the same random numbers the uninterrupted one would have.
# Everything is stored as tensors, ints, floats and tuples/lists so it survives weights_only=True.

def rng_state() -> dict:
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()  # one ByteTensor per visible GPU
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() captured. A device RNG saved on a machine that lacks that device is skipped."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))  # setstate wants tuples
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())  # map_location may have moved it; the CPU RNG needs a CPU tensor
    if "cuda" in state and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
    if "mps" in state and hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"].cpu())


# ----------------------------------------------------------------------------------------------------------
# The Learner in a checkpoint (runs.py StudentRun.save: learner, optimizer, iter, done, config, model_args,
# tokenizer, atm, rng)

def load_learner_state(learner: Learner, state: dict, path: str) -> None:
    """learner.load_state_dict(state). A checkpoint of another shape (other sizes, tokenizer or mechanism) is a
    CheckpointError naming the file and the first mismatch, not torch's page-long list of them."""
    try:
        learner.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        raise mismatch(path, e) from e


def saved_config(ck: dict) -> SimpleNamespace:
    """The settings checkpoint dict ck was trained with: its saved config over TrainConfig's defaults. A setting
    newer than the checkpoint gets its default, and every new setting's default is the behaviour from before it
    existed (e.g. soft_prompt="free"), so an older checkpoint is rebuilt as the model it was."""
    saved = ck.get("config")
    return SimpleNamespace(**{**TrainConfig().__dict__, **(saved if isinstance(saved, dict) else {})})


def mismatch(path: str, e: Exception) -> CheckpointError:
    # torch's message starts "Error(s) in loading state_dict for Learner:" and then lists every tensor.
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Error(s) in loading")]
    detail = lines[0] if lines else type(e).__name__
    if len(detail) > 200:  # "Missing key(s) in state_dict: ..." lists every key
        detail = detail[:200].rsplit(" ", 1)[0] + " ..."
    return CheckpointError(f"{path} does not match the model it is loaded into ({detail}): it was saved with "
                           f"other settings (sizes, tokenizer, mechanism) or by other code. Use the settings it "
                           f"was trained with, or train afresh in another --out_dir")

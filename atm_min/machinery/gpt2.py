"""Machinery: GPT-2 from outside -- its published weights (Hugging Face layout) and its BPE tokenizer.

`from_pretrained(name_or_dir)` loads any GPT-2 checkpoint into atm_min/model.py's GPT (our parameter names are
GPT-2's, so this is renaming, checking and transposing); `gpt2_tokenizer(path)` builds GPT-2's BPE, downloading
it or reading a local ranks file when offline (machinery/hf.py get_tokenizer picks a tokenizer by name). Needs only torch and tiktoken at run time: no
transformers. Every failure is a CheckpointError / TokenizerError that says what to do.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import fields, replace
from pathlib import Path

import tiktoken
import torch
from tiktoken.load import load_tiktoken_bpe

from ..model import GPT, GPTConfig
from ..tokenizer import EOT, GPT2_PAT, Tokenizer
from .errors import CheckpointError, TokenizerError

# Environment variable that points at a `gpt2.tiktoken` ranks file when tiktoken cannot download its own.
GPT2_PATH_ENV = "ATM_GPT2_TIKTOKEN"


def gpt2_tokenizer(path: str | None = None) -> Tokenizer:
    """GPT-2 BPE (50257 ids). Order: tiktoken's own download/cache, then a ranks file given by `path` or the
    ATM_GPT2_TIKTOKEN environment variable, then a clear error."""
    try:
        return Tokenizer("gpt2", tiktoken.get_encoding("gpt2"))
    except Exception as e:  # offline: tiktoken tries to download vocab.bpe on first use
        first_error = e
    path = path or os.environ.get(GPT2_PATH_ENV)
    if path:
        if not os.path.isfile(path):
            raise TokenizerError(f"GPT-2 tokenizer file not found: {path} (--tokenizer_path or {GPT2_PATH_ENV})")
        try:
            ranks = load_tiktoken_bpe(path)
            enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                                    special_tokens={EOT: 50256}, explicit_n_vocab=50257)
        except Exception as e:  # not base64 + rank lines, or not GPT-2's 50256 ranks
            raise TokenizerError(f"{path} is not GPT-2's gpt2.tiktoken ranks file ({type(e).__name__}: "
                                 f"{str(e)[:200]})") from e
        return Tokenizer("gpt2", enc)
    raise TokenizerError(
        "Could not load the GPT-2 tokenizer: tiktoken could not download it "
        f"({type(first_error).__name__}). Offline, pass a local `gpt2.tiktoken` ranks file with "
        f"--tokenizer_path=PATH or set {GPT2_PATH_ENV}=PATH (the file is in the openai-whisper package, "
        "whisper/assets/gpt2.tiktoken), or use --tokenizer=bytes for a student trained from scratch.")


# ----------------------------------------------------------------------------------------------------------
# GPT-2 weights

def from_pretrained(name_or_dir, **overrides) -> GPT:
    """Load a GPT-2 checkpoint in Hugging Face layout: a local directory (looked for first) with config.json
    and model.safetensors or pytorch_model.bin (sharded *.index.json works too), or one of HF_GPT2_NAMES,
    which needs huggingface_hub and internet. overrides: dropout, attn_impl, and block_size no larger
    than the checkpoint's (the position table is cropped). HF's *_pdrop values are not used: dropout
    defaults to 0.0 here; pass dropout=... to fine-tune with it. The parameters are fp32 whatever the
    file's dtype (cast with .to() after loading). Bad input raises CheckpointError."""
    path = _checkpoint_dir(name_or_dir)
    hf = _read_hf_config(path)
    config = _config_from_hf(hf, overrides)
    sd = _hf_state_dict(_read_weights(path), hf, config)
    model = GPT(config)
    own = model.state_dict()
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
    return model


HF_GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
# Datasheet peak dense FLOP/s, for GPT.estimate_mfu (model.py) (documentation only: the function takes the number).
PEAK_FLOPS = {
    "A100 bf16": 312e12,
    "H100 SXM bf16": 989e12,
    "H100 PCIe bf16": 756e12,
    "H200 bf16": 989e12,  # the H100 SXM chip with more memory
}
# HF's GPT-2 uses a Conv1D module that stores its weight as (in, out): the transpose of nn.Linear's (out, in).
HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# HF config.json keys -> ours, and GPT2Config's defaults for configs that leave one out.
_HF_KEYS = dict(n_layer=("n_layer", 12), n_head=("n_head", 12), n_embd=("n_embd", 768),
                vocab_size=("vocab_size", 50257))


def _checkpoint_dir(name_or_dir) -> Path:
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_dir)
    if name not in HF_GPT2_NAMES:
        raise CheckpointError(f"unknown model name {name!r}: choose one of {', '.join(HF_GPT2_NAMES)}, "
                              "or pass a local directory with config.json and model.safetensors")
    try:
        from huggingface_hub import snapshot_download  # optional: only for downloading by name
        # Only the files we read: the hub repo also holds TF, Flax, ONNX, ... copies of the weights.
        return Path(snapshot_download(f"openai-community/{name}",
                                      allow_patterns=["config.json", "model.safetensors*"]))
    except Exception as e:  # not installed, offline, hub error: the same advice for all of them
        raise CheckpointError(
            f"could not download {name!r} from the Hugging Face Hub ({type(e).__name__}: {e}). Download the "
            f"checkpoint on a machine with internet (e.g. `huggingface-cli download openai-community/{name} "
            f"config.json model.safetensors --local-dir {name}`), copy it here and pass that local directory."
        ) from e


def _read_hf_config(path: Path, model_types=("gpt2",), no_config_hint: str = "",
                    type_hint: str = "only GPT-2 checkpoints (model_type 'gpt2') match this model's architecture") -> dict:
    """A checkpoint directory's config.json, checked: it exists, parses, and has one of model_types (machinery/hf.py
    reads Llama-family directories through it too, with its own hints)."""
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"no config.json in {path}: not a Hugging Face checkpoint directory{no_config_hint}")
    try:
        hf = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if hf.get("model_type", "gpt2") not in model_types:
        raise CheckpointError(f"{file} has model_type {hf['model_type']!r}: {type_hint}")
    return hf


def _n_positions(hf: dict) -> int:
    return hf.get("n_positions", hf.get("n_ctx", 1024))  # old configs name it n_ctx


def _config_from_hf(hf: dict, overrides: dict) -> GPTConfig:
    # Variants of GPT-2 this model does not implement: refuse them rather than load them silently wrong.
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):  # both are GELU's tanh approximation, like our MLP
        raise CheckpointError(f"activation_function {act!r} is not supported: this model uses GPT-2's "
                              "'gelu_new' (GELU, tanh approximation)")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if not math.isclose(eps, 1e-5, rel_tol=1e-3):
        raise CheckpointError(f"layer_norm_epsilon {eps} is not supported: our LayerNorm uses 1e-5 (as GPT-2)")
    n_embd = hf.get("n_embd", 768)
    unsupported = {"n_inner": (None, 4 * n_embd), "scale_attn_weights": (True,),
                   "scale_attn_by_inverse_layer_idx": (False,), "reorder_and_upcast_attn": (False,),
                   "add_cross_attention": (False,)}
    for key, ok in unsupported.items():
        if key in hf and hf[key] not in ok:
            raise CheckpointError(f"config.json has {key}={hf[key]!r}: this GPT-2 variant is not supported")

    args = {ours: hf.get(theirs, default) for ours, (theirs, default) in _HF_KEYS.items()}
    n_positions = _n_positions(hf)
    args["block_size"] = n_positions
    allowed = ("dropout", "attn_impl", "block_size")
    for key, value in overrides.items():
        if key not in allowed:
            names = {f.name for f in fields(GPTConfig)}
            why = "is fixed by the checkpoint" if key in names else "is not a GPTConfig field"
            raise CheckpointError(f"cannot override {key!r}: it {why}; allowed overrides: {', '.join(allowed)}")
        args[key] = value
    if not 0 < args["block_size"] <= n_positions:
        raise CheckpointError(f"block_size={args['block_size']} must be between 1 and the checkpoint's "
                              f"n_positions ({n_positions}): the position table can be cropped, not grown")
    try:
        return GPTConfig(**args)
    except ValueError as e:  # e.g. n_embd not divisible by n_head, unknown attn_impl
        raise CheckpointError(f"invalid config: {e}") from e


def _hf_state_dict(raw: dict, hf: dict, config: GPTConfig) -> dict:
    """Rename, check and transpose the checkpoint's tensors into our state_dict layout."""
    sd = {}
    for k, v in raw.items():
        k = k.removeprefix("transformer.")  # GPT2LMHeadModel has the prefix, GPT2Model (and old files) not
        if k.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # HF's causal-mask buffers, not parameters
        sd[k if k == "lm_head.weight" else "transformer." + k] = v
    head = sd.pop("lm_head.weight", None)  # tied to wte in GPT-2: may be absent from the file

    # Expected shapes in the checkpoint's own layout (Conv1D weights as (in, out), wpe at full n_positions).
    with torch.device("meta"):  # shapes only: no memory, no init cost
        ours = GPT(replace(config, block_size=_n_positions(hf))).state_dict()
    expected = {k: tuple(v.shape[::-1]) if k.endswith(HF_CONV1D) else tuple(v.shape)
                for k, v in ours.items() if k != "lm_head.weight"}
    unexpected = sorted(set(sd) - set(expected))
    missing = sorted(set(expected) - set(sd))
    if unexpected:
        raise CheckpointError(f"unexpected keys in the checkpoint ({len(unexpected)}, e.g. "
                              f"{', '.join(unexpected[:4])}): not a GPT-2 checkpoint with this config.json")
    if missing:
        raise CheckpointError(f"keys missing from the checkpoint ({len(missing)}, e.g. "
                              f"{', '.join(missing[:4])}): incomplete or not a GPT-2 checkpoint")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise CheckpointError(f"{k}: the checkpoint's tensor has shape {tuple(sd[k].shape)} but config.json "
                                  f"implies {shape}")
    if head is not None and not torch.equal(head, sd["transformer.wte.weight"]):
        raise CheckpointError("lm_head.weight differs from transformer.wte.weight: this model ties them "
                              "(as GPT-2 does) and cannot load an untied output layer")

    for k in sd:
        if k.endswith(HF_CONV1D):
            sd[k] = sd[k].t()
    sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][:config.block_size]  # block_size override
    return sd


def _read_weights(path: Path) -> dict:
    """{name: tensor} from model.safetensors (preferred) or pytorch_model.bin, or their sharded versions."""
    for single, index, read in (("model.safetensors", "model.safetensors.index.json", read_safetensors),
                                ("pytorch_model.bin", "pytorch_model.bin.index.json", _read_bin)):
        if (path / single).is_file():
            return read(path / single)
        if (path / index).is_file():  # sharded: {"weight_map": {tensor name: shard file}}
            shards = sorted(set(json.loads((path / index).read_text())["weight_map"].values()))
            return {k: v for shard in shards for k, v in read(path / shard).items()}
    raise CheckpointError(f"no weights in {path}: expected model.safetensors or pytorch_model.bin "
                          "(or a sharded *.index.json) next to config.json")


def _read_bin(file: Path) -> dict:
    # weights_only=True: unpickle tensors and plain containers only, never run code a pickle asks for.
    try:
        sd = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"could not load {file} with torch.load(weights_only=True) ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}). It is corrupt or holds objects "
                              "other than tensors, which could run code when unpickled: refused. Use a "
                              "model.safetensors version of the checkpoint instead.") from e
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{file} does not hold a state dict ({{name: tensor}})")
    return sd


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def read_safetensors(file, force_pure_python=False) -> dict:
    """{name: tensor} from a .safetensors file, with the `safetensors` package when it is installed, else by
    hand. The format: an 8-byte little-endian header length n, n bytes of JSON header mapping each name to
    {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__" entry), then the
    raw little-endian tensor bytes, offsets counted from the end of the header."""
    if not force_pure_python:
        try:
            from safetensors.torch import load_file
        except ImportError:
            pass
        else:
            try:
                return load_file(str(file))
            except Exception as e:
                raise CheckpointError(f"could not read {file} as safetensors: {e}") from e
    data = bytearray(Path(file).read_bytes())  # one writable buffer; the tensors below are views into it
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, (begin, end) = _ST_DTYPES[info["dtype"]], info["data_offsets"]
            count = (end - begin) // dtype.itemsize
            if count != math.prod(info["shape"]) or 8 + n + end > len(data):
                raise ValueError(f"tensor {name}: {end - begin} bytes do not fit shape {info['shape']}")
            t = (torch.frombuffer(data, dtype=dtype, count=count, offset=8 + n + begin) if count
                 else torch.empty(0, dtype=dtype))  # frombuffer refuses zero-length tensors
            out[name] = t.reshape(info["shape"])
        return out
    except (ValueError, KeyError, TypeError, struct.error) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"could not read {file} as safetensors: {type(e).__name__}: {e}") from e

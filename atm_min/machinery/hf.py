"""Machinery: students from outside -- `--init_from` told apart by what it names, and Llama-family checkpoints in
Hugging Face layout loaded into atm_min/students/llama.py.

    load_student(init_from, dropout=..., attn_impl=..., block_size=...)
        a directory with config.json   model_type gpt2 -> machinery/gpt2.py; llama, qwen2, qwen3 -> Llama
        a file ending in .gguf         machinery/gguf.py read_gguf (dequantized, in Hugging Face names) -> Llama
        gpt2, gpt2-medium, ...         GPT-2 through huggingface_hub (machinery/gpt2.py)
        owner/name                     a Hugging Face Hub repository, downloaded when huggingface_hub is installed
                                       and online, then as a directory
    load_tokenizer("hf:DIR" | "gguf:FILE"): the tokenizer that ships with such a checkpoint;
    get_tokenizer(name): any tokenizer a run names ("bytes", "gpt2", or one of those).

Every failure is a CheckpointError / TokenizerError that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..students.llama import Llama, LlamaConfig, rope_frequencies
from .errors import CheckpointError, TokenizerError
from ..tokenizer import Tokenizer, byte_tokenizer
from .gpt2 import HF_GPT2_NAMES, _n_positions, _read_hf_config, _read_weights, from_pretrained, gpt2_tokenizer

LLAMA_TYPES = ("llama", "qwen2", "qwen3")
SUPPORTED = ("a Hugging Face directory (config.json + model.safetensors) of model_type gpt2, llama, qwen2 or "
             "qwen3; a .gguf file of llama architecture; a GPT-2 name (" + ", ".join(HF_GPT2_NAMES) + "); or a "
             "Hugging Face Hub name owner/name")
OVERRIDES = ("dropout", "attn_impl", "block_size")


def load_student(init_from: str, **overrides):
    """The pretrained student `init_from` names (see the module docstring); overrides: dropout, attn_impl and
    block_size (no larger than the checkpoint's context)."""
    path = Path(init_from).expanduser()
    if path.is_dir():
        hf = read_hf_config(path)
        if hf.get("model_type", "gpt2") == "gpt2":
            return from_pretrained(path, **overrides)
        return llama_from_hf(hf, _read_weights(path), **overrides)
    if init_from.endswith(".gguf"):
        hf, sd, _ = _read_gguf(path)
        return llama_from_hf(hf, sd, **overrides)
    if init_from in HF_GPT2_NAMES:
        return from_pretrained(init_from, **overrides)
    if init_from.count("/") == 1 and not path.exists():  # owner/name on the Hub
        return load_student(str(hub_download(init_from)), **overrides)
    raise CheckpointError(f"init_from={init_from!r} is not a checkpoint this code reads: expected 'scratch', "
                          f"{SUPPORTED}")


def read_hf_config(path: Path) -> dict:
    return _read_hf_config(path, ("gpt2",) + LLAMA_TYPES, f" ({SUPPORTED})",
                           f"supported: gpt2, {', '.join(LLAMA_TYPES)}")


def hub_download(name: str) -> Path:
    """A Hub repository's config, weights and tokenizer files, through huggingface_hub's cache."""
    try:
        from huggingface_hub import snapshot_download  # optional: only for downloading by name
        return Path(snapshot_download(name, allow_patterns=["config.json", "*.safetensors", "*.safetensors.index.json",
                                                            "tokenizer.json", "tokenizer_config.json"]))
    except Exception as e:  # not installed, offline, no such repository: the same advice for all of them
        raise CheckpointError(
            f"{name!r} is no local directory, and downloading it from the Hugging Face Hub failed "
            f"({type(e).__name__}: {' '.join(str(e).split())[:160]}). Give the path of a checkpoint directory, or on a "
            f"machine with internet run `huggingface-cli download {name} --local-dir DIR`, copy DIR here and pass "
            f"--init_from=DIR") from e


def _read_gguf(path: Path):
    from .gguf import read_gguf  # imports the optional `gguf` package lazily, with an install hint
    return read_gguf(str(path))  # (hf_config, state dict in Hugging Face names, tokenizer)


# ----------------------------------------------------------------------------------------------------------
# Hugging Face config.json + state dict -> our Llama

def llama_config(hf: dict, **overrides) -> LlamaConfig:
    """Our LlamaConfig from a llama / qwen2 / qwen3 config.json. Variants this student does not implement are
    refused rather than loaded silently wrong."""
    kind = hf.get("model_type")
    if kind not in LLAMA_TYPES:
        raise CheckpointError(f"model_type {kind!r} is not a Llama-family model ({', '.join(LLAMA_TYPES)})")
    if hf.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"hidden_act {hf['hidden_act']!r} is not supported: this student's MLP is SwiGLU (silu)")
    if hf.get("mlp_bias") or hf.get("use_sliding_window") or hf.get("pretraining_tp", 1) != 1:
        raise CheckpointError(f"config.json asks for mlp_bias, use_sliding_window or pretraining_tp: this "
                              f"{kind} variant is not supported")
    # Transformers 5 writes rope_parameters (theta inside); older files rope_theta + rope_scaling.
    rope = dict(hf.get("rope_parameters") or {**(hf.get("rope_scaling") or {}), "rope_theta": hf.get("rope_theta", 1e4)})
    theta = float(rope.pop("rope_theta", hf.get("rope_theta", 1e4)))
    if rope.get("rope_type", rope.get("type", "default")) == "default":
        rope = None
    bias = bool(hf.get("attention_bias", False))
    n_pos = hf.get("max_position_embeddings", 2048)
    args = dict(vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
                n_kv_head=hf.get("num_key_value_heads") or hf["num_attention_heads"], n_embd=hf["hidden_size"],
                head_dim=hf.get("head_dim") or 0, intermediate_size=hf["intermediate_size"], rope_theta=theta,
                rope_scaling=rope, rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                qkv_bias=kind == "qwen2" or bias, o_bias=bias and kind != "qwen2", qk_norm=kind == "qwen3",
                tie_embeddings=bool(hf.get("tie_word_embeddings", False)),  # transformers' default for all three
                block_size=n_pos)
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise CheckpointError(f"cannot override {key!r}: allowed overrides: {', '.join(OVERRIDES)}")
        args[key] = value
    if not 0 < args["block_size"] <= n_pos:
        raise CheckpointError(f"block_size={args['block_size']} must be between 1 and the checkpoint's "
                              f"max_position_embeddings ({n_pos})")
    try:
        cfg = LlamaConfig(**args)
        rope_frequencies(cfg)  # an unsupported rope_type or missing llama3 keys
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"invalid config: {type(e).__name__}: {e}") from e
    return cfg


def llama_state_dict(raw: dict, cfg: LlamaConfig) -> dict:
    """Hugging Face names -> ours: drop the "model." prefix, fuse q/k/v (and their biases) and gate/up, check
    every shape; an output layer absent from a tied checkpoint is the embedding table."""
    sd = {k.removeprefix("model."): v for k, v in raw.items() if not k.endswith("rotary_emb.inv_freq")}
    out = {}
    for i in range(cfg.n_layer):
        a, m = f"layers.{i}.self_attn.", f"layers.{i}.mlp."
        for kind in ("weight", "bias"):
            parts = [a + p + "." + kind for p in ("q_proj", "k_proj", "v_proj")]
            if all(p in sd for p in parts):
                out[a + "qkv_proj." + kind] = torch.cat([sd.pop(p) for p in parts])
        if m + "gate_proj.weight" in sd and m + "up_proj.weight" in sd:
            out[m + "gate_up_proj.weight"] = torch.cat([sd.pop(m + "gate_proj.weight"), sd.pop(m + "up_proj.weight")])
    out.update(sd)
    head = out.pop("lm_head.weight", None)
    with torch.device("meta"):  # shapes only
        ours = {k: tuple(v.shape) for k, v in Llama(cfg).state_dict().items()}
    if cfg.tie_embeddings:
        ours.pop("lm_head.weight")
        if head is not None and "embed_tokens.weight" in out and not torch.equal(head, out["embed_tokens.weight"]):
            raise CheckpointError("lm_head.weight differs from embed_tokens.weight although config.json says "
                                  "tie_word_embeddings")
    elif head is not None:
        out["lm_head.weight"] = head
    unexpected, missing = sorted(set(out) - set(ours)), sorted(set(ours) - set(out))
    if unexpected or missing:
        raise CheckpointError(f"the weights do not match config.json: {len(missing)} missing (e.g. "
                              f"{', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected (e.g. "
                              f"{', '.join(unexpected[:3]) or '-'})")
    for k, shape in ours.items():
        if tuple(out[k].shape) != shape:
            raise CheckpointError(f"{k}: the checkpoint's tensor has shape {tuple(out[k].shape)} but config.json "
                                  f"implies {shape}")
    return out


def llama_from_hf(hf: dict, raw: dict, **overrides) -> Llama:
    """A Llama student from a config.json dict and a state dict in Hugging Face names (fp32 parameters)."""
    cfg = llama_config(hf, **overrides)
    sd = llama_state_dict(raw, cfg)
    model = Llama(cfg)
    own = model.state_dict()
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
    return model


# ----------------------------------------------------------------------------------------------------------
# Tokenizers that ship with a checkpoint

def pretrained_tokenizer_name(init_from: str) -> str:
    """TrainConfig tokenizer="pretrained": the name of the tokenizer that ships with init_from ("gpt2",
    "hf:DIR" or "gguf:FILE"), saved in checkpoints so sample.py rebuilds it."""
    path = Path(init_from).expanduser()
    if init_from in HF_GPT2_NAMES:
        return "gpt2"
    if path.is_dir():
        if read_hf_config(path).get("model_type", "gpt2") == "gpt2":  # no config.json: a CheckpointError
            return "gpt2"
        return "hf:" + str(path.absolute())
    if init_from.endswith(".gguf"):
        return "gguf:" + str(path.absolute())
    if init_from.count("/") == 1 and not path.exists():
        return "hf:" + init_from  # a Hub name, resolved when the tokenizer is loaded
    raise CheckpointError(f"init_from={init_from!r} is not a checkpoint this code reads: expected 'scratch', "
                          f"{SUPPORTED}")


def max_positions(init_from: str) -> int | None:
    """The longest sequence init_from's weights cover (read from its config or metadata; no weight is loaded):
    what block_size=0 is capped at. None for a student from scratch (its position table is made to measure) and
    for a Hub name (load_student checks block_size once the files are downloaded)."""
    path = Path(init_from).expanduser()
    if init_from in HF_GPT2_NAMES:
        return 1024  # GPT-2's position table, every size
    if path.is_dir():
        hf = read_hf_config(path)
        return _n_positions(hf) if hf.get("model_type", "gpt2") == "gpt2" else hf.get("max_position_embeddings", 2048)
    if init_from.endswith(".gguf"):
        from .gguf import read_gguf_config
        return read_gguf_config(path)["max_position_embeddings"]
    return None


def get_tokenizer(name: str, path: str | None = None) -> Tokenizer:
    """The tokenizer a run's --tokenizer names: "bytes", "gpt2" (path: a local ranks file) or, for a Llama-family
    checkpoint, its own ("hf:DIR" or "gguf:FILE", load_tokenizer)."""
    if name == "bytes":
        return byte_tokenizer()
    if name == "gpt2":
        return gpt2_tokenizer(path)
    if name.startswith(("hf:", "gguf:")):
        return load_tokenizer(name)
    raise TokenizerError(f"unknown tokenizer {name!r}: choose 'bytes', 'gpt2', 'hf:DIR' or 'gguf:FILE'")


def load_tokenizer(name: str):
    """The tokenizer "hf:DIR" (its tokenizer.json; DIR may be a Hub name) or "gguf:FILE" (the file's vocabulary)."""
    from .gguf import read_gguf_tokenizer  # (these two import the optional gguf and tokenizers packages lazily,
    from .hf_tokenizer import from_tokenizer_json  # with an install hint when they are missing)
    kind, _, where = name.partition(":")
    if kind == "gguf":
        tok = read_gguf_tokenizer(where)  # the file's metadata only: no tensor is dequantized
    else:
        path = Path(where).expanduser()
        if not path.is_dir():
            if not os.path.exists(where) and where.count("/") == 1:
                path = hub_download(where)
            else:
                raise TokenizerError(f"no checkpoint directory at {where} for the tokenizer {name!r} (a run saves "
                                     f"its tokenizer by where the weights were when it trained: put them back there)")
        tok = from_tokenizer_json(path)
    tok.name = name  # what checkpoints save: sample.py rebuilds the same tokenizer from it
    return tok

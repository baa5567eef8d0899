"""Machinery: Llama-architecture checkpoints from a GGUF file (llama.cpp's format), e.g. SmolLM2-135M-Instruct.

`read_gguf(path) -> (hf_config, state_dict, tokenizer)`: the model as if it came from a Hugging Face directory --
a config dict shaped like a Llama config.json, float32 tensors under LlamaForCausalLM's parameter names -- and
its tokenizer (atm_min/machinery/hf_tokenizer.py). Whatever reads Hugging Face Llama checkpoints then reads this.

What the conversion undoes, each once:
- quantization: every type `gguf.quants.dequantize` knows (F32, F16, BF16, Q4_0, Q4_1, Q8_0, the K-quants, ...)
  becomes float32. The weights are then exactly the quantized model's, not the original float ones.
- shapes: GGUF lists a tensor's dimensions fastest-first, (in, out) for a linear layer; PyTorch's are (out, in).
- the q/k row order: llama.cpp's converter reorders each head's rows of q_proj and k_proj for its own rotary
  layout (see _unpermute); we put them back in Hugging Face's.
Needs the `gguf` package (imported lazily: `pip install gguf`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError
from .hf_tokenizer import from_gguf_metadata

INSTALL_HINT = "pip install gguf"

# GGUF tensor names -> LlamaForCausalLM's. Per layer: blk.{i}.<gguf> -> model.layers.{i}.<hf>.
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                "output.weight": "lm_head.weight"}
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(name: str) -> str | None:
    """A GGUF tensor's LlamaForCausalLM name (None for a tensor a plain Llama does not have)."""
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
    if m and m.group(2) in LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{LAYER_NAMES[m.group(2)]}"
    return None


def _gguf():
    try:
        import gguf
    except ImportError as e:
        raise CheckpointError(f"reading a GGUF file needs the `gguf` package: {INSTALL_HINT}") from e
    return gguf


def read_metadata(reader) -> dict:
    """{key: value} of a GGUFReader's fields (strings decoded, arrays as lists)."""
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def config_from_metadata(meta: dict, tied: bool) -> dict:
    """A Hugging Face Llama config.json (as a dict) from the llama.* metadata keys."""
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise CheckpointError(f"supported: llama-architecture GGUF; got {arch!r}")

    def need(key):
        if f"llama.{key}" not in meta:
            raise CheckpointError(f"the GGUF file lacks llama.{key}: not a complete llama-architecture file")
        return meta[f"llama.{key}"]

    n_embd, n_head = int(need("embedding_length")), int(need("attention.head_count"))
    head_dim = int(meta.get("llama.attention.key_length", n_embd // n_head))
    rot = int(meta.get("llama.rope.dimension_count", head_dim))
    if rot != head_dim:
        raise CheckpointError(f"rotary embeddings over {rot} of {head_dim} head dimensions are not supported")
    vocab = meta.get("llama.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or ())
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "num_hidden_layers": int(need("block_count")), "hidden_size": n_embd,
        "intermediate_size": int(need("feed_forward_length")), "num_attention_heads": n_head,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", n_head)), "head_dim": head_dim,
        "max_position_embeddings": int(meta.get("llama.context_length", 2048)),
        # The file stores float32: 1e-5 reads back as 9.99999974738e-06. Round to the 7 digits float32 has.
        "rms_norm_eps": float(f"{float(need('attention.layer_norm_rms_epsilon')):.7g}"),
        "rope_theta": float(f"{float(meta.get('llama.rope.freq_base', 10000.0)):.7g}"),
        "rope_scaling": None, "vocab_size": int(vocab), "tie_word_embeddings": tied,
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
    }
    for key in ("bos_token_id", "eos_token_id", "padding_token_id"):
        if f"tokenizer.ggml.{key}" in meta:
            cfg[key.replace("padding", "pad")] = int(meta[f"tokenizer.ggml.{key}"])
    kind = meta.get("llama.rope.scaling.type")
    if kind not in (None, "none"):
        if kind not in ("linear", "yarn"):
            raise CheckpointError(f"rope scaling {kind!r} in the GGUF file is not supported (linear, yarn)")
        cfg["rope_scaling"] = {"rope_type": kind, "factor": float(meta["llama.rope.scaling.factor"])}
        if "llama.rope.scaling.original_context_length" in meta:
            cfg["rope_scaling"]["original_max_position_embeddings"] = int(
                meta["llama.rope.scaling.original_context_length"])
    return cfg


def _unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation. Hugging Face's rotary embedding rotates dimension j of a head with
    dimension j + d/2 (rotate-half); GGML's rotates 2j with 2j+1. So llama.cpp's converter reorders each head's d
    rows from [j for the first half; j + d/2 for the second] to interleaved [0, d/2, 1, d/2+1, ...]:
    reshape(n_head, 2, d/2, C).swapaxes(1, 2). This is its inverse. Works on a bias (C absent) too."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _dequantize(gguf, t) -> torch.Tensor:
    try:
        a = gguf.quants.dequantize(t.data, t.tensor_type)
    except NotImplementedError as e:
        raise CheckpointError(f"tensor {t.name}: GGUF type {t.tensor_type.name} cannot be dequantized by the "
                              f"gguf package ({e}); re-quantize the model to a supported type, e.g. Q8_0") from e
    shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists dimensions fastest-first
    return torch.from_numpy(np.array(a, dtype=np.float32).reshape(shape))  # a copy: GGUFReader maps the file read-only


def _open(path):
    gguf = _gguf()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GGUF file not found: {path}")
    try:
        return gguf, path, gguf.GGUFReader(str(path))
    except Exception as e:  # bad magic, truncated file, ...
        raise CheckpointError(f"could not read {path} as a GGUF file ({type(e).__name__}: {e})") from e


def read_gguf_tokenizer(path):
    """The tokenizer of a GGUF file alone (its metadata; no tensor is dequantized)."""
    _, path, reader = _open(path)
    return from_gguf_metadata(read_metadata(reader), name=f"gguf:{path.name}")


def read_gguf_config(path) -> dict:
    """The Hugging Face config of a GGUF file alone (its metadata and tensor names; no tensor is dequantized)."""
    _, _, reader = _open(path)
    return config_from_metadata(read_metadata(reader), tied="output.weight" not in [t.name for t in reader.tensors])


def read_gguf(path) -> tuple[dict, dict, object]:
    """(hf_config, state_dict, tokenizer) of a llama-architecture GGUF file. state_dict: {LlamaForCausalLM
    parameter name: float32 tensor}, no lm_head.weight when the file ties it to the embeddings. tokenizer: an
    HFTokenizer from the file's metadata. Bad input raises CheckpointError (or TokenizerError)."""
    gguf, path, reader = _open(path)
    meta = read_metadata(reader)
    names = [t.name for t in reader.tensors]
    config = config_from_metadata(meta, tied="output.weight" not in names)
    tokenizer = from_gguf_metadata(meta, name=f"gguf:{path.name}")  # before the tensors: an unsupported one fails fast
    if "rope_freqs.weight" in names:
        raise CheckpointError(f"{path.name} carries rope frequency factors (Llama 3.1+ rope scaling), which this "
                              "reader does not support: load the model from its Hugging Face directory instead")

    sd = {}
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    for t in reader.tensors:
        hf = hf_name(t.name)
        if hf is None:
            raise CheckpointError(f"unexpected tensor {t.name!r} in {path.name}: not a plain Llama model")
        w = _dequantize(gguf, t)
        if ".attn_q." in t.name:
            w = _unpermute(w, n_head)
        elif ".attn_k." in t.name:
            w = _unpermute(w, n_kv)
        sd[hf] = w
    config["attention_bias"] = any(k.endswith("self_attn.q_proj.bias") for k in sd)
    _check(sd, config, path.name)
    return config, sd, tokenizer


def _check(sd: dict, config: dict, name: str):
    """Every tensor a Llama model of this config needs, with its shape: a truncated or odd file fails here."""
    C, F, V, L = (config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_hidden_layers"))
    q, kv = config["num_attention_heads"] * config["head_dim"], config["num_key_value_heads"] * config["head_dim"]
    want = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    if not config["tie_word_embeddings"]:
        want["lm_head.weight"] = (V, C)
    for i in range(L):
        p = f"model.layers.{i}."
        want |= {p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                 p + "self_attn.q_proj.weight": (q, C), p + "self_attn.k_proj.weight": (kv, C),
                 p + "self_attn.v_proj.weight": (kv, C), p + "self_attn.o_proj.weight": (C, q),
                 p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                 p + "mlp.down_proj.weight": (C, F)}
        if config["attention_bias"]:
            want |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                     p + "self_attn.v_proj.bias": (kv,)}
    missing = sorted(set(want) - set(sd))
    if missing:
        raise CheckpointError(f"{name} lacks {len(missing)} tensors of its llama config, e.g. {missing[0]}")
    for k, shape in want.items():
        if tuple(sd[k].shape) != shape:
            raise CheckpointError(f"{name}: {k} has shape {tuple(sd[k].shape)}, its metadata implies {shape}")

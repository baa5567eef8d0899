"""The GPT student, written from scratch (GPT-2 architecture and parameter names).

Read it top to bottom: config -> attention -> MLP -> block -> GPT (embeddings, soft-prompt prefix, loss) ->
generation with a KV cache. The KV cache lives in its own small class; the model's math only calls
`cache.update(...)` so that the attention code reads the same with and without it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError  # GPT.from_pretrained's failures; the project's one checkpoint error


@dataclass
class GPTConfig:
    block_size: int = 1024     # longest sequence (soft prompt + tokens) the position table covers
    vocab_size: int = 50257    # GPT-2 BPE; the byte tokenizer uses 257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True          # GPT-2 has biases in Linear and LayerNorm layers
    attn_impl: str = "sdpa"    # "explicit": attention written out in full; "sdpa": torch's fused kernel

    def __post_init__(self):
        if self.attn_impl not in ("explicit", "sdpa"):
            raise ValueError(f"attn_impl must be 'explicit' or 'sdpa', got {self.attn_impl!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated to `max_len`."""

    def __init__(self, n_layer, batch_size, n_head, max_len, head_dim, device, dtype):
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0  # number of positions already stored (the same for every layer once a forward finishes)
        self.keep = None  # (B, pos) bool: which stored positions are real (not left-padding); None: all

    def update(self, layer: int, k, v):
        """Store the new k, v (B, nh, T, hs) of one layer; return all keys and values so far (B, nh, pos+T, hs)."""
        T = k.size(2)
        self.k[layer, :, :, self.pos:self.pos + T] = k
        self.v[layer, :, :, self.pos:self.pos + T] = v
        end = self.pos + T
        if layer == self.k.size(0) - 1:  # the last layer advances the cursor for the next forward
            self.pos = end
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.attn_impl = config.attn_impl
        self.layer_idx = layer_idx

    def forward(self, x, mask=None, cache: KVCache | None = None):
        # mask: None means plain causal attention; otherwise a bool (B or 1, 1, T, S) tensor, True = may attend.
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, nh, S, hs), S = positions so far
        S = k.size(2)

        if self.attn_impl == "explicit":
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, S)
            if mask is None:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, S) x (B, nh, S, hs) -> (B, nh, T, hs)
        else:
            drop = self.dropout if self.training else 0.0
            if mask is None and T == S:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
            elif mask is None and T == 1:  # one new query after the cached keys: it may see all of them
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            else:
                if mask is None:  # cached decoding without padding: the new queries see every earlier key
                    mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask=None, cache=None):
        x = x + self.attn(self.ln_1(x), mask, cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by 1/sqrt(2 * n_layer)
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding=True):
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len=None):
        """Training FLOPs (forward + backward) per token at sequence length seq_len (default block_size).
        The PaLM paper's estimate (appendix B), as in nanoGPT: 6N for the weight matmuls (2 forward, 4 backward
        per parameter; N excludes wpe, a lookup, but keeps the tied wte/lm_head, a matmul) plus 12*L*H*Q*T for
        the attention scores and their weighted sum (Q = head size; the causal half is counted in full)."""
        c = self.config
        L, H, Q, T = c.n_layer, c.n_head, c.n_embd // c.n_head, seq_len or c.block_size
        return 6 * self.num_params() + 12 * L * H * Q * T

    def estimate_mfu(self, tokens_per_sec, peak_flops, seq_len=None):
        """Model FLOPs utilization: achieved training FLOP/s over the device's peak FLOP/s (an argument: look
        it up for your device and dtype, e.g. PEAK_FLOPS below)."""
        return self.flops_per_token(seq_len) * tokens_per_sec / peak_flops

    def forward(self, idx, targets=None, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """idx (B, T) token ids; targets (B, T) with -1 = no loss (prompt and padding);
        prefix_embeds (B, P, C): soft-prompt vectors placed before the tokens (they take positions 0..P-1);
        pad_mask (B, T) bool, False at left-padding (used for batched generation of prompts of unequal length);
        cache: a KVCache holding earlier positions (generation). Returns logits (B, T, V) for the token
        positions only, and the mean cross-entropy over targets != -1 (or None)."""
        x = self.hidden_states(idx, prefix_embeds, pad_mask, cache)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """The transformer without its output layer: final-LayerNorm states (B, T, C) of the token positions
        (arguments as in forward)."""
        B, T = idx.size()
        past = cache.pos if cache is not None else 0
        x = self.transformer.wte(idx)  # (B, T, C)
        P = 0
        if prefix_embeds is not None:
            P = prefix_embeds.size(1)
            x = torch.cat([prefix_embeds.to(x.dtype), x], dim=1)  # (B, P+T, C)
        L = P + T  # positions fed in this call
        if past + L > self.config.block_size:
            raise ValueError(f"sequence of {past + L} positions exceeds block_size {self.config.block_size}")

        mask = None
        if pad_mask is None and (cache is None or cache.keep is None):
            # No padding anywhere: positions count on from the cached ones and attention is plain causal
            # (the attention code handles that without a mask tensor, which is faster).
            pos = torch.arange(past, past + L, device=idx.device)  # (L,) shared by every row
        else:
            # Real positions: padding counts for nothing, so a left-padded row numbers its tokens as if it
            # had no padding. keep (B, S) marks the keys any query may use; S = past + L.
            if pad_mask is None:
                pad_mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
            new_keep = torch.cat([torch.ones(B, P, dtype=torch.bool, device=idx.device), pad_mask], dim=1)
            keep = new_keep
            if past:  # cached keys are all real unless an earlier call said otherwise
                old = cache.keep if cache.keep is not None else torch.ones(B, past, dtype=torch.bool,
                                                                             device=idx.device)
                keep = torch.cat([old, new_keep], dim=1)
            if cache is not None:
                cache.keep = keep
            pos_all = (keep.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, S)
            pos = pos_all[:, past:]  # (B, L)
            S = past + L
            causal = torch.ones(L, S, dtype=torch.bool, device=idx.device).tril(diagonal=past)
            self_ = torch.zeros(L, S, dtype=torch.bool, device=idx.device)
            self_[torch.arange(L), past + torch.arange(L)] = True  # a pad may attend to itself: no all-masked row
            mask = (causal & keep[:, None, :]) | self_  # (B, L, S)
            mask = mask[:, None]  # (B, 1, L, S): broadcast over heads
        x = self.transformer.drop(x + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x, mask, cache)
        return self.transformer.ln_f(x[:, P:])  # only token positions produce logits

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, stop_ids=None, prefix_embeds=None,
                 pad_mask=None, use_cache=True, generator=None):
        """Continue each row of idx (B, T). temperature=0 is greedy. A row stops growing after it emits one
        of stop_ids. Rows of different prompt lengths are left-padded with pad_mask False on the padding.
        Returns a list of B lists of new token ids (each ending with its stop token if it stopped)."""
        B = idx.size(0)
        P = 0 if prefix_embeds is None else prefix_embeds.size(1)
        stop = {int(t) for t in (stop_ids or [])}
        done = [False] * B
        out = [[] for _ in range(B)]
        if pad_mask is not None and bool(pad_mask.all()):
            pad_mask = None  # no padding after all: forward's plain causal path is faster
        max_new_tokens = min(max_new_tokens, self.config.block_size - P - idx.size(1))
        cache = None
        if use_cache:
            c = self.config
            p = next(self.parameters())
            cache = KVCache(c.n_layer, B, c.n_head, P + idx.size(1) + max_new_tokens, c.n_embd // c.n_head,
                            p.device, p.dtype)
        # Only the last position needs logits. Its (1, C) x (C, V) product reads the whole output matrix for
        # every token; on CPU, BLAS reads it faster when stored (C, V) than as wte's (V, C) (124M, 2-core CPU:
        # 7 vs 12 ms per token, docs/bench_cpu.md), so keep a transposed copy while generating.
        head = self.lm_head.weight
        head_t = head.t().contiguous() if head.device.type == "cpu" else None  # (C, V); V*C extra floats
        seq, seq_mask, step_in, step_mask, prefix = idx, pad_mask, idx, pad_mask, prefix_embeds
        for _ in range(max_new_tokens):
            if use_cache:  # prefill once with the whole prompt, then feed only the newest token
                h = self.hidden_states(step_in, prefix_embeds=prefix, pad_mask=step_mask, cache=cache)
                prefix, step_mask = None, None  # the soft prompt and the padding are in the cache now
            else:  # recompute everything (the slow reference the cache is tested against)
                h = self.hidden_states(seq, prefix_embeds=prefix_embeds, pad_mask=seq_mask)
            h = h[:, -1, :]  # (B, C)
            logits = h @ head_t if head_t is not None else self.lm_head(h)  # (B, V)
            if temperature == 0:
                nxt = logits.argmax(dim=-1)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)
            for b, t in enumerate(nxt.tolist()):  # one copy to the host per step, then plain Python
                if not done[b]:
                    out[b].append(t)
                    done[b] = t in stop
            if all(done):
                break
            step_in = nxt[:, None]  # (B, 1)
            if not use_cache:
                seq = torch.cat([seq, step_in], dim=1)
                if seq_mask is not None:
                    seq_mask = torch.cat([seq_mask, torch.ones_like(step_in, dtype=torch.bool)], dim=1)
        return out

    @classmethod
    def from_pretrained(cls, name_or_dir, **overrides):
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
        model = cls(config)
        own = model.state_dict()
        with torch.no_grad():
            for k, v in sd.items():
                own[k].copy_(v)
        return model


# ----------------------------------------------------------------------------------------------------------
# Loading Hugging Face GPT-2 checkpoints (GPT.from_pretrained). Needs only torch at run time: no transformers.

HF_GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
# Datasheet peak dense FLOP/s, for GPT.estimate_mfu (documentation only: the function takes the number).
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


def _read_hf_config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"no config.json in {path}: not a Hugging Face checkpoint directory")
    try:
        hf = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if hf.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"{file} has model_type {hf['model_type']!r}: only GPT-2 checkpoints "
                              "(model_type 'gpt2') match this model's architecture")
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

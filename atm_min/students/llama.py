"""A Llama-family student (Llama 2/3, SmolLM2, Qwen2, Qwen3), written from scratch beside the GPT-2 one.

It has the GPT-2 student's interface (atm_min/model.py GPT): forward(idx, targets, prefix_embeds, pad_mask, cache),
hidden_states, generate, new_cache, get_input_embeddings, num_params, flops_per_token, estimate_mfu, and a config
with block_size, vocab_size, n_layer, n_head, n_embd. So the perception module, the training loop, evaluation
(atm_min/engine.py's batched generation), sample.py and the trace use either student unchanged: the perception
only ever reads `student.get_input_embeddings()`, whatever the student computes behind it.

Each difference from GPT-2 is said once, where it is: RMSNorm, rotary positions (no position table), SwiGLU,
grouped-query attention, optional q/k/v biases (Qwen2) and q/k norms (Qwen3), an untied output layer.
Parameter names are Hugging Face's (model.layers.N.self_attn.q_proj, ...), less the "model." prefix, except that
q/k/v and gate/up are fused into one matmul each (faster; machinery/hf.py concatenates them when loading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..engine import positions_and_mask
from ..model import GPT, KVCache


@dataclass
class LlamaConfig:
    block_size: int = 2048       # longest sequence we allow (rotary positions have no table: only a limit)
    vocab_size: int = 49152
    n_layer: int = 30
    n_head: int = 9              # query heads
    n_kv_head: int = 3           # key/value heads (grouped-query attention: n_head // n_kv_head queries share one)
    n_embd: int = 576
    head_dim: int = 0            # 0 = n_embd // n_head (Qwen3 sets its own)
    intermediate_size: int = 1536  # SwiGLU's hidden width
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None  # Llama 3: {"rope_type": "llama3", "factor", "low_freq_factor", ...}
    rms_norm_eps: float = 1e-5
    qkv_bias: bool = False       # Qwen2: biases on q, k, v (not on o)
    o_bias: bool = False         # Llama's attention_bias=True: biases on q, k, v and o
    qk_norm: bool = False        # Qwen3: RMSNorm over each head's q and k before the rotation
    tie_embeddings: bool = True  # output layer = token embedding table (SmolLM2, Llama 3.2 1B, Qwen2.5 0.5B)
    dropout: float = 0.0
    attn_impl: str = "sdpa"      # "explicit" or "sdpa", as GPTConfig
    arch: str = "llama"          # saved in checkpoints' model_args: which student class to rebuild

    def __post_init__(self):
        if self.attn_impl not in ("explicit", "sdpa"):
            raise ValueError(f"attn_impl must be 'explicit' or 'sdpa', got {self.attn_impl!r}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if not self.head_dim:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
            self.head_dim = self.n_embd // self.n_head


class RMSNorm(nn.Module):
    """Difference from GPT-2: RMSNorm instead of LayerNorm -- no mean subtraction, no bias: x / rms(x) * w."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # computed in float32 whatever the dtype (as Hugging Face does), then cast back before the weight
        return self.weight * F.rms_norm(x.float(), (x.size(-1),), eps=self.eps).to(x.dtype)


def rope_frequencies(cfg: LlamaConfig) -> torch.Tensor:
    """Rotation frequency of each pair of head dimensions, (head_dim/2,): theta^(-2i/d), Llama 3-scaled if asked."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    s = cfg.rope_scaling or {}
    kind = s.get("rope_type", s.get("type", "default"))
    if kind == "llama3":
        # Llama 3's long-context fix: slow rotations (wavelength > original context / low_freq_factor) are
        # divided by `factor`, fast ones (< context / high_freq_factor) are kept, those between interpolated.
        factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old_len = s["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / lo, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - lo) / (hi - lo)
        mid = (wavelen >= old_len / hi) & (wavelen <= old_len / lo)
        inv_freq = torch.where(mid, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    elif kind != "default":
        raise ValueError(f"rope_type {kind!r} is not supported (only 'default' and 'llama3')")
    return inv_freq


def rotate(x, cos, sin):
    """Difference from GPT-2: positions enter as a rotation of q and k (no position table is added to x).
    Hugging Face's "rotate half" layout: dimension i pairs with i + d/2. x (B, nh, T, hs); cos, sin (B|1, 1, T, hs)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # under autocast q, k are bf16 while cos, sin are float32
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    """Difference from GPT-2: grouped-query attention -- n_kv_head key/value heads, each shared by
    n_head / n_kv_head query heads (a smaller KV cache)."""

    def __init__(self, cfg: LlamaConfig, layer_idx: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.hs = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        q, kv = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
        self.qkv_proj = nn.Linear(cfg.n_embd, q + 2 * kv, bias=cfg.qkv_bias or cfg.o_bias)  # q, k, v in one matmul
        self.o_proj = nn.Linear(q, cfg.n_embd, bias=cfg.o_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
        self.qk_norm, self.dropout, self.attn_impl, self.layer_idx = cfg.qk_norm, cfg.dropout, cfg.attn_impl, layer_idx
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, mask=None, cache: KVCache | None = None):
        B, T, _ = x.size()
        nq, nkv, hs = self.n_head, self.n_kv_head, self.hs
        q, k, v = self.qkv_proj(x).split([nq * hs, nkv * hs, nkv * hs], dim=2)
        q = q.view(B, T, nq, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, nkv, hs).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, nkv, S, hs): the cache holds only the kv heads
        S = k.size(2)
        if self.attn_impl == "explicit" or nq != nkv and x.device.type != "cpu":
            # each kv head serves n_head / n_kv_head consecutive query heads (on a GPU, copied out: the fused
            # kernels that take a mask do not share heads themselves)
            k, v = k.repeat_interleave(nq // nkv, dim=1), v.repeat_interleave(nq // nkv, dim=1)  # (B, nh, S, hs)
        drop = self.dropout if self.training else 0.0
        if self.attn_impl == "explicit":
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, S)
            if mask is None:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            att = F.dropout(F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1), drop, self.training)
            y = att @ v  # (B, nh, T, hs)
        else:
            # torch's fused attention: one kernel, no (T, S) matrix kept for the backward pass. On the CPU it
            # also shares each kv head among its query heads itself (enable_gqa), without copying k and v.
            gqa = k.size(1) != nq
            if mask is None and T == S:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True, enable_gqa=gqa)
            else:
                if mask is None and T > 1:  # cached decoding without padding: new queries see every earlier key
                    mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, enable_gqa=gqa)
        y = y.transpose(1, 2).contiguous().view(B, T, nq * hs)
        return self.resid_dropout(self.o_proj(y))


class MLP(nn.Module):
    """Difference from GPT-2: SwiGLU -- silu(x W_gate) * (x W_up), then W_down; no biases."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.n_embd, 2 * cfg.intermediate_size, bias=False)  # gate and up: one matmul
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.n_embd, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.dropout(self.down_proj(F.silu(gate) * up))


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask=None, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.layers = nn.ModuleList([Block(config, i) for i in range(config.n_layer)])
        self.norm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.drop = nn.Dropout(config.dropout)
        self.apply(self._init_weights)
        if config.tie_embeddings:  # difference from GPT-2: tying is a setting (Llama 2/3 8B untie, 1B ties)
            self.lm_head.weight = self.embed_tokens.weight
        self.register_buffer("inv_freq", rope_frequencies(config), persistent=False)

    def _init_weights(self, module):  # Hugging Face's: normal(0, 0.02), zero biases; RMSNorm weights stay 1
        if isinstance(module, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                torch.nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding table: all the perception module reads from a student."""
        return self.embed_tokens

    def num_params(self, non_embedding=True):
        """Parameters (tied tables counted once). non_embedding: without an untied input table (a lookup)."""
        n = sum(p.numel() for p in self.parameters())
        untied = not self.config.tie_embeddings
        return n - self.embed_tokens.weight.numel() if non_embedding and untied else n

    def flops_per_token(self, seq_len=None):
        """Training FLOPs per token, as GPT.flops_per_token: 6N + 12*L*H*Q*T."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_head * c.head_dim * (seq_len or c.block_size)

    def estimate_mfu(self, tokens_per_sec, peak_flops, seq_len=None):
        return self.flops_per_token(seq_len) * tokens_per_sec / peak_flops

    def forward(self, idx, targets=None, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """As GPT.forward: logits (B, T, V) and None; given targets, the N scored positions' logits (N, V) and
        their mean cross-entropy. Difference: only those N positions go through the output layer. A speed-up, not
        architecture: the prompt's positions carry no loss (target -1), and a 49k-wide output layer is a fifth of
        SmolLM2's forward. (GPT-2's file keeps computing every position, so that the default run's numbers stay
        bit for bit as they were.)"""
        x = self.hidden_states(idx, prefix_embeds, pad_mask, cache)
        if targets is None:
            return self.lm_head(x), None  # (B, T, V)
        scored = targets != -1  # (B, T)
        logits = self.lm_head(x[scored])  # (N, V)
        return logits, F.cross_entropy(logits.float(), targets[scored])

    def hidden_states(self, idx, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """As GPT.hidden_states; the positions (and so the padding rules) are GPT's exactly, here they pick the
        rotation angles instead of rows of a position table."""
        x = self.embed_tokens(idx)  # (B, T, C)
        if prefix_embeds is not None:
            x = torch.cat([prefix_embeds.to(x.dtype), x], dim=1)  # (B, P+T, C)
        P = x.size(1) - idx.size(1)
        pos, mask = positions_and_mask(idx, P, pad_mask, cache, self.config.block_size)  # (1|B, P+T), mask
        angles = pos[..., None].float() * self.inv_freq.float()  # (B|1, L, hs/2), in float32 as Hugging Face
        angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B|1, 1, L, hs): the rotate-half layout
        cos, sin = angles.cos(), angles.sin()
        x = self.drop(x)
        for block in self.layers:
            x = block(x, cos, sin, mask, cache)
        return self.norm(x[:, P:])

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """Difference from GPT-2: the cache holds only the n_kv_head key/value heads, of head_dim each."""
        c, p = self.config, next(self.parameters())
        return KVCache((c.n_layer, batch_size, c.n_kv_head, max_len, c.head_dim), p.device, p.dtype)

    generate = GPT.generate  # GPT's loop as it is: it reaches this model through forward and new_cache

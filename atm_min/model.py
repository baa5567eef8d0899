"""The GPT student, written from scratch (GPT-2 architecture and parameter names).

Read it top to bottom: config -> attention -> MLP -> block -> GPT (embeddings, soft-prompt prefix, loss) ->
generation with a KV cache. The KV cache lives in its own small class; the model's math only calls
`cache.update(...)` so that the attention code reads the same with and without it. Batched generation (left
padding, soft prompts, stop tokens) is atm_min/engine.py, read next. Loading GPT-2's published weights into this
model is machinery (atm_min/machinery/gpt2.py from_pretrained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .engine import positions_and_mask, sample_next


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

    def __init__(self, shape: tuple, device, dtype):
        """shape: (n_layer, batch_size, n_head, max_len, head_dim)."""
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0  # number of positions already stored (the same for every layer once a forward finishes)
        self.real = None  # (B, pos) bool: which stored positions are real (not left-padding); None: all

    def update(self, layer: int, k, v):
        """Store the new k, v (B, nh, T, hs) of one layer; return all keys and values so far (B, nh, pos+T, hs)."""
        T = k.size(2)
        self.k[layer, :, :, self.pos:self.pos + T] = k
        self.v[layer, :, :, self.pos:self.pos + T] = v
        end = self.pos + T
        if layer == self.k.size(0) - 1:  # the last layer advances the cursor for the next forward
            self.pos = end
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def keep_rows(self, rows):
        """Keep only these batch rows (LongTensor of indices): batched generation drops the finished ones."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]
        if self.real is not None:
            self.real = self.real[rows]


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

        if mask is None and (self.attn_impl == "explicit" or 1 < T < S):
            # plain causal attention over S keys, of which the T queries are the last; sdpa does without the
            # tensor when T == S (is_causal, faster) or T == 1 (one new query may see every cached key)
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        if self.attn_impl == "explicit":
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, S)
            att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, S) x (B, nh, S, hs) -> (B, nh, T, hs)
        else:
            drop = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop,
                                               is_causal=mask is None and T == S)
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

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding table: the one thing the perception module reads from a student (any student with
        this method plugs in; the name is Hugging Face's)."""
        return self.transformer.wte

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
        it up for your device and dtype, e.g. machinery/gpt2.py PEAK_FLOPS)."""
        return self.flops_per_token(seq_len) * tokens_per_sec / peak_flops

    def forward(self, idx, targets=None, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """idx (B, T) token ids; targets (B, T) with -1 = no loss (prompt and padding);
        prefix_embeds (B, P, C): soft-prompt vectors placed before the tokens (they take positions 0..P-1);
        pad_mask (B, T) bool, False at left-padding (used for batched generation of prompts of unequal length);
        cache: a KVCache holding earlier positions (generation). Returns the logits of the token positions,
        (B, T, V), and None; given targets, the logits of the N positions with a target, (N, V), and their mean
        cross-entropy (every student's contract: students/llama.py computes only those N rows)."""
        x = self.hidden_states(idx, prefix_embeds, pad_mask, cache)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        # every position through the output layer, the loss with ignore_index: the default run's numbers
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits[targets != -1], loss  # (N, V)

    def hidden_states(self, idx, prefix_embeds=None, pad_mask=None, cache: KVCache | None = None):
        """The transformer without its output layer: final-LayerNorm states (B, T, C) of the token positions
        (arguments as in forward). Padding and the cache decide positions and mask: engine.positions_and_mask."""
        x = self.transformer.wte(idx)  # (B, T, C)
        if prefix_embeds is not None:
            x = torch.cat([prefix_embeds.to(x.dtype), x], dim=1)  # (B, P+T, C)
        P = x.size(1) - idx.size(1)
        pos, mask = positions_and_mask(idx, P, pad_mask, cache, self.config.block_size)  # (1|B, P+T), mask
        x = self.transformer.drop(x + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x, mask, cache)
        return self.transformer.ln_f(x[:, P:])  # only token positions produce logits

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty KV cache for this model: every layer's keys and values, one head_dim vector per head."""
        c, p = self.config, next(self.parameters())
        return KVCache((c.n_layer, batch_size, c.n_head, max_len, c.n_embd // c.n_head), p.device, p.dtype)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Continue every row of idx (B, T) by max_new_tokens tokens, as nanoGPT's generate but with the KV cache:
        the prompt goes through once, then each step feeds only the newest token. temperature 0 is greedy.
        Rows must be of one length, and none stops early: for left padding, soft prompts and stop tokens
        (evaluation), see atm_min/engine.py. Returns (B, T + max_new_tokens)."""
        cache = self.new_cache(idx.size(0), idx.size(1) + max_new_tokens)
        step = idx  # what the next forward reads: the whole prompt, then the newest token
        for _ in range(max_new_tokens):
            logits, _ = self(step, cache=cache)  # (B, t, V)
            step = sample_next(logits[:, -1, :], temperature, top_k)[:, None]  # (B, 1)
            idx = torch.cat([idx, step], dim=1)
        return idx

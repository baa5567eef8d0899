"""The GPT student, written from scratch (GPT-2 architecture and parameter names).

Read it top to bottom: config -> attention -> MLP -> block -> GPT (embeddings, soft-prompt prefix, loss) ->
generation with a KV cache. The KV cache lives in its own small class; the model's math only calls
`cache.update(...)` so that the attention code reads the same with and without it. Loading GPT-2's published
weights into this model is machinery (atm_min/machinery/gpt2.py from_pretrained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


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
        if pad_mask is None and (cache is None or cache.real is None):
            # No padding anywhere: positions count on from the cached ones and attention is plain causal
            # (the attention code handles that without a mask tensor, which is faster).
            pos = torch.arange(past, past + L, device=idx.device)  # (L,) shared by every row
        else:
            # Real positions: padding counts for nothing, so a left-padded row numbers its tokens as if it
            # had no padding. real (B, S) marks the keys any query may use; S = past + L.
            if pad_mask is None:
                pad_mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
            new_real = torch.cat([torch.ones(B, P, dtype=torch.bool, device=idx.device), pad_mask], dim=1)
            real = new_real
            if past:  # cached keys are all real unless an earlier call said otherwise
                old = cache.real if cache.real is not None else torch.ones(B, past, dtype=torch.bool,
                                                                             device=idx.device)
                real = torch.cat([old, new_real], dim=1)
            if cache is not None:
                cache.real = real
            pos_all = (real.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, S)
            pos = pos_all[:, past:]  # (B, L)
            S = past + L
            causal = torch.ones(L, S, dtype=torch.bool, device=idx.device).tril(diagonal=past)
            itself = torch.zeros(L, S, dtype=torch.bool, device=idx.device)
            itself[torch.arange(L), past + torch.arange(L)] = True  # a pad may attend to itself: no all-masked row
            mask = (causal & real[:, None, :]) | itself  # (B, L, S)
            mask = mask[:, None]  # (B, 1, L, S): broadcast over heads
        x = self.transformer.drop(x + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x, mask, cache)
        return self.transformer.ln_f(x[:, P:])  # only token positions produce logits

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty KV cache for this model: every layer's keys and values, one head_dim vector per head."""
        c, p = self.config, next(self.parameters())
        return KVCache(c.n_layer, batch_size, c.n_head, max_len, c.n_embd // c.n_head, p.device, p.dtype)

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
        cache = self.new_cache(B, P + idx.size(1) + max_new_tokens) if use_cache else None
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

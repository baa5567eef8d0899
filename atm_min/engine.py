"""Batched generation for any student (model.py's GPT, students/llama.py's Llama): many questions at once, of
different lengths (left-padded), each after its soft prompt, each stopping at its own stop token. A student's own
`generate` is nanoGPT's (one length, no stops). This file reaches a student only through hidden_states, lm_head and
new_cache; `positions_and_mask`, the one place padding becomes positions and a mask, is called by both students."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class GenSettings:
    max_new_tokens: int
    temperature: float = 0.0        # 0: greedy (argmax); otherwise sample from softmax(logits / temperature)
    top_k: int | None = None        # sample only among the k likeliest tokens
    generator: torch.Generator | None = None  # the random source of sampling (reproducible draws)
    stop_ids: tuple = ()            # a row stops after emitting one of these (it is kept at the end of its output)
    use_cache: bool = True          # False: recompute everything each step (the slow reference the cache must equal)
    # Stop computing the rows that have stopped (the batch shrinks): outputs of 4 to 160 tokens make that pay.
    # Greedy tokens stay the same (the default run's outputs are bit-identical); sampled ones do not (fewer rows
    # draw from the generator), so evaluation turns it on for greedy decoding only.
    drop_finished: bool = False


def positions_and_mask(idx, n_prefix: int, pad_mask=None, cache=None, block_size: int | None = None):
    """Positions (1 or B, L) and attention mask (None: plain causal, or bool (B, 1, L, S), True = may attend) of
    the L = n_prefix + T positions fed now: a soft prompt of n_prefix vectors, then the tokens idx (B, T).
    pad_mask (B, T): False at left padding. cache: earlier positions (S = cached + L); it keeps which are real."""
    B, T = idx.size()
    past, L, dev = cache.pos if cache is not None else 0, n_prefix + T, idx.device
    if block_size is not None and past + L > block_size:
        raise ValueError(f"sequence of {past + L} positions exceeds block_size {block_size}")
    if pad_mask is None and (cache is None or cache.real is None):
        # No padding anywhere: positions count on from the cached ones and attention is plain causal
        # (the attention code handles that without a mask tensor, which is faster).
        return torch.arange(past, past + L, device=dev)[None], None  # (1, L) shared by every row
    # Real positions: padding counts for nothing, so a left-padded row numbers its tokens as if it had no
    # padding. real (B, S) marks the keys any query may use.
    if pad_mask is None:
        pad_mask = torch.ones(B, T, dtype=torch.bool, device=dev)
    real = torch.cat([torch.ones(B, n_prefix, dtype=torch.bool, device=dev), pad_mask], dim=1)  # (B, L)
    if past:  # cached keys are all real unless an earlier call said otherwise
        old = cache.real if cache.real is not None else torch.ones(B, past, dtype=torch.bool, device=dev)
        real = torch.cat([old, real], dim=1)  # (B, S)
    if cache is not None:
        cache.real = real
    pos = (real.long().cumsum(dim=1) - 1).clamp(min=0)[:, past:]  # (B, L)
    S = past + L
    causal = torch.ones(L, S, dtype=torch.bool, device=dev).tril(diagonal=past)
    itself = torch.zeros(L, S, dtype=torch.bool, device=dev)
    itself[torch.arange(L), past + torch.arange(L)] = True  # a pad may attend to itself: no all-masked row
    return pos, ((causal & real[:, None, :]) | itself)[:, None]  # (B, 1, L, S): broadcast over heads


def sample_next(logits, temperature: float, top_k: int | None = None, generator=None):
    """The next token of each row from its logits (B, V): argmax if temperature is 0, else a draw."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("inf")
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)  # (B,)


def output_layer(model):
    """h (B, C) -> logits (B, V) of the last position. Its (B, C) x (C, V) product reads the whole output matrix
    for every token; on CPU, BLAS reads it faster when stored (C, V) than as the layer's (V, C) (124M, 2-core
    CPU: 7 vs 12 ms per token, docs/bench_cpu.md), so keep a transposed copy while generating (V*C floats)."""
    if model.lm_head.weight.device.type != "cpu":
        return model.lm_head
    head_t = model.lm_head.weight.t().contiguous()  # (C, V)
    return lambda h: h @ head_t


@dataclass
class _Rows:
    """The rows still generating and what the next forward reads for them."""
    ids: list           # original row of each live row
    done: list          # per live row: has it stopped? (only without drop_finished: else stopped rows are gone)
    idx: torch.Tensor   # (b, t): the whole prompt first; then the newest token (cache) or everything (no cache)
    pad_mask: torch.Tensor | None  # (b, t) or None
    prefix: torch.Tensor | None    # (b, P, C) or None
    cache: object = None


def _record(rows: _Rows, nxt: list, out: list, stop: set) -> None:
    """Append each live, unfinished row's new token to its output; mark the rows that just stopped."""
    for i, t in enumerate(nxt):
        if not rows.done[i]:
            out[rows.ids[i]].append(t)
            rows.done[i] = t in stop


def _advance(rows: _Rows, nxt, s: GenSettings) -> _Rows:
    """What the next forward reads: the new token (b, 1) alone with the cache (the soft prompt and the padding
    are in it now), else everything so far. With drop_finished, the stopped rows are left out."""
    step = nxt[:, None]  # (b, 1)
    if s.use_cache:
        rows = _Rows(rows.ids, rows.done, step, None, None, rows.cache)
    else:
        mask = None if rows.pad_mask is None else torch.cat([rows.pad_mask, torch.ones_like(step, dtype=torch.bool)], 1)
        rows = _Rows(rows.ids, rows.done, torch.cat([rows.idx, step], dim=1), mask, rows.prefix, rows.cache)
    if not (s.drop_finished and any(rows.done)):
        return rows
    keep = [i for i, d in enumerate(rows.done) if not d]
    k = torch.tensor(keep, device=step.device)
    if rows.cache is not None:
        rows.cache.keep_rows(k)
    return _Rows([rows.ids[i] for i in keep], [False] * len(keep), rows.idx[k],
                 None if rows.pad_mask is None else rows.pad_mask[k],
                 None if rows.prefix is None else rows.prefix[k], rows.cache)


@torch.no_grad()
def generate(model, idx, s: GenSettings, prefix_embeds=None, pad_mask=None) -> list[list[int]]:
    """Continue each row of idx (B, T), left-padded where pad_mask (B, T) is False, after its soft prompt
    prefix_embeds (B, P, C) if given. Returns B lists of new token ids, each ending with its stop token if it
    stopped. The budget is cut to the context left (block_size)."""
    B, T = idx.size()
    P = 0 if prefix_embeds is None else prefix_embeds.size(1)
    n_new = min(s.max_new_tokens, model.config.block_size - P - T)
    if pad_mask is not None and bool(pad_mask.all()):
        pad_mask = None  # no padding after all: the plain causal path is faster
    cache = model.new_cache(B, P + T + n_new) if s.use_cache else None
    rows = _Rows(list(range(B)), [False] * B, idx, pad_mask, prefix_embeds, cache)
    head, stop, out = output_layer(model), {int(t) for t in s.stop_ids}, [[] for _ in range(B)]
    for _ in range(n_new):
        h = model.hidden_states(rows.idx, rows.prefix, rows.pad_mask, rows.cache)[:, -1, :]  # (b, C)
        nxt = sample_next(head(h), s.temperature, s.top_k, s.generator)  # (b,)
        _record(rows, nxt.tolist(), out, stop)  # one copy to the host per step, then plain Python
        if all(rows.done):
            break
        rows = _advance(rows, nxt, s)
    return out

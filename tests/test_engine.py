"""Batched generation (atm_min/engine.py) on tiny random students, GPT and Llama: left padding, the soft prompt,
stop tokens, the cache against recomputing, and dropping finished rows."""

import pytest
import torch

from atm_min import engine
from atm_min.engine import GenSettings, positions_and_mask
from atm_min.model import GPT, GPTConfig
from atm_min.students.llama import Llama, LlamaConfig
from test_model import V, sharpened, tokens


def tiny(kind="gpt", attn_impl="sdpa", seed=0):
    torch.manual_seed(seed)
    if kind == "gpt":
        model = GPT(GPTConfig(block_size=48, vocab_size=V, n_layer=2, n_head=2, n_embd=32, attn_impl=attn_impl))
    else:
        model = Llama(LlamaConfig(block_size=48, vocab_size=V, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                                  intermediate_size=48, attn_impl=attn_impl))
    return sharpened(model)


def left_pad(rows):
    """(B, T) ids and pad_mask for prompts of unequal length, padded on the left."""
    T = max(len(r) for r in rows)
    idx, mask = torch.zeros(len(rows), T, dtype=torch.long), torch.zeros(len(rows), T, dtype=torch.bool)
    for b, r in enumerate(rows):
        idx[b, T - len(r):], mask[b, T - len(r):] = torch.tensor(r), True
    return idx, mask


def prompts(lengths=(7, 3, 5, 4), with_prefix=True):
    rows = [tokens(1, n, seed=10 + n)[0].tolist() for n in lengths]
    prefix = torch.randn(len(rows), 2, 32, generator=torch.Generator().manual_seed(0)) if with_prefix else None
    return rows, prefix


STUDENTS = [("gpt", "sdpa"), ("gpt", "explicit"), ("llama", "sdpa"), ("llama", "explicit")]


def test_positions_and_mask_by_hand():
    """A soft prompt of 1, then row 0 with one pad in front of 2 tokens, row 1 of 3 tokens: padding counts for
    nothing, and a query sees the real keys up to itself (a pad: those and itself; no key sees a pad)."""
    mask = torch.tensor([[False, True, True], [True, True, True]])
    pos, att = positions_and_mask(torch.zeros(2, 3, dtype=torch.long), 1, mask)
    assert pos.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    assert att.shape == (2, 1, 4, 4)
    assert att[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]]
    assert att[1, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    pos, att = positions_and_mask(torch.zeros(2, 3, dtype=torch.long), 2)  # no padding: plain causal
    assert pos.tolist() == [[0, 1, 2, 3, 4]] and att is None
    with pytest.raises(ValueError, match="block_size"):
        positions_and_mask(torch.zeros(1, 5, dtype=torch.long), 2, block_size=6)


@pytest.mark.parametrize("with_prefix", [False, True])
@pytest.mark.parametrize("kind,attn_impl", STUDENTS)
def test_left_padded_batch_equals_rows_alone_and_no_cache(kind, attn_impl, with_prefix):
    model = tiny(kind, attn_impl)
    rows, prefix = prompts(with_prefix=with_prefix)
    idx, mask = left_pad(rows)
    cached = engine.generate(model, idx, GenSettings(15), prefix, mask)
    assert cached == engine.generate(model, idx, GenSettings(15, use_cache=False), prefix, mask)
    for b, r in enumerate(rows):  # every row continues exactly as it would alone
        alone = engine.generate(model, torch.tensor([r]), GenSettings(15), None if prefix is None else prefix[b:b + 1])
        assert cached[b] == alone[0]
    assert len(set(cached[0])) > 3  # a real continuation, not one token repeated


def free_run(model, rows, prefix, n=16):
    idx, mask = left_pad(rows)
    return engine.generate(model, idx, GenSettings(n), prefix, mask)


def stop_token(outs, early, never):
    """A token that row `early` emits at step >= 2 (and not before) and row `never` never emits, with the step."""
    return next((t, j) for j, t in enumerate(outs[early])
                if j >= 2 and t not in outs[early][:j] and t not in outs[never])


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_finished_row_stops_growing(kind, use_cache):
    model = tiny(kind)
    rows, _ = prompts((5, 3), with_prefix=False)
    ref = free_run(model, rows, None)
    stop, j = stop_token(ref, 0, 1)
    idx, mask = left_pad(rows)
    out = engine.generate(model, idx, GenSettings(16, stop_ids=[stop], use_cache=use_cache), None, mask)
    assert out[0] == ref[0][:j + 1]  # ends with its stop token, then nothing more
    assert out[1] == ref[1]  # the other row is unaffected and runs to max_new_tokens
    # When every row has stopped, generation ends (stop ids may come as a tensor too).
    alone = engine.generate(model, idx[:1, -5:], GenSettings(16, stop_ids=torch.tensor([stop]), use_cache=use_cache))
    assert alone[0] == ref[0][:j + 1]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("kind,attn_impl", STUDENTS)
def test_dropping_finished_rows_changes_no_token(kind, attn_impl, use_cache, monkeypatch):
    """Greedy, prompts of mixed lengths, a soft prompt, rows stopping at different steps (the first rows first,
    so the rows after them move up): dropping the stopped rows gives every row the tokens it gets without
    dropping, and the batch does shrink."""
    model = tiny(kind, attn_impl)
    rows, prefix = prompts()
    ref = free_run(model, rows, prefix)
    stops = [stop_token(ref, 0, 3)[0], stop_token(ref, 1, 3)[0]]
    idx, mask = left_pad(rows)
    s = GenSettings(16, stop_ids=stops, use_cache=use_cache)
    kept = engine.generate(model, idx, s, prefix, mask)
    sizes, real = [], model.hidden_states

    def spy(idx, *a):
        sizes.append(idx.size(0))
        return real(idx, *a)

    monkeypatch.setattr(model, "hidden_states", spy)
    dropped = engine.generate(model, idx, GenSettings(16, stop_ids=stops, use_cache=use_cache, drop_finished=True),
                              prefix, mask)
    assert dropped == kept
    assert len(kept[3]) == 16 and min(len(o) for o in kept[:2]) < 16
    assert sizes[0] == 4 and sizes[-1] < 4 and sizes == sorted(sizes, reverse=True)


def test_block_size_caps_the_budget():
    model = tiny()  # block_size 48
    out = engine.generate(model, tokens(1, 40), GenSettings(100))
    assert len(out[0]) == 8  # stops at block_size instead of failing half way
    out = engine.generate(model, tokens(1, 40), GenSettings(100), prefix_embeds=torch.zeros(1, 3, 32))
    assert len(out[0]) == 5  # the soft prompt takes positions too


def test_sampling_with_cache_equals_without():
    model = tiny()
    idx = tokens(2, 6)
    a = engine.generate(model, idx, GenSettings(10, temperature=1.0, generator=torch.Generator().manual_seed(3)))
    b = engine.generate(model, idx, GenSettings(10, temperature=1.0, generator=torch.Generator().manual_seed(3),
                                                use_cache=False))
    assert a == b


def test_top_k_sampling_draws_only_the_top_k():
    model = tiny()
    idx = tokens(1, 6).expand(400, 6)
    top3 = set(model(idx[:1])[0][0, -1].topk(3).indices.tolist())
    out = engine.generate(model, idx, GenSettings(1, temperature=3.0, top_k=3,
                                                  generator=torch.Generator().manual_seed(0)))
    seen = {o[0] for o in out}
    assert seen <= top3 and len(seen) > 1  # sampled (not greedy), and only from the top 3
    again = engine.generate(model, idx, GenSettings(1, temperature=3.0, top_k=3,
                                                    generator=torch.Generator().manual_seed(0)))
    assert again == out  # the generator makes sampling reproducible

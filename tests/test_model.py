"""Behaviour of the GPT student on tiny random models (CPU, fp32, a few seconds in all)."""

import pytest
import torch
import torch.nn.functional as F

from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.machinery.gpt2 import PEAK_FLOPS
from atm_min.model import GPT, GPTConfig, KVCache

V = 61  # a vocabulary size nothing else uses, so a wrong axis shows up in a shape


def tiny(attn_impl="sdpa", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(block_size=48, vocab_size=V, n_layer=2, n_head=2, n_embd=32, attn_impl=attn_impl)
    return sharpened(GPT(GPTConfig(**{**cfg, **kw})))


def sharpened(model):
    """GPT-2's init (std 0.02) gives nearly flat logits; a larger scale makes greedy choices clear-cut, so
    token-for-token comparisons test the model and not float rounding between near-ties. In eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return model.eval()


def tokens(*shape, seed=1):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def left_pad(rows, pad_id=0):
    """(B, T) ids and pad_mask for prompts of unequal length, padded on the left."""
    T = max(len(r) for r in rows)
    idx = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, r in enumerate(rows):
        idx[b, T - len(r):] = torch.tensor(r)
        mask[b, T - len(r):] = True
    return idx, mask


# ---------------------------------------------------------------------------------------------- forward

def test_logits_shape_and_loss():
    model = tiny()
    idx = tokens(3, 10)
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V) and loss is None
    logits, loss = model(idx, targets=tokens(3, 10, seed=2))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_ignored_targets():
    model = tiny()
    idx, targets = tokens(2, 12), tokens(2, 12, seed=2)
    targets[0, :5] = -1  # a "prompt" that gets no loss
    targets[:, -1] = -1
    logits, loss = model(idx, targets=targets)
    keep = targets != -1
    assert torch.equal(logits, model(idx)[0][keep])  # (N, V): the kept positions' logits only
    manual = F.cross_entropy(logits, targets[keep])  # the mean over the kept positions only
    assert torch.allclose(loss, manual, atol=1e-6)
    # The last position's target is ignored, and (causality) its input token only affects its own logits:
    # changing that token must leave the loss unchanged; changing an earlier one must not.
    idx2 = idx.clone()
    idx2[:, -1] = (idx2[:, -1] + 1) % V
    assert torch.equal(model(idx2, targets=targets)[1], loss)
    idx3 = idx.clone()
    idx3[:, 6] = (idx3[:, 6] + 1) % V
    assert not torch.allclose(model(idx3, targets=targets)[1], loss)
    # Every target ignored: no positions, no loss (nan, PyTorch's mean over nothing), never silently zero.
    assert torch.isnan(model(idx, targets=torch.full_like(targets, -1))[1])


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_forward_contract_is_the_same_for_both_students(kind):
    """Without targets: (B, T, V) logits and no loss. With targets: the logits of the N positions that have one,
    (N, V), in row-major order, and the mean cross-entropy over them."""
    from atm_min.students.llama import Llama, LlamaConfig
    torch.manual_seed(0)
    model = tiny() if kind == "gpt" else Llama(LlamaConfig(block_size=48, vocab_size=V, n_layer=2, n_head=4,
                                                           n_kv_head=2, n_embd=32, intermediate_size=48)).eval()
    idx, targets = tokens(2, 9), tokens(2, 9, seed=2)
    targets[0, :4], targets[1, :6] = -1, -1  # prompts of different lengths: no loss there
    full, none = model(idx)
    assert full.shape == (2, 9, V) and none is None
    logits, loss = model(idx, targets=targets)
    keep = targets != -1
    assert logits.shape == (int(keep.sum()), V)
    assert torch.allclose(logits, full[keep], atol=1e-5)
    assert torch.allclose(loss, F.cross_entropy(full[keep], targets[keep]), atol=1e-5)


def test_prefix_embeds_logits_cover_tokens_and_positions_follow_prefix():
    model = tiny()
    idx = tokens(2, 9)
    full, _ = model(idx)
    # A prefix made of the first 4 tokens' own embeddings must give exactly the logits of feeding those
    # tokens: this checks that logits cover only the token positions and that tokens are numbered after it.
    prefix = model.transformer.wte(idx[:, :4])  # (B, P, C)
    logits, _ = model(idx[:, 4:], prefix_embeds=prefix)
    assert logits.shape == (2, 5, V)
    assert torch.allclose(logits, full[:, 4:], atol=1e-5)
    # A different prefix changes them; an empty one is no prefix at all.
    other, _ = model(idx[:, 4:], prefix_embeds=torch.randn_like(prefix))
    assert not torch.allclose(other, logits, atol=1e-3)
    empty, _ = model(idx, prefix_embeds=prefix[:, :0])
    assert torch.allclose(empty, full, atol=1e-6)
    # The loss with a prefix uses the token positions' targets.
    targets = tokens(2, 5, seed=3)
    _, loss = model(idx[:, 4:], targets=targets, prefix_embeds=prefix)
    assert torch.allclose(loss, F.cross_entropy(full[:, 4:].reshape(-1, V), targets.reshape(-1)), atol=1e-5)


@pytest.mark.parametrize("with_prefix", [False, True])
def test_left_padding_does_not_change_real_logits(with_prefix):
    model = tiny()
    rows = [tokens(1, 7, seed=3)[0].tolist(),
            tokens(1, 4, seed=4)[0].tolist()]
    prefix = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(5)) if with_prefix else None
    idx, mask = left_pad(rows, pad_id=5)
    logits, _ = model(idx, prefix_embeds=prefix, pad_mask=mask)
    for b, r in enumerate(rows):
        alone, _ = model(torch.tensor([r]), prefix_embeds=None if prefix is None else prefix[b:b + 1])
        assert torch.allclose(logits[b, mask[b]], alone[0], atol=1e-5)
    # The pad token's id is irrelevant.
    idx2 = torch.where(mask, idx, torch.full_like(idx, 17))
    logits2, _ = model(idx2, prefix_embeds=prefix, pad_mask=mask)
    assert torch.allclose(logits2[mask], logits[mask], atol=1e-6)


@pytest.mark.parametrize("padded", [False, True])
def test_explicit_and_sdpa_agree_on_logits_and_gradients(padded):
    a, b = tiny("sdpa"), tiny("explicit")
    b.load_state_dict(a.state_dict())
    idx, targets = tokens(3, 11), tokens(3, 11, seed=2)
    kw = {}
    if padded:
        idx, mask = left_pad([tokens(1, n, seed=n)[0].tolist() for n in (11, 6, 9)])
        targets = torch.where(mask, targets, -1)
        kw = dict(pad_mask=mask, prefix_embeds=torch.randn(3, 2, 32, generator=torch.Generator().manual_seed(0)))
    out = []
    for model in (a, b):
        model.zero_grad()
        logits, loss = model(idx, targets=targets, **kw)
        loss.backward()
        out.append((logits, {n: p.grad for n, p in model.named_parameters()}))
    (la, ga), (lb, gb) = out
    assert torch.allclose(la, lb, atol=1e-5, rtol=1e-5)
    assert ga.keys() == gb.keys()
    for n in ga:
        assert torch.allclose(ga[n], gb[n], atol=1e-5, rtol=1e-4), n


def test_block_size_overflow_raises():
    model = tiny()  # block_size 48
    model(tokens(1, 48))
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(1, 49))
    with pytest.raises(ValueError, match="block_size"):  # the soft prompt takes positions too
        model(tokens(1, 45), prefix_embeds=torch.zeros(1, 4, 32))
    cache = KVCache((2, 1, 2, 60, 16), "cpu", torch.float32)
    model(tokens(1, 40), cache=cache)
    with pytest.raises(ValueError, match="block_size"):  # cached positions count
        model(tokens(1, 9), cache=cache)


# ---------------------------------------------------------------------------------------------- generate
# The model's own generate: equal-length prompts, no stop tokens. Batched generation (padding, soft prompts,
# stop tokens, the no-cache reference) is atm_min/engine.py: tests/test_engine.py.

def test_greedy_is_deterministic_and_is_argmax():
    model = tiny()
    idx = tokens(1, 5)
    a = model.generate(idx, 12, temperature=0)
    b = model.generate(idx, 12, temperature=0)
    assert torch.equal(a, b) and a.shape == (1, 17) and torch.equal(a[:, :5], idx)
    for t in range(5, 17):  # each new token is the argmax of a full forward over everything before it
        assert int(model(a[:, :t])[0][0, -1].argmax()) == a[0, t]


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_generate_equals_the_engine_with_and_without_cache(attn_impl):
    model = tiny(attn_impl)
    idx = tokens(2, 6)
    new = model.generate(idx, 20, temperature=0)[:, 6:].tolist()
    assert new == engine.generate(model, idx, GenSettings(20))
    assert new == engine.generate(model, idx, GenSettings(20, use_cache=False))
    assert len(set(new[0])) > 3  # a real continuation, not one token repeated


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_cache_fed_in_chunks_equals_one_forward(attn_impl, padded):
    model = tiny(attn_impl)
    idx, mask = tokens(2, 12), None
    if padded:
        idx, mask = left_pad([tokens(1, 12, seed=6)[0].tolist(), tokens(1, 9, seed=7)[0].tolist()])
    full, _ = model(idx, pad_mask=mask)
    cache = KVCache((2, 2, 2, 12, 16), "cpu", torch.float32)
    parts = []
    for a, b in ((0, 5), (5, 11), (11, 12)):  # a prompt chunk, a multi-token chunk, then one token
        logits, _ = model(idx[:, a:b], pad_mask=None if mask is None else mask[:, a:b], cache=cache)
        parts.append(logits)
    real = slice(None) if mask is None else mask
    assert torch.allclose(torch.cat(parts, dim=1)[real], full[real], atol=1e-5)


def test_top_k_sampling_only_produces_top_k_tokens():
    model = tiny()
    idx = tokens(1, 6).expand(400, 6)
    top3 = set(model(idx[:1])[0][0, -1].topk(3).indices.tolist())
    torch.manual_seed(0)
    out = model.generate(idx, 1, temperature=3.0, top_k=3)[:, -1]
    seen = set(out.tolist())
    assert seen <= top3 and len(seen) > 1  # sampled (not greedy), and only from the top 3
    torch.manual_seed(0)  # the global seed makes it reproducible (the engine takes a generator too)
    assert torch.equal(model.generate(idx, 1, temperature=3.0, top_k=3)[:, -1], out)


# ---------------------------------------------------------------------------------------------- FLOPs

def test_flops_per_token_and_mfu():
    with torch.device("meta"):  # GPT-2 124M shapes without allocating or initialising it
        model = GPT(GPTConfig())
    N = 124_439_808 - 1024 * 768  # GPT-2 small's parameters without the position table
    assert model.num_params() == N
    assert model.flops_per_token() == 6 * N + 12 * 12 * 12 * 64 * 1024
    assert model.flops_per_token(256) == 6 * N + 12 * 12 * 12 * 64 * 256
    tps = 1e5
    assert model.estimate_mfu(tps, PEAK_FLOPS["H100 SXM bf16"], 256) == pytest.approx(
        model.flops_per_token(256) * tps / 989e12)

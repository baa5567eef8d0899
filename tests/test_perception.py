"""The perception module: shapes, padding, features, and that it is wired into the student (gradients, prefix)."""

import pytest
import torch

from atm_min.batches import perception_inputs, question_inputs
from atm_min.model import GPT, GPTConfig
from atm_min.perception import N_FEATURES, perceive, question_features
from atm_min.tokenizer import byte_tokenizer
from tiny import variant_perception

C, P = 32, 3




def perception(seed=0, inputs="both"):
    torch.manual_seed(seed)
    m = variant_perception(C, n_prefix=P, n_layer=2, n_head=4, perc_input=inputs)
    # a larger scale than out_proj's std 0.02 makes differences easy to see
    with torch.no_grad():
        m.out_proj.weight.normal_(0, 0.5)
    return m.eval()


def student(seed=0, block_size=64):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=257, n_layer=1, n_head=2, n_embd=C)).eval()


def inputs(B=4, T=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    q_emb = torch.randn(B, T, C, generator=g)
    lengths = torch.tensor([T, T - 2, 1, T - 4])[:B]
    q_mask = torch.arange(T)[None, :] < lengths[:, None]  # right padding, as perception_inputs makes it
    feats = torch.rand(B, N_FEATURES, generator=g)
    return q_emb, q_mask, feats


def test_output_shapes():
    prefix, logit = perception()(*inputs())
    assert prefix.shape == (4, P, C) and logit.shape == (4,)
    assert torch.isfinite(prefix).all() and torch.isfinite(logit).all()


def test_padding_is_masked():
    """Whatever sits at padded positions cannot change the output: attention never looks there."""
    m = perception()
    q_emb, q_mask, feats = inputs()
    prefix, logit = m(q_emb, q_mask, feats)
    noisy = q_emb.clone()
    noisy[~q_mask] = torch.randn(int((~q_mask).sum()), C) * 100
    prefix2, logit2 = m(noisy, q_mask, feats)
    assert torch.allclose(prefix, prefix2, atol=1e-6) and torch.allclose(logit, logit2, atol=1e-6)
    # ...while a real position does change it (the test above is not vacuous)
    noisy[0, 0] = torch.randn(C)  # (not a constant shift: the LayerNorm on the keys would remove that)
    prefix3, _ = m(noisy, q_mask, feats)
    assert not torch.allclose(prefix[0], prefix3[0], atol=1e-4)
    assert torch.allclose(prefix[1:], prefix3[1:], atol=1e-6)  # rows are independent


def test_padding_length_does_not_matter():
    """The same question padded to a longer batch gives the same prefix (as in a batch of mixed lengths)."""
    m = perception()
    q_emb, q_mask, feats = inputs(B=1)
    longer = torch.cat([q_emb, torch.randn(1, 5, C)], dim=1)
    longer_mask = torch.cat([q_mask, torch.zeros(1, 5, dtype=torch.bool)], dim=1)
    a, la = m(q_emb, q_mask, feats)
    b, lb = m(longer, longer_mask, feats)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(la, lb, atol=1e-6)


def test_features_matter():
    m = perception()
    q_emb, q_mask, feats = inputs()
    prefix, logit = m(q_emb, q_mask, feats)
    prefix2, logit2 = m(q_emb, q_mask, feats + 1.0)
    assert not torch.allclose(prefix, prefix2, atol=1e-4)
    assert not torch.allclose(logit, logit2, atol=1e-4)


def test_question_features():
    f = question_features("Number 3 in 4 5 6 7?")
    assert len(f) == N_FEATURES and all(0 <= x < 2 for x in f)
    longer = question_features("Number 3 in 4 5 6 7 8 9 1 2 3 4 5 6?")
    assert all(b > a for a, b in zip(f, longer))  # more words, characters and numbers
    assert question_features("no digits here")[2] == 0.0


def test_aux_loss_trains_the_perception_but_not_the_student_embeddings():
    """The aux classification loss trains the queries; the question embeddings it reads are detached, so it
    cannot pull the student's vocabulary around (the LM loss still reaches the perception via the prefix)."""
    tok = byte_tokenizer()
    gpt, m = student(), perception()
    m.train()
    rows, feats = zip(*(question_inputs(tok, q) for q in ["Start at 3, apply i d: result?", "Number 2 in 1 2 3?"]))
    prefix, logit = perceive(m, gpt, *perception_inputs(rows, feats, "cpu"))
    # the aux classification loss alone:
    torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor([1.0, 0.0])).backward()
    assert m.queries.grad is not None and m.queries.grad.abs().sum() > 0
    wte_grad = gpt.transformer.wte.weight.grad
    assert wte_grad is None or wte_grad.abs().sum() == 0
    # the LM loss through the prefix:
    m.zero_grad(), gpt.zero_grad()
    prefix, _ = perceive(m, gpt, *perception_inputs(rows, feats, "cpu"))
    idx = torch.randint(0, 257, (2, 10))
    _, loss = gpt(idx, idx, prefix_embeds=prefix)
    loss.backward()
    assert m.queries.grad.abs().sum() > 0 and m.out_proj.weight.grad.abs().sum() > 0


def test_student_logits_shape_unchanged_by_prefix():
    gpt, m = student(), perception()
    idx = torch.randint(0, 257, (4, 9))
    prefix, _ = m(*inputs())
    logits, _ = gpt(idx, prefix_embeds=prefix)
    plain, _ = gpt(idx)
    assert logits.shape == plain.shape == (4, 9, 257)  # the prefix takes positions, but produces no logits
    assert not torch.allclose(logits, plain, atol=1e-4)  # and it does steer the student


def test_prefix_counts_against_the_context():
    gpt, m = student(block_size=10), perception()
    prefix, _ = m(*inputs(B=1))
    gpt(torch.zeros(1, 10 - P, dtype=torch.long), prefix_embeds=prefix)  # fits exactly
    with pytest.raises(ValueError, match="block_size"):
        gpt(torch.zeros(1, 10 - P + 1, dtype=torch.long), prefix_embeds=prefix)


def test_attention_weights_are_returned_per_block():
    """return_att gives each block's (B, n_head, P, 1+T) weights: rows sum to 1, padding gets 0, and the
    outputs are the same as without it."""
    m = perception()
    q_emb, q_mask, feats = inputs()
    prefix, logit, atts = m(q_emb, q_mask, feats, return_att=True)
    a, b = m(q_emb, q_mask, feats)
    assert torch.equal(prefix, a) and torch.equal(logit, b)
    assert len(atts) == 2  # n_layer=2
    for att in atts:
        assert att.shape == (4, 4, P, 1 + 7)
        assert torch.allclose(att.sum(-1), torch.ones(4, 4, P), atol=1e-6)
        assert (att[:, :, :, 1:][~q_mask[:, None, None, :].expand(-1, 4, P, -1)] == 0).all()
    # an ablation that hides the question tokens leaves the feature "token" all the weight
    _, _, atts = perception(inputs="features")(q_emb, q_mask, feats, return_att=True)
    assert torch.allclose(atts[0][..., 0], torch.ones(4, 4, P))
    gpt = student()
    rows, f = zip(*(question_inputs(byte_tokenizer(), q) for q in ["Is 74 even?", "Start at 1, apply d: result?"]))
    _, _, atts = perceive(m, gpt, *perception_inputs(rows, f, "cpu"), return_att=True)
    assert atts[0].shape == (2, 4, P, 1 + len(rows[1]))


# ------------------------------------------------------------------------------------------------ ablations

def test_features_only_perception_ignores_the_question_tokens():
    """perc_input="features": the queries see the feature token only, so other words of the same shape change
    nothing; the default sees both and does change."""
    q_emb, q_mask, feats = inputs()
    other = torch.randn_like(q_emb)
    feat_only, both = perception(inputs="features"), perception(inputs="both")
    assert torch.allclose(feat_only(q_emb, q_mask, feats)[0], feat_only(other, q_mask, feats)[0])
    assert not torch.allclose(both(q_emb, q_mask, feats)[0], both(other, q_mask, feats)[0])


def test_tokens_only_perception_ignores_the_features():
    q_emb, q_mask, feats = inputs()
    tok_only, both = perception(inputs="tokens"), perception(inputs="both")
    assert torch.allclose(tok_only(q_emb, q_mask, feats)[0], tok_only(q_emb, q_mask, feats + 1)[0])
    assert not torch.allclose(both(q_emb, q_mask, feats)[0], both(q_emb, q_mask, feats + 1)[0])

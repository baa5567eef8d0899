"""Machinery: the tokenizers of Llama-family checkpoints -- from a Hugging Face `tokenizer.json` or from the
metadata of a GGUF file (byte-level BPE, "gpt2" in llama.cpp's words: vocab, merges, token types, special ids).

Both give an `HFTokenizer`, which has the interface of atm_min/tokenizer.py's Tokenizer (name, encode, decode,
eot_id, vocab_size, newline_ids, and token bytes for the trace), so evaluation, the formats, sample.py and the
trace use it unchanged.

Built with the `tokenizers` library (imported lazily: `pip install tokenizers`). Why it and not tiktoken, which
the GPT-2 tokenizer uses: it is what transformers itself runs for these files, so a tokenizer.json loads with
exact parity and nothing to translate; and these vocabularies come with their merges as a list of pairs, which
`tokenizers` takes as given, while tiktoken wants ranks over raw bytes and would have to re-derive the merge
order from the vocabulary (subtly wrong wherever a merge's rank differs from its token's id).

Differences from the GPT-2 Tokenizer, both deliberate:
- special tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ...) written in the text encode as single ids,
  as in the model's own tokenizer: chat templates are text with these markers in it.
- the stop token (`eot_id`) is the checkpoint's end-of-sequence token: `<|im_end|>` for a chat model such as
  SmolLM2-Instruct, `<|endoftext|>` for a base model; it is also the padding id, and decode drops it.
No begin-of-sequence token is added by encode (the core concatenates encoded pieces); `bos_id` says which it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import TokenizerError

INSTALL_HINT = "pip install tokenizers"
EOT = "<|endoftext|>"

# GGUF token types (llama.cpp's llama_token_type): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
CONTROL, USER_DEFINED = 3, 4

# How text is cut before BPE, by the GGUF's `tokenizer.ggml.pre`: the regexes llama.cpp uses for each name
# (llama-vocab.cpp), which are those of the model's own tokenizer.json.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# name -> (split digits one by one first?, regex, whole-word tokens before merges?). SmolLM's vocabulary (from
# StarCoder's) was learnt on text whose digits were split apart first: its tokenizer.json has
# Digits(individual_digits) before the GPT-2 regex. Llama 3's takes a piece that is a token as it is
# (tokenizer.json's ignore_merges), which its merges alone do not always rebuild.
PRE_TOKENIZERS = {
    "default": (False, GPT2_SPLIT, False), "gpt2": (False, GPT2_SPLIT, False), "gpt-2": (False, GPT2_SPLIT, False),
    "smollm": (True, GPT2_SPLIT, False), "starcoder": (True, GPT2_SPLIT, False), "refact": (True, GPT2_SPLIT, False),
    "llama-bpe": (False, LLAMA3_SPLIT, True), "llama3": (False, LLAMA3_SPLIT, True),
    "llama-v3": (False, LLAMA3_SPLIT, True), "smaug-bpe": (False, LLAMA3_SPLIT, False),
    "qwen2": (False, QWEN2_SPLIT, False), "deepseek-r1-qwen": (False, QWEN2_SPLIT, False),
}


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:
        raise TokenizerError(f"this checkpoint's tokenizer needs the `tokenizers` package: {INSTALL_HINT}") from e
    return tokenizers


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: byte-level BPE vocabularies spell every byte as one of these
    256 characters (a space is "Ġ", a newline "Ċ"), so that tokens are printable strings."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class HFTokenizer:
    """A `tokenizers.Tokenizer` behind the interface of atm_min/tokenizer.py's Tokenizer."""

    def __init__(self, name: str, backend, eot_id: int, bos_id: int | None = None, chat_template: str | None = None):
        self.name = name
        self.backend = backend
        self.eot_id = int(eot_id)
        self.bos_id = bos_id
        self.chat_template = chat_template  # Jinja text from the checkpoint, for chat_prompt
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self.enc = self  # the trace reads a token's bytes through tok.enc.decode_single_token_bytes, as with tiktoken
        added = backend.get_added_tokens_decoder().values()
        self.special_ids = sorted(backend.token_to_id(t.content) for t in added if t.special)
        literal = {t.content for t in added}  # added tokens stand for their text as it is, not in the byte alphabet
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        self._bytes = []  # id -> the bytes it stands for
        for i in range(self.vocab_size):
            t = backend.id_to_token(i) or ""
            self._bytes.append(t.encode() if t in literal or not all(c in byte_of for c in t)
                               else bytes(byte_of[c] for c in t))
        # Ids whose text contains a newline: a post-thinking answer stops at the first of these (as in Tokenizer).
        self.newline_ids = [i for i, b in enumerate(self._bytes) if b"\n" in b and i != self.eot_id]

    def encode(self, text: str) -> list[int]:
        # add_special_tokens=False: no BOS/EOS from a post-processor; special tokens in the text stay single ids.
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.backend.decode([int(i) for i in ids if int(i) != self.eot_id], skip_special_tokens=False)

    def decode_single_token_bytes(self, i: int) -> bytes:
        return self._bytes[int(i)]

    def chat_prompt(self, messages: list[dict]) -> str:
        """The checkpoint's chat template applied to [{"role": ..., "content": ...}, ...], ending where the
        assistant's answer starts (as transformers' apply_chat_template(..., add_generation_prompt=True)).
        Needs jinja2, which the templates are written in."""
        if not self.chat_template:
            raise TokenizerError(f"{self.name} has no chat template")
        try:
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError as e:
            raise TokenizerError("chat templates need the `jinja2` package: pip install jinja2") from e
        # The template is data from the checkpoint: rendered in jinja2's sandbox, as transformers does.
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message):  # templates call it on conversations they refuse
            raise TokenizerError(f"{self.name}'s chat template: {message}")
        env.globals["raise_exception"] = raise_exception
        special = {"bos_token": self.bos_id, "eos_token": self.eot_id}
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=True,
            **{k: self.backend.id_to_token(v) for k, v in special.items() if v is not None})

    def __repr__(self):
        return f"HFTokenizer({self.name!r}, vocab_size={self.vocab_size}, eot={self.backend.id_to_token(self.eot_id)!r})"


# ----------------------------------------------------------------------------------------------------------
# From a Hugging Face directory (tokenizer.json)

def _token_text(t) -> str | None:
    """tokenizer_config.json writes a special token as a string or as {"content": ...}."""
    return t.get("content") if isinstance(t, dict) else t


def from_tokenizer_json(path, eos_token: str | None = None, name: str | None = None) -> HFTokenizer:
    """The tokenizer of a Hugging Face checkpoint: `path` is its directory or its tokenizer.json. The stop token:
    `eos_token` if given, else tokenizer_config.json's eos_token, else `<|endoftext|>`."""
    tk = _tokenizers()
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise TokenizerError(f"no tokenizer.json in {path}: Llama-family checkpoints need their tokenizer.json "
                             "(the fast-tokenizer file) next to config.json")
    try:
        backend = tk.Tokenizer.from_file(str(file))
    except Exception as e:
        raise TokenizerError(f"could not read {file} as a tokenizer.json ({type(e).__name__}: {e})") from e
    config = {}
    if (file.parent / "tokenizer_config.json").is_file():
        config = json.loads((file.parent / "tokenizer_config.json").read_text())
    eos = eos_token or _token_text(config.get("eos_token")) or EOT
    bos = _token_text(config.get("bos_token"))
    eot_id = backend.token_to_id(eos)
    if eot_id is None:
        raise TokenizerError(f"{file}: the end-of-sequence token {eos!r} is not in the vocabulary")
    template = config.get("chat_template")
    if (file.parent / "chat_template.jinja").is_file():  # newer checkpoints keep it in a file of its own
        template = (file.parent / "chat_template.jinja").read_text()
    return HFTokenizer(name or f"hf:{file.parent.name}", backend, eot_id,
                       backend.token_to_id(bos) if bos else None, template if isinstance(template, str) else None)


# ----------------------------------------------------------------------------------------------------------
# From GGUF metadata

def from_gguf_metadata(meta: dict, name: str = "gguf") -> HFTokenizer:
    """The byte-level BPE a GGUF file describes. `meta` maps llama.cpp's keys to values:
    tokenizer.ggml.model ("gpt2"), .pre, .tokens, .merges, .token_type, .eos_token_id, .bos_token_id."""
    tk = _tokenizers()
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise TokenizerError(f"GGUF tokenizer {kind!r} is not supported: supported: byte-level BPE "
                             "(tokenizer.ggml.model 'gpt2', with its merges)")
    tokens, merges = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.merges")
    if not tokens or not merges:
        raise TokenizerError("the GGUF file has no tokenizer.ggml.tokens or tokenizer.ggml.merges")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise TokenizerError(f"GGUF pre-tokenizer {pre!r} is not supported: supported: {', '.join(PRE_TOKENIZERS)}")

    vocab = {t: i for i, t in enumerate(tokens)}
    # A merge is "left right": spaces never occur inside a byte-level token (a space is spelt "Ġ").
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    digits, regex, whole = PRE_TOKENIZERS[pre]
    backend = tk.Tokenizer(tk.models.BPE(vocab, pairs, fuse_unk=False, byte_fallback=False, ignore_merges=whole))
    steps = [tk.pre_tokenizers.Digits(individual_digits=True)] if digits else []
    steps += [tk.pre_tokenizers.Split(tk.Regex(regex), behavior="isolated"),
              tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    backend.pre_tokenizer = tk.pre_tokenizers.Sequence(steps)
    backend.decoder = tk.decoders.ByteLevel()
    # Control tokens (<|im_start|>, <|endoftext|>, ...) and user-defined ones match whole in the text, as in
    # llama.cpp; only control tokens are "special".
    types = list(meta.get("tokenizer.ggml.token_type") or [])
    backend.add_special_tokens([tk.AddedToken(t, normalized=False, special=True)
                                for t, ty in zip(tokens, types) if ty == CONTROL])
    backend.add_tokens([tk.AddedToken(t, normalized=False, special=False)
                        for t, ty in zip(tokens, types) if ty == USER_DEFINED])

    eos = meta.get("tokenizer.ggml.eos_token_id", vocab.get(EOT))
    if eos is None:
        raise TokenizerError("the GGUF file names no end-of-sequence token (tokenizer.ggml.eos_token_id) and has "
                             f"no {EOT!r}")
    return HFTokenizer(name, backend, int(eos), meta.get("tokenizer.ggml.bos_token_id"),
                       meta.get("tokenizer.chat_template"))

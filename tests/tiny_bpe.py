"""A tiny byte-level BPE, trained here with `tokenizers`, for the tokenizer and GGUF tests: the same kind of
vocabulary as SmolLM2's (byte alphabet, merges, chat special tokens first), small enough to build in a second."""

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Reasoning: 12 + 30 = 42. Answer: 42",
    "Answer: yes. Reasoning: the number 1234 is even because its last digit 4 is even.",
    "What is the capital of France? The capital of France is Paris.",
    "Tom has 3 apples and buys 25 more.  How many apples does he have now?\n\nHe has 28 apples.",
    "héllo wörld, naïve café: 😀 日本語 テキスト",
    "Total:  25 apples,  then   7 more.",
] * 20
TEXTS = [  # what the tests encode: numbers, runs of spaces and newlines, unicode, chat markers
    "Reasoning: 12 + 30 = 42. Answer: 42", "a  1  22   333\n\n 4", "Tom  has\t3 apples.\n\nHow many?",
    "héllo wörld 😀 日本語, unseen words: zebra quixotic", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
    "x<|endoftext|>y", "", " ", "\n",
]


def train(digits: bool = False):
    """(tokenizers.Tokenizer, tokens in id order, merges as "a b" strings). digits: split digits one by one
    before the GPT-2 regex, as SmolLM2's tokenizer.json does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    import json
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tok, tokens, merges


def gguf_metadata(tokens, merges, pre="gpt2", eos="<|im_end|>") -> dict:
    """The tokenizer.ggml.* metadata llama.cpp's converter writes for such a vocabulary."""
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.merges": merges,
            "tokenizer.ggml.token_type": [3 if t in SPECIALS else 1 for t in tokens],
            "tokenizer.ggml.bos_token_id": tokens.index("<|im_start|>"),
            "tokenizer.ggml.eos_token_id": tokens.index(eos)}


def tiny_llama_dir(d):
    """Fill the folder d with a tiny random Llama saved by transformers (seed 0) and this tiny BPE as its
    tokenizer.json, <|im_end|> its end-of-text: a Hugging Face checkpoint directory the pipeline can load."""
    import json

    import torch
    import transformers
    tok, tokens, _ = train(digits=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d)
    return d

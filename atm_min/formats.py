"""The text formats: THE one place where prompts and targets are written. Training, sampling and evaluation all
come through here, so a template change happens once.

    prompt        "Q: {question}\\n"
    pre target    "Reasoning: {rationale} Answer: {answer}" + <|endoftext|>     (think, then answer)
    post target   "Answer: {answer}\\nReasoning: {rationale}" + <|endoftext|>   (answer, then explain)
    answer target "Answer: {answer}" + <|endoftext|>                            (answer only: the "vanilla"
                  fine-tuning baseline of Fine-tune-CoT and distilling step-by-step; no rationale at all)

Question, rationale and answer are whitespace-normalised first (every run of whitespace, newlines included, becomes
one space), so the ONLY newline inside a target is the one that ends a post-thinking answer. Generation stops at the
first newline token or <|endoftext|>: a post-thinking model is therefore done right after its answer (the rationale
is never generated at test time), and a pre-thinking rationale is never cut short.

Prompt and target are tokenised separately, exactly as at inference time, where the prompt is encoded alone and the
model continues it. The loss covers the target tokens and the final <|endoftext|>, never the prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .answers import ANSWER_MARK, REASON_MARK
from .examples import DataError, Example

MODES = ("pre", "post")  # the two thinking formats; "answer" (no rationale) is a baseline, not a mode ATM picks
TARGET_FORMATS = MODES + ("answer",)
IGNORE_INDEX = -1  # targets equal to this are skipped by the loss (F.cross_entropy(..., ignore_index=-1))

__all__ = ["MODES", "TARGET_FORMATS", "ANSWER_MARK", "REASON_MARK", "IGNORE_INDEX", "normalize_ws", "format_prompt",
           "format_target", "encode", "make_xy", "length_report", "check_lengths"]


def normalize_ws(text: str) -> str:
    """Every run of whitespace (spaces, tabs, newlines) -> one space; stripped."""
    return " ".join(text.split())


def _check_mode(mode: str) -> None:
    if mode not in TARGET_FORMATS:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(TARGET_FORMATS)}")


def format_prompt(question: str) -> str:
    return f"Q: {normalize_ws(question)}\n"


def format_target(example: Example | Mapping[str, str], mode: str) -> str:
    """The text the student learns to continue the prompt with (without <|endoftext|>). `example` is an Example or
    any mapping with "rationale" and "answer" keys."""
    _check_mode(mode)
    if isinstance(example, Mapping):
        rationale, answer = example["rationale"], example["answer"]
    else:
        rationale, answer = example.rationale, example.answer
    rationale, answer = normalize_ws(rationale), normalize_ws(answer)
    if mode == "pre":
        return f"{REASON_MARK} {rationale} {ANSWER_MARK} {answer}"
    if mode == "answer":
        return f"{ANSWER_MARK} {answer}"
    return f"{ANSWER_MARK} {answer}\n{REASON_MARK} {rationale}"


def _question(example: Example | Mapping[str, str]) -> str:
    return example["question"] if isinstance(example, Mapping) else example.question


def encode(tok, example: Example | Mapping[str, str], mode: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, target_ids); target_ids ends with tok.eot_id."""
    prompt_ids = tok.encode(format_prompt(_question(example)))
    target_ids = tok.encode(format_target(example, mode)) + [tok.eot_id]
    return prompt_ids, target_ids


def make_xy(prompt_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Next-token pairs for one example: x = seq[:-1], y = seq[1:] with seq = prompt + target, and y = -1 wherever
    the token to predict is still part of the prompt (the prompt is given, not learned)."""
    if not prompt_ids or not target_ids:
        raise ValueError("make_xy needs a non-empty prompt and a non-empty target")
    seq = list(prompt_ids) + list(target_ids)
    x, y = seq[:-1], seq[1:]
    # y[i] is seq[i+1]: a prompt token for i + 1 < len(prompt), i.e. the first len(prompt) - 1 positions.
    n_masked = len(prompt_ids) - 1
    y[:n_masked] = [IGNORE_INDEX] * n_masked
    return x, y


def length_report(tok, examples: Iterable[Example], block_size: int, modes: Sequence[str] = MODES,
                  prefix_len: int = 0) -> tuple[dict[str, list[int]], list[str]]:
    """Context positions each example needs, per mode, and the ids of those that do not fit.

    lengths[mode][i] = prefix_len + len(x) for examples[i], where x = prompt + target minus the last token (the
    model never reads the final <|endoftext|>) and prefix_len counts soft-prompt vectors placed before the tokens.
    An example is too long when it exceeds block_size in ANY of the given modes (it is the same question for all)."""
    for m in modes:
        _check_mode(m)
    examples = list(examples)
    lengths: dict[str, list[int]] = {m: [] for m in modes}
    too_long: list[str] = []
    for ex in examples:
        over = False
        for m in modes:
            p, t = encode(tok, ex, m)
            n = prefix_len + len(p) + len(t) - 1
            lengths[m].append(n)
            over = over or n > block_size
        if over:
            too_long.append(ex.id)
    return lengths, too_long


def check_lengths(tok, examples: Iterable[Example], block_size: int, modes: Sequence[str] = MODES,
                  prefix_len: int = 0, on_too_long: str = "fail", what: str = "examples") -> list[Example]:
    """Examples that fit the context. on_too_long="fail": raise DataError naming the count and the first ids;
    "drop": print how many were dropped (and the first ids) and return the others. Nothing is dropped silently."""
    if on_too_long not in ("fail", "drop"):
        raise ValueError(f"on_too_long must be 'fail' or 'drop', not {on_too_long!r}")
    examples = list(examples)
    lengths, too_long = length_report(tok, examples, block_size, modes, prefix_len)
    if not too_long:
        return examples
    longest = max(max(v) for v in lengths.values())
    shown = ", ".join(too_long[:10]) + (f", ... (+{len(too_long) - 10} more)" if len(too_long) > 10 else "")
    msg = (f"{len(too_long)} of {len(examples)} {what} need more than block_size={block_size} positions "
           f"(longest {longest}, prefix_len={prefix_len}, modes={'/'.join(modes)}): {shown}")
    if on_too_long == "fail":
        raise DataError(msg + ". Raise block_size, shorten the data, or drop them (on_too_long='drop').")
    print(f"dropping {msg}")
    skip = set(too_long)
    return [ex for ex in examples if ex.id not in skip]

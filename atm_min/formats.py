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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MODES = ("pre", "post")  # the two thinking formats; "answer" (no rationale) is a baseline, not a mode ATM picks
TARGET_FORMATS = MODES + ("answer",)
ANSWER_MARK = "Answer:"     # the first word of a post target, and what precedes every answer
REASON_MARK = "Reasoning:"  # the first word of a pre target
MODE_MARKS = {"pre": REASON_MARK, "post": ANSWER_MARK}  # the words a target in each thinking mode starts with
TEMPLATES = {"pre": f"{REASON_MARK} {{rationale}} {ANSWER_MARK} {{answer}}",  # the targets, without <|endoftext|>
             "post": f"{ANSWER_MARK} {{answer}}\n{REASON_MARK} {{rationale}}",
             "answer": f"{ANSWER_MARK} {{answer}}"}
IGNORE_INDEX = -1  # targets equal to this are skipped by the loss (F.cross_entropy(..., ignore_index=-1))


@dataclass(frozen=True)
class Example:
    """One teacher-distilled training or test question. Reading and checking the JSONL files that hold them
    (data/README.md has the schema) is machinery: atm_min/machinery/data.py."""
    id: str
    question: str
    rationale: str     # the teacher's reasoning
    answer: str        # the gold answer
    answer_type: str   # number | choice | yesno | text: how answers are compared (answers.py)
    group: str | None = None  # results are broken down by it, at every level: "multistep/3" counts under both
                              # "multistep" and "multistep/3" (group_levels)


def group_levels(group: str | None) -> list[str]:
    """The groups an example counts under, coarse to fine: "multistep/3" -> ["multistep", "multistep/3"]."""
    if not group:
        return []
    parts = group.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


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
    get = example.__getitem__ if isinstance(example, Mapping) else example.__getattribute__
    return TEMPLATES[mode].format(rationale=normalize_ws(get("rationale")), answer=normalize_ws(get("answer")))


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

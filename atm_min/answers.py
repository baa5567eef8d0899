"""Answer extraction and normalisation: is a generated text's answer the gold answer?

Four answer types (the `answer_type` field of an example):
  number  integers/decimals: "1,000", "$14.", "39.", "1.0", "-3" -> canonical "1000", "14", "39", "1", "-3"
  choice  a multiple-choice letter A-F, written alone ("C", "C.", "C:") or in parentheses ("(C)"); canonical "C"
  yesno   the words yes/no in any case ("Yes.", "NO"); canonical "yes" / "no"
  text    free text, compared ignoring case, whitespace and punctuation; canonical: lowercase, no spaces or
          punctuation ('"n a o a".' -> "naoa", as Fine-tune-CoT compares last-letter answers)

Two ways of reading a text, following Fine-tune-CoT's evaluator:
  - `normalize(text, type)` reads text that IS an answer (a gold answer, the text after "Answer:", a teacher's
    " no, the coin is not heads up."): the FIRST candidate of the type wins.
  - when a generated text has no "Answer:" marker at all, `extract_answer` falls back to the LAST candidate in the
    whole text (a rationale usually ends with its conclusion).

Output formats (see formats.py): pre-thinking generates "Reasoning: <r> Answer: <a>", post-thinking generates
"Answer: <a>\\nReasoning: <r>". `parse_output` splits a generation back into (mode, answer text, rationale text).
"""

from __future__ import annotations

import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation

from .formats import ANSWER_MARK, REASON_MARK

ANSWER_TYPES = ("number", "choice", "yesno", "text")
CHOICE_LETTERS = "ABCDEF"

# A number: optional sign ("-" or the Unicode minus), then either properly grouped thousands ("1,000,000") or plain
# digits, then optional decimals; or a bare decimal ".5". Grouping must be exact so that "1, 2, 3" stays three numbers.
_NUMBER = re.compile(r"(?<![\w.])([-\u2212]?)(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
# A choice letter in parentheses, e.g. "(C)"; lowercase "(c)" is unambiguous here, so it is accepted too.
_CHOICE_PAREN = re.compile(r"\(([A-Fa-f])\)")
# A standalone capital letter: no letter/digit/apostrophe on either side ("I", "A's", "ABC", "C3" do not count).
_CHOICE_ALONE = re.compile(r"(?<![\w'’])([A-F])(?![\w'’])")
# "A" followed by a lowercase word is the English article ("A man walks"), not option A.
_ARTICLE_A = re.compile(r"\s+[a-z]")
_YESNO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _check_type(answer_type: str) -> None:
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}: choose one of {', '.join(ANSWER_TYPES)}")


# ----------------------------------------------------------------------------------------------------- candidates

def _canonical_number(sign: str, digits: str) -> str | None:
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only lets valid numbers through
        return None
    if sign:
        value = -value
    if value == 0:
        return "0"  # also turns "-0" and "0.00" into "0"
    # normalize() drops trailing zeros ("1.50" -> "1.5", "1.0" -> "1"); format "f" avoids "1E+3".
    return format(value.normalize(), "f")


def _number_candidates(text: str) -> list[str]:
    out = []
    for m in _NUMBER.finditer(text):
        c = _canonical_number(m.group(1), m.group(2))
        if c is not None:
            out.append(c)
    return out


def _choice_candidates(text: str) -> list[str]:
    found = []  # (position, letter) from both patterns, merged in text order
    for m in _CHOICE_PAREN.finditer(text):
        found.append((m.start(), m.group(1).upper()))
    for m in _CHOICE_ALONE.finditer(text):
        if text[m.start() - 1:m.start()] == "(" and text[m.end():m.end() + 1] == ")":
            continue  # already counted as "(X)"
        if m.group(1) == "A" and _ARTICLE_A.match(text, m.end()):
            continue
        found.append((m.start(), m.group(1)))
    return [letter for _, letter in sorted(found)]


def _yesno_candidates(text: str) -> list[str]:
    return [m.group(1).lower() for m in _YESNO.finditer(text)]


_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "«", "»", "…", "–", "—"}


def _normalize_text(text: str) -> str:
    # Lowercase, drop punctuation (ASCII and Unicode category P*) and all whitespace: '"Ea yn".' -> "eayn".
    # Dropping spaces rather than collapsing them lets "n a o a" match "naoa"; the price ("a cat" == "acat") is
    # harmless for short answers.
    return "".join(ch for ch in text.lower()
                   if not (ch.isspace() or ch in _PUNCT or unicodedata.category(ch).startswith("P")))


def _text_candidates(text: str) -> list[str]:
    t = _normalize_text(text)
    return [t] if t else []


_CANDIDATES = {"number": _number_candidates, "choice": _choice_candidates, "yesno": _yesno_candidates,
               "text": _text_candidates}


def _candidates(text: str, answer_type: str) -> list[str]:
    return _CANDIDATES[answer_type](text)


# ------------------------------------------------------------------------------------------------------ public API

def normalize(text: str | None, answer_type: str) -> str | None:
    """Canonical form of an answer text, or None when the text holds no answer of this type.

    The first candidate wins: " no, the coin is not heads up." -> "no", " 58. \\n\\nI hope this helps!" -> "58",
    " (D) 04/13/1985." -> "D". For "text" the whole text is the answer ('"Yajo".' -> "yajo")."""
    _check_type(answer_type)
    if text is None:
        return None
    cands = _candidates(text, answer_type)
    return cands[0] if cands else None


def parse_output(text: str) -> tuple[str | None, str | None, str]:
    """Split a generated continuation of the prompt into (mode, answer_text, rationale_text).

    mode: "pre" if the text starts with "Reasoning:", "post" if it starts with "Answer:", else None.
    answer_text: pre  -> what follows the LAST "Answer:" (the rationale comes first and may mention earlier
                         "answers"), up to the end of that line;
                 post -> what follows the first "Answer:" up to the newline that ends a post answer;
                 None -> what follows the last "Answer:", if any.
                 It is None when there is no "Answer:" marker at all (the model never committed to an answer).
    rationale_text: pre  -> between "Reasoning:" and that last "Answer:" (everything after "Reasoning:" if none);
                    post -> what follows "Reasoning:" after the answer line ("" if generation stopped there);
                    None -> the text before the answer marker (the whole text if none).
    All three parts are stripped of surrounding whitespace."""
    body = text.lstrip()
    if body.startswith(REASON_MARK):
        rest = body[len(REASON_MARK):]
        i = rest.rfind(ANSWER_MARK)
        if i < 0:
            return "pre", None, rest.strip()
        answer = rest[i + len(ANSWER_MARK):].split("\n", 1)[0]
        return "pre", answer.strip(), rest[:i].strip()
    if body.startswith(ANSWER_MARK):
        rest = body[len(ANSWER_MARK):]
        answer, _, after = rest.partition("\n")
        after = after.strip()
        if after.startswith(REASON_MARK):
            after = after[len(REASON_MARK):].strip()
        return "post", answer.strip(), after
    i = body.rfind(ANSWER_MARK)
    if i < 0:
        return None, None, body.strip()
    return None, body[i + len(ANSWER_MARK):].split("\n", 1)[0].strip(), body[:i].strip()


def extract_answer(generated_text: str, answer_type: str) -> str | None:
    """The normalised answer a generated text gives, or None.

    With an "Answer:" marker only the answer text counts (first candidate there): a model that wrote
    "Answer: I don't know" gets no credit for a number that happens to appear in its rationale. Without a marker,
    fall back to the last candidate in the whole text (last number / standalone letter / yes-no word), or for
    "text" answers to the last non-empty line."""
    _check_type(answer_type)
    _, answer_text, _ = parse_output(generated_text)
    if answer_text is not None:
        return normalize(answer_text, answer_type)
    if answer_type == "text":
        lines = [ln for ln in generated_text.split("\n") if _normalize_text(ln)]
        return _normalize_text(lines[-1]) if lines else None
    cands = _candidates(generated_text, answer_type)
    return cands[-1] if cands else None


def is_correct(generated_text: str, gold: str, answer_type: str) -> bool:
    """Does the generated text's answer equal the gold answer (both normalised)? False when either has none."""
    pred = extract_answer(generated_text, answer_type)
    want = normalize(gold, answer_type)
    return pred is not None and want is not None and pred == want

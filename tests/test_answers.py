"""Answer extraction: synthetic edge cases, literal teacher strings copied from Fine-tune-CoT, and the full shared
teacher data (skipped when ../shared is absent)."""

import json
import re
from pathlib import Path

import pytest

from atm_min.answers import ANSWER_TYPES, extract_answer, is_correct, normalize, parse_output
from atm_min.formats import format_target

SHARED = Path(__file__).resolve().parents[2] / "shared"
FTC = SHARED / "datasets" / "finetune-cot"
TASK_TYPES = {"strategy_qa": "yesno", "coin_flip": "yesno", "date_understanding": "choice",
              "multiarith": "number", "last_letter_concatenation": "text"}


# ------------------------------------------------------------------------------------------------- normalize

@pytest.mark.parametrize("text, want", [
    ("39", "39"), (" 39.", "39"), ("39.", "39"), ("1,000", "1000"), ("$1,000.50", "1000.5"), ("$14.", "14"),
    ("1.0", "1"), ("1.50", "1.5"), ("-3", "-3"), ("\u22123", "-3"), ("-0", "0"), ("0.00", "0"), (".5", "0.5"),
    ("1, 2, 3", "1"), ("16-3-4", "16"), ("50%", "50"), (" 9 pages.", "9"), (" 58. \n\nI hope this helps!", "58"),
    ("109,200,000", "109200000"), ("abc", None), ("", None),
])
def test_normalize_number(text, want):
    assert normalize(text, "number") == want


def test_number_equivalences():
    assert normalize("1.0", "number") == normalize("1", "number") == normalize("1.", "number")
    assert normalize("1,000", "number") == normalize("1000.00", "number")


@pytest.mark.parametrize("text, want", [
    ("C", "C"), (" C.", "C"), ("(C)", "C"), (" (C).", "C"), ("(c)", "C"), (" A: 07/28/2002.", "A"),
    (" (D) 04/13/1985.", "D"), (" (B) 01/01/1929.", "B"), ("F", "F"),
    ("A man walks into a bar", None), ("I think so", None), ("A's", None), ("ABC", None), ("G", None),
    (" August 20th, 2020, which would be written 08/20/2020.", None), ("C3PO", None),
])
def test_normalize_choice(text, want):
    assert normalize(text, "choice") == want


def test_choice_article_is_skipped_but_later_letter_found():
    assert normalize("A careful reading gives (E).", "choice") == "E"


@pytest.mark.parametrize("text, want", [
    (" no.", "no"), ("Yes.", "yes"), ("NO", "no"), (' "Yes".', "yes"), (" YES.", "yes"),
    (" no - the coin is not heads up.", "no"), (" yes- Ryan Crouser could throw a bengal fox with ease.", "yes"),
    (" inconclusive.", None), ("nobody knows", None), ("not", None),
])
def test_normalize_yesno(text, want):
    assert normalize(text, "yesno") == want


@pytest.mark.parametrize("text, want", [
    (' "yajo".', "yajo"), (' "n a o a".', "naoa"), (' "aaYe".', "aaye"), ("New  York!", "newyork"), ("?!", None),
])
def test_normalize_text(text, want):
    assert normalize(text, "text") == want


def test_unknown_answer_type():
    with pytest.raises(ValueError, match="answer_type"):
        normalize("1", "integer")
    assert set(ANSWER_TYPES) == {"number", "choice", "yesno", "text"}


# ---------------------------------------------------------------------------------------------- parse_output

def test_parse_pre():
    assert parse_output("Reasoning: 2 plus 3 is 5. Answer: 5") == ("pre", "5", "2 plus 3 is 5.")
    # The LAST "Answer:" counts: a rationale may quote an earlier one.
    assert parse_output("Reasoning: Answer: 4 is wrong. Answer: 5") == ("pre", "5", "Answer: 4 is wrong.")
    assert parse_output("Reasoning: no answer yet") == ("pre", None, "no answer yet")


def test_parse_post():
    assert parse_output("Answer: 5\nReasoning: 2 plus 3.") == ("post", "5", "2 plus 3.")
    assert parse_output("Answer: 5\n") == ("post", "5", "")  # generation stops at the newline
    assert parse_output("Answer: 5") == ("post", "5", "")


def test_parse_no_mode():
    assert parse_output("so the answer is 5") == (None, None, "so the answer is 5")
    assert parse_output("blah Answer: 7\nmore") == (None, "7", "blah")


# --------------------------------------------------------------------------------------------- extract_answer

def test_extract_fallbacks_without_marker():
    assert extract_answer("Reasoning: 3 apples plus 4 apples make 7", "number") == "7"  # last number
    assert extract_answer("Reasoning: (A) is wrong, so C", "choice") == "C"  # last standalone letter
    assert extract_answer("Reasoning: A man said yes but then no", "yesno") == "no"
    assert extract_answer("first line\n  eayn. \n", "text") == "eayn"  # last non-empty line
    assert extract_answer("Reasoning: nothing", "number") is None


def test_extract_marker_present_means_answer_region_only():
    # The model committed to a non-answer: no credit for numbers elsewhere.
    assert extract_answer("Reasoning: 3 and 4 make 7. Answer: unknown", "number") is None
    assert extract_answer("Answer: unknown\nReasoning: it is 7", "number") is None


def test_is_correct_both_formats():
    for mode in ("pre", "post"):
        text = format_target({"rationale": "Debby had 32, her sister 42; 74 - 35 = 39.", "answer": " 39."}, mode)
        assert is_correct(text, "39", "number")
        assert not is_correct(text, "35", "number")
    assert not is_correct("Answer: 5", "not a number", "number")  # unreadable gold is never matched


# Real teacher outputs copied from the Fine-tune-CoT release (completion field, gold answer, type, teacher right?).
# They run without ../shared.
LITERAL = [
    (" no.", "No", "yesno", True),
    (" yes.", "Yes", "yesno", True),
    (" no - the United States Secretary of State cannot do crimes in the United Kingdom without being arrested.",
     "Yes", "yesno", False),
    (" yes, lunch on the beach is a good activity to spot the full circle of a rainbow.", "No", "yesno", False),
    (" no, you do not need lactobacillus to make pickles, but you can use it to create a different type of pickle.",
     "No", "yesno", True),
    (" that Bruce Lee was not present at the 1964 University of Washington graduation ceremony.", "Yes", "yesno",
     False),
    (" inconclusive.", "Yes", "yesno", False),
    (" yes, United Airlines would buy glycol.", "Yes", "yesno", True),
    (' "Yes, the coin is heads up."', "yes", "yesno", True),
    (' "Yes".', "yes", "yesno", True),
    (" yes - the coin is still heads up.", "yes", "yesno", True),
    (" no, the coin is not heads up.", "no", "yesno", True),
    (" No.", "no", "yesno", True),
    (" YES.", "yes", "yesno", True),
    (" Ellen.", "yes", "yesno", False),
    (" (F).", "F", "choice", True),
    (" (C).", "A", "choice", False),
    (" A.", "A", "choice", True),
    (" A: 01/02/2007.", "A", "choice", True),
    (" (D) 04/13/1985.", "E", "choice", False),
    (" (B) 01/01/1929.", "B", "choice", True),
    (" A: 07/28/2002.", "E", "choice", False),
    (" C.", "C", "choice", True),
    (" August 20th, 2020, which would be written 08/20/2020.", "A", "choice", False),
    (" 39.", "39", "number", True),
    (" 0.", "4", "number", False),
    (" 58. \n\nI hope this helps!", "58", "number", True),
    (" $14.", "14", "number", True),
    (" that Paige sold 27 pastries.", "41", "number", False),
    (" 8.\n\n", "8", "number", True),
    (" 9 pages.", "9", "number", True),
    (" 6. \n\nI hope this helped!", "6", "number", True),
    (' "yajo".', "yajo", "text", True),
    (' "eayan".', "eayn", "text", False),
    (' "orre".', "orre", "text", True),
    (' "n a o a".', "naoa", "text", True),
    (" wrong.", "ahns", "text", False),
]


@pytest.mark.parametrize("completion, gold, answer_type, right", LITERAL)
def test_literal_teacher_strings(completion, gold, answer_type, right):
    assert (normalize(completion, answer_type) == normalize(gold, answer_type)) == right
    # The same answer inside our two output formats, with a distracting rationale.
    rationale = "We consider 123 options, (B) and yes or no. Hmm"
    for mode in ("pre", "post"):
        assert is_correct(format_target({"rationale": rationale, "answer": completion}, mode), gold,
                          answer_type) == right


def test_literal_covers_all_types():
    assert {t for _, _, t, _ in LITERAL} == set(ANSWER_TYPES) and len(LITERAL) >= 30


# ---------------------------------------------------------------------------------------- the full teacher data

def _reference(completion: str, answer_type: str):
    """An independent, simpler reading of a teacher answer (close to Fine-tune-CoT's evaluator, but letters must
    stand alone): the first candidate."""
    if answer_type == "number":
        c = re.findall(r"-?\d+(?:\.\d+)?", completion.replace(",", ""))
        return str(float(c[0])) if c else None
    if answer_type == "choice":
        c = re.findall(r"\b[A-F]\b", completion)
        return c[0] if c else None
    if answer_type == "yesno":
        c = [w for w in re.sub(r"[\"'\n.\s:,]", " ", completion.lower()).split() if w in ("yes", "no")]
        return c[0] if c else None
    return re.sub(r"[\"'\n.\s]", "", completion)


def _ref_gold(gold: str, answer_type: str):
    if answer_type == "number":
        return str(float(gold.replace(",", "")))
    return gold.lower() if answer_type == "yesno" else gold


@pytest.mark.parametrize("task", sorted(TASK_TYPES))
def test_teacher_data_agrees_with_reference(task):
    path = FTC / "completion_data" / f"D_{task}.json"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    answer_type = TASK_TYPES[task]
    comps = [c for cs in json.loads(path.read_text())["data"].values() for c in cs]
    n_right = extra = 0
    for c in comps:
        ref_right = _reference(c["completion"], answer_type) == _ref_gold(c["answer"], answer_type)
        ours = normalize(c["completion"], answer_type) == normalize(c["answer"], answer_type)
        if ref_right:  # where the teacher was right, our extraction agrees with gold, also inside our formats
            n_right += 1
            assert ours, (c["completion"], c["answer"])
            for mode in ("pre", "post"):
                out = format_target({"rationale": c["reasoning_completion"], "answer": c["completion"]}, mode)
                assert is_correct(out, c["answer"], answer_type), (mode, out)
        extra += ours and not ref_right
    assert n_right > len(comps) // 3
    # We accept a few more than the reference ("yes- ...", "aaYe", "r-a-y-n": all right), but not many.
    assert extra <= 0.03 * len(comps), extra

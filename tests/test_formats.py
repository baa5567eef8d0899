"""The templates, token ids and loss masks, shown exactly for a small example with the byte tokenizer (byte
tokenizer ids are the UTF-8 bytes, so list(b"...") spells them; <|endoftext|> is 256)."""

from pathlib import Path

import pytest

from atm_min import answers
from atm_min.answers import parse_output
from atm_min.machinery.data import DataError, Example
from atm_min.formats import ANSWER_MARK, IGNORE_INDEX, MODES, REASON_MARK, encode, format_prompt, format_target, make_xy
from atm_min.machinery.config import ConfigError, parse_args
from atm_min.machinery.data import check_lengths, length_report
from atm_min.machinery.gpt2 import gpt2_tokenizer
from atm_min.tokenizer import byte_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared"
EOT = 256
EX = Example(id="toy/0", question="2+3?", rationale="2 plus 3\nis 5.", answer="5", answer_type="number")


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def test_constants():
    assert MODES == ("pre", "post")
    assert (ANSWER_MARK, REASON_MARK) == ("Answer:", "Reasoning:")
    assert (answers.ANSWER_MARK, answers.REASON_MARK) == (ANSWER_MARK, REASON_MARK)  # parser and templates agree
    assert IGNORE_INDEX == -1


def test_exact_strings():
    assert format_prompt("2+3?") == "Q: 2+3?\n"
    assert format_target(EX, "pre") == "Reasoning: 2 plus 3 is 5. Answer: 5"
    assert format_target(EX, "post") == "Answer: 5\nReasoning: 2 plus 3 is 5."
    assert format_target({"rationale": "r", "answer": "a"}, "pre") == "Reasoning: r Answer: a"  # plain mapping


def test_whitespace_normalised_only_newline_is_post_answer_end():
    ex = Example(id="w", question=" What\nis\t 2+3? ", rationale="  Step 1.\n\nStep   2.\r\n", answer=" 5\n",
                 answer_type="number")
    assert format_prompt(ex.question) == "Q: What is 2+3?\n"
    assert format_target(ex, "pre") == "Reasoning: Step 1. Step 2. Answer: 5"
    assert "\n" not in format_target(ex, "pre")
    post = format_target(ex, "post")
    assert post.count("\n") == 1 and post.split("\n")[0] == "Answer: 5"


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        format_target(EX, "adaptive")


def test_encode_and_make_xy_exact_pre(tok):
    p, t = encode(tok, EX, "pre")
    assert p == list(b"Q: 2+3?\n")
    assert t == list(b"Reasoning: 2 plus 3 is 5. Answer: 5") + [EOT]
    x, y = make_xy(p, t)
    assert x == list(b"Q: 2+3?\nReasoning: 2 plus 3 is 5. Answer: 5")
    # 8 prompt tokens: the first 7 predictions are prompt tokens (masked); then the target and <|endoftext|>.
    assert y == [-1] * 7 + list(b"Reasoning: 2 plus 3 is 5. Answer: 5") + [EOT]


def test_encode_and_make_xy_exact_post(tok):
    p, t = encode(tok, EX, "post")
    assert t == list(b"Answer: 5\nReasoning: 2 plus 3 is 5.") + [EOT]
    x, y = make_xy(p, t)
    assert x == list(b"Q: 2+3?\nAnswer: 5\nReasoning: 2 plus 3 is 5.")
    assert y == [-1] * 7 + list(b"Answer: 5\nReasoning: 2 plus 3 is 5.") + [EOT]


def test_make_xy_tiny():
    assert make_xy([1, 2, 3], [4, 5]) == ([1, 2, 3, 4], [-1, -1, 4, 5])
    assert make_xy([1], [4]) == ([1], [4])  # a one-token prompt masks nothing
    with pytest.raises(ValueError, match="non-empty prompt"):
        make_xy([], [4])
    with pytest.raises(ValueError, match="non-empty target"):
        make_xy([1], [])


def test_stop_at_newline_ends_post_answer_not_pre_rationale(tok):
    """Generation stops at the first newline or eot: simulate it on the targets."""
    for mode, expect in (("post", "Answer: 5"), ("pre", "Reasoning: 2 plus 3 is 5. Answer: 5")):
        _, t = encode(tok, EX, mode)
        stop = next(i for i, tid in enumerate(t) if tid in tok.newline_ids or tid == tok.eot_id)
        assert tok.decode(t[:stop]) == expect


def test_gpt2_newline_stop():
    path = SHARED / "tokenizers" / "gpt2.tiktoken"
    if not path.is_file():
        pytest.skip(f"shared GPT-2 ranks not found: {path}")
    tok = gpt2_tokenizer(str(path))
    p, t = encode(tok, EX, "post")
    assert p == tok.encode("Q: 2+3?\n") and t[-1] == tok.eot_id
    stops = [i for i, tid in enumerate(t) if tid in tok.newline_ids]
    assert len(stops) == 1 and tok.decode(t[:stops[0]]) == "Answer: 5"
    assert not any(tid in tok.newline_ids for tid in encode(tok, EX, "pre")[1])


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_through_parser(mode):
    assert parse_output(format_target(EX, mode)) == (mode, "5", "2 plus 3 is 5.")


def test_length_report(tok):
    short = EX
    long = Example(id="toy/long", question="q" * 50, rationale="r" * 50, answer="5", answer_type="number")
    lengths, too_long = length_report(tok, [short, long], block_size=60)
    # prompt 8 + target 36 (incl. eot) - 1 = 43 positions, the same in both modes
    assert lengths == {"pre": [43, 125], "post": [43, 125]}  # long: 54 + 72 - 1
    assert too_long == ["toy/long"]
    lengths, too_long = length_report(tok, [short], block_size=45, modes=("pre",), prefix_len=3)
    assert lengths == {"pre": [46]} and too_long == ["toy/0"]  # the soft prompt takes positions too


def test_check_lengths(tok, capsys):
    long = Example(id="toy/long", question="q" * 50, rationale="r" * 50, answer="5", answer_type="number")
    assert check_lengths(tok, [EX], block_size=43) == [EX]  # exactly fits
    with pytest.raises(DataError, match=r"1 of 2 examples .*block_size=60.*toy/long"):
        check_lengths(tok, [EX, long], block_size=60)
    kept = check_lengths(tok, [EX, long], block_size=60, on_too_long="drop")
    assert kept == [EX]
    assert "dropping 1 of 2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="on_too_long must be 'fail' or 'drop'"):  # called from code
        check_lengths(tok, [EX], block_size=60, on_too_long="truncate")
    with pytest.raises(ConfigError, match="on_too_long"):  # the user's side: the setting is refused up front
        parse_args(["--on_too_long=truncate"])


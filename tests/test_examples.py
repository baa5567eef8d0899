"""The example schema: round trips, validation messages (file + line), load_split."""

import dataclasses
import json

import pytest

from atm_min.machinery.data import DataError, Example, load_examples, load_split, make_example, write_examples

GOOD = {"id": "a/0", "question": "2+3?", "rationale": "2 plus 3 is 5.", "answer": "5", "answer_type": "number"}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip(tmp_path):
    exs = [Example(**GOOD),
           Example(id="b/1", question="Is it?\n(multi-line)", rationale="Ünïcode ✓.", answer="C",
                   answer_type="choice", group="multistep/3")]
    write_examples(tmp_path / "sub" / "x.jsonl", exs)  # creates the folder
    assert load_examples(tmp_path / "sub" / "x.jsonl") == exs
    lines = (tmp_path / "sub" / "x.jsonl").read_text(encoding="utf-8").splitlines()
    assert "group" not in json.loads(lines[0])  # optional field omitted when None
    assert json.loads(lines[1])["group"] == "multistep/3"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.jsonl"]  # no temp file left behind


def test_write_overwrites_and_refuses_duplicates(tmp_path):
    p = tmp_path / "x.jsonl"
    write_examples(p, [Example(**GOOD)])
    write_examples(p, [Example(**{**GOOD, "id": "z"})])
    assert [e.id for e in load_examples(p)] == ["z"]
    with pytest.raises(DataError, match="duplicate id 'a/0'"):
        write_examples(p, [Example(**GOOD), Example(**GOOD)])
    assert [e.id for e in load_examples(p)] == ["z"]  # the old file is untouched


def test_example_is_frozen_and_validated(tmp_path):
    ex = Example(**GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.answer = "6"
    with pytest.raises(DataError, match="empty"):
        make_example(**{**GOOD, "rationale": "  "})
    with pytest.raises(DataError, match="answer_type"):
        make_example(**{**GOOD, "answer_type": "integer"})
    with pytest.raises(DataError, match="not a valid 'number'"):
        make_example(**{**GOOD, "answer": "five"})
    # the plain dataclass of the lesson (formats.Example) is checked when it is written, so a file can never
    # hold what load_examples would refuse
    with pytest.raises(DataError, match="not a valid 'number'"):
        write_examples(tmp_path / "x.jsonl", [Example(**{**GOOD, "answer": "five"})])
    assert not (tmp_path / "x.jsonl").exists()


def test_blank_lines_ignored_but_counted(tmp_path):
    p = _write_lines(tmp_path / "x.jsonl", ["", json.dumps(GOOD), "   ", "{bad"])
    with pytest.raises(DataError) as e:
        load_examples(p)
    assert "line 4" in str(e.value) and "x.jsonl" in str(e.value)
    _write_lines(p, ["", json.dumps(GOOD), "   "])
    assert len(load_examples(p)) == 1


@pytest.mark.parametrize("line, fragment", [
    ("{bad json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "rationale"}), "missing field(s) rationale"),
    (json.dumps({**GOOD, "question": ""}), "'question' is empty"),
    (json.dumps({**GOOD, "answer": 5}), "'answer' must be a string"),
    (json.dumps({**GOOD, "answer_type": "int"}), "unknown answer_type 'int'"),
    (json.dumps({**GOOD, "grup": "x"}), "unknown field(s) grup"),
    (json.dumps({**GOOD, "group": ""}), "'group' must be a non-empty string"),
    (json.dumps({**GOOD, "answer": "maybe", "answer_type": "yesno"}), "not a valid 'yesno' answer"),
])
def test_bad_line_messages(tmp_path, line, fragment):
    p = _write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), line])
    with pytest.raises(DataError) as e:
        load_examples(p)
    msg = str(e.value)
    assert "bad.jsonl" in msg and "line 2:" in msg and fragment in msg


def test_duplicate_ids_name_both_lines(tmp_path):
    p = _write_lines(tmp_path / "x.jsonl", [json.dumps(GOOD), json.dumps({**GOOD, "id": "b"}), json.dumps(GOOD)])
    with pytest.raises(DataError, match=r"line 3: duplicate id 'a/0' \(first on line 1\)"):
        load_examples(p)


def test_many_bad_lines_one_summary(tmp_path):
    p = _write_lines(tmp_path / "x.jsonl", ["{bad"] * 25 + [json.dumps(GOOD)])
    with pytest.raises(DataError) as e:
        load_examples(p)
    msg = str(e.value)
    assert "25 bad line(s)" in msg and "line 10:" in msg and "line 11:" not in msg and "and 15 more" in msg


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")


def test_load_split(tmp_path):
    with pytest.raises(DataError, match="data folder .* not found"):
        load_split(tmp_path / "nope")
    write_examples(tmp_path / "train.jsonl", [Example(**GOOD)])
    with pytest.raises(DataError, match="missing test.jsonl"):
        load_split(tmp_path)
    write_examples(tmp_path / "test.jsonl", [Example(**{**GOOD, "id": "t/0"})])
    train, test = load_split(tmp_path)
    assert [e.id for e in train] == ["a/0"] and [e.id for e in test] == ["t/0"]

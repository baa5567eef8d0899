"""sample.py says when a question is outside the run's training forms, and when a forced mode is one the student
never (or barely) trained in on questions of that form (atm_min/machinery/forms.py)."""

import json
import shutil
import re
from pathlib import Path

import pytest

import sample
from atm_min.formats import Example
from atm_min.machinery.data import load_examples
from atm_min.machinery.forms import TrainingForms, form
from atm_min.tokenizer import byte_tokenizer


def ex(i, q, group):
    return Example(id=str(i), question=q, rationale="r", answer="yes", answer_type="yesno", group=group)


TRAIN = [ex(0, "Is 74 even?", "direct/2"), ex(1, "Is 512 odd?", "direct/3"),
         ex(2, "Start at 5, apply i d: result?", "multistep/2")]


def test_form_hides_the_numbers_only():
    assert form("Is 74 even?") == form("Is  9316 even? ") == "Is # even?"
    assert form("Start at 5, apply i d: result?") == "Start at #, apply i d: result?"


def test_notes_for_an_unknown_form_a_length_out_of_range_and_an_untrained_mode():
    forms = TrainingForms(byte_tokenizer(), TRAIN, ["post", "post", "pre"])
    assert forms.notes("Is 31 even?") == []  # a form and a length it trained on
    assert forms.notes("Is 31 even?", ("post",)) == []  # answer first: trained on this form
    [note] = forms.notes("What is 3 plus 4?")
    assert note.startswith("outside the training forms: no training question reads like this one")
    [note] = forms.notes("Is 7 even?")  # 10 tokens; the training question of this form has 11
    assert note.startswith("outside the training forms: 10 tokens") and "have 11-11" in note
    [note] = forms.notes("Is 31 even?", ("pre", "post"))
    assert note.startswith("forced think first: this student was never trained in that format") and \
        "direct/2: 1 answer first" in note
    assert forms.notes("Start at 1, apply i d: result?", ("pre",)) == []


def test_a_mode_barely_trained_on_a_form_gets_the_note():
    many = [ex(i, f"Is {10 + i} even?", "direct/2") for i in range(40)]
    forms = TrainingForms(byte_tokenizer(), many, ["pre"] + ["post"] * 39)
    [note] = forms.notes("Is 55 even?", ("pre",))
    assert "on only 1 of the 40 training questions of this form" in note and "barely learned" in note
    assert TrainingForms(byte_tokenizer(), many, None).notes("Is 55 even?", ("pre",)) == []  # modes unknown


@pytest.fixture
def run(atm_run):
    """A tiny ATM run whose labels are all answer first (conftest's atm_run: unsure fold students,
    label_default=post)."""
    return Path(atm_run)


def sample_out(capsys, *argv):
    capsys.readouterr()
    assert sample.cli([str(a) for a in argv]) == 0
    return capsys.readouterr()


def test_mode_both_names_the_mode_the_atm_student_never_trained_in(run, capsys):
    labels = json.loads((run / "labels.json").read_text())
    assert {e["label"] for e in labels.values()} == {"post"}
    train = load_examples(str(run / "synth_0" / "train.jsonl"))[:48]
    q = next(e.question for e in train if e.group.startswith("direct"))
    out = sample_out(capsys, "--out_dir", run, "--question", q, "--mode", "both").out
    notes = re.findall(r"^  note: (.*)$", out, re.M)
    assert len(notes) == 1 and notes[0].startswith("forced think first: this student was never trained")
    out = sample_out(capsys, "--out_dir", run, "--question", q, "--mode", "post").out
    assert "note:" not in out  # answer first: what it trained in, on a form it knows

    # outside the forms: another wording, and a parity question with one digit (the suite has 2-4)
    out = sample_out(capsys, "--out_dir", run, "--question", "What is 3 plus 4?", "--explain").out
    assert "note: outside the training forms: no training question reads like this one" in out
    one_digit = re.sub(r"\d+", "7", q)
    out = sample_out(capsys, "--out_dir", run, "--question", one_digit).out
    assert re.search(r"note: outside the training forms: \d+ tokens, while the \d+ training questions", out)


def test_without_the_training_data_it_says_it_cannot_check(run, tmp_path, capsys):
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run / "ckpt.pt", lone / "ckpt.pt")
    r = sample_out(capsys, "--out_dir", lone, "--question", "Is 74 even?")
    assert "note: the run's training questions" in r.err and "note:" not in r.out


def test_free_text_training_questions_skip_the_form_check(tmp_path):
    """Real teacher data (each question worded its own way) would put every new question outside the training
    forms: the check is skipped, and why is said once."""
    from atm_min.machinery.config import TrainConfig
    from atm_min.machinery.data import write_examples
    from atm_min.machinery.forms import from_run
    free = [ex(i, f"Does {name} flip the coin {i} times?", "coin") for i, name in enumerate("ABCDEFGH")]
    write_examples(tmp_path / "train.jsonl", free[:6] + [ex(6, "Is 74 even?", "p"), ex(7, "Is 8 even?", "p")])
    saved = TrainConfig(data_dir=str(tmp_path), mechanism="pre")
    forms, why = from_run({"atm": False}, str(tmp_path / "ckpt.pt"), saved, byte_tokenizer())
    assert forms is None and "free text (only 2 of 8 share their wording" in why
    write_examples(tmp_path / "train.jsonl", [ex(10 + i, f"Is {i} even?", "p") for i in range(5)] + free[:3])
    forms, why = from_run({"atm": False}, str(tmp_path / "ckpt.pt"), saved, byte_tokenizer())
    assert why is None and forms.notes("Is 3 even?") == []  # 5 of 8 share a form: templated, checked

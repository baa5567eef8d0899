"""Per-question routing, fast: a tiny ATM student trained on labels that differ by question kind (answer the
"Is N odd?" questions first, think first on the "Start at ..." ones) routes each kind of test question its own way
-- the perception's p(answer first) and the student's first words both follow the kind.

The default ATM fixture (conftest.atm_run) trains on all-'post' labels, so it can only show p > 0.5 everywhere;
this is the check that the perception's decision, and the student's, differ per question. (Here the kind can
also be read off the question by the student itself; that the student is handed the perception's soft prompt
is checked in test_values.py.)"""

from tiny import TRAINED

from atm_min.evaluate import Answering, generate_answers
from atm_min.machinery import data as mdata
from atm_min.machinery import runs, runtime
from atm_min.machinery.config import parse_args
from atm_min.tokenizer import byte_tokenizer

TOK = byte_tokenizer()
FIRST_WORD = {"post": "Answer", "pre": "Reason"}  # a byte-level student this small may stutter after these


def kind(ex):
    return "post" if ex.group.startswith("direct") else "pre"


def test_atm_student_routes_each_kind_of_question_its_own_way(tmp_path, data_dir):
    cfg = parse_args([f"--out_dir={tmp_path}", f"--data_dir={data_dir}", *TRAINED, "--max_test=20",
                      "--max_iters=200"])
    train, test, _ = mdata.load_data(cfg, TOK)
    assert {kind(ex) for ex in test} == {"pre", "post"}
    student, perception = runs.train_run(cfg, runtime.setup(cfg), TOK, train, [kind(ex) for ex in train],
                                         str(tmp_path / "atm.pt"), atm=True, seed=3, show=False)
    records = generate_answers(student, TOK, test, Answering("cpu", 64, 16), perception=perception)
    for ex, r in zip(test, records):
        want = kind(ex)
        assert (r["p_post"] > 0.5) == (want == "post"), (ex.question, r["p_post"])
        assert r["text"].startswith(FIRST_WORD[want]), (ex.question, r["text"])

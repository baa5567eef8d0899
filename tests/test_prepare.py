"""data/prepare.py: every converter on the shared data, a synthetic Fine-tune-CoT task (format generality), the
generic JSON(L) converter, and clean errors on malformed input."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from atm_min.answers import normalize
from atm_min.machinery.data import load_split

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
FTC = SHARED / "datasets" / "finetune-cot"
GSM8K = SHARED / "datasets" / "gsm8k"

_spec = importlib.util.spec_from_file_location("prepare", ROOT / "data" / "prepare.py")
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)

# Kept train examples (teacher right) per shared task: a regression check on the filter. One completion per
# question (the first), as Fine-tune-CoT fine-tunes on; --all_completions adds the extra sampled ones.
EXPECTED = {  # task: (train kept, train completions used, test questions)
    "strategy_qa": (861, 1603, 687),
    "coin_flip": (314, 350, 150),
    "date_understanding": (170, 258, 111),
    "multiarith": (323, 420, 180),
    "last_letter_concatenation": (209, 350, 150),
}
ALL_COMPLETIONS = {  # task: (train kept, train completions) with --all_completions
    "strategy_qa": (861, 1603), "coin_flip": (340, 382), "date_understanding": (189, 290),
    "multiarith": (482, 612), "last_letter_concatenation": (232, 382)}


def need(path: Path):
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")


def run_cli(*args):
    """The script as a user runs it: exit status, stdout, stderr."""
    r = subprocess.run([sys.executable, str(ROOT / "data" / "prepare.py"), *map(str, args)],
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


# ------------------------------------------------------------------------------------------------ Fine-tune-CoT

@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_finetune_cot_shared(task, tmp_path, capsys):
    need(FTC / "completion_data" / f"D_{task}.json")
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", task, "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    print(out)
    kept, total, n_test = EXPECTED[task]
    assert f"kept {kept}, dropped {total - kept} (teacher wrong)" in out
    train, test = load_split(tmp_path / "out")
    assert len(train) == kept and len(test) == n_test
    split = json.loads((FTC / "split" / f"{task}__default.json").read_text())
    assert sorted(int(e.id.split("/")[1]) for e in test) == sorted(split["test"])  # every test question
    assert {int(e.id.split("/")[1]) for e in train} <= set(split["train"])
    assert all(e.group == task and e.answer_type == prepare.FINETUNE_COT_TASKS[task] for e in train + test)

    # Only-correct filter: every kept example's teacher answer normalises to its gold answer.
    data = json.loads((FTC / "completion_data" / f"D_{task}.json").read_text())["data"]
    for e in train:
        _, i, j = e.id.split("/")
        c = next(c for c in data[i] if c["completion_index"] == int(j))
        assert normalize(c["completion"], e.answer_type) == normalize(e.answer, e.answer_type)
        assert e.rationale == c["reasoning_completion"].strip()

    prepare.main(["finetune-cot", "--input", str(FTC), "--task", task, "--out", str(tmp_path / "all"),
                  "--keep_all"])
    capsys.readouterr()
    train_all, test_all = load_split(tmp_path / "all")
    assert len(train_all) == total > len(train) and len(test_all) == n_test
    assert all(e.id.endswith("/0") for e in train_all)  # the first completion of each question only

    prepare.main(["finetune-cot", "--input", str(FTC), "--task", task, "--out", str(tmp_path / "every"),
                  "--all_completions"])
    kept, total = ALL_COMPLETIONS[task]
    assert f"kept {kept}, dropped {total - kept} (teacher wrong)" in capsys.readouterr().out
    assert len(load_split(tmp_path / "every")[0]) == kept


def test_finetune_cot_drop_test_twins(tmp_path, capsys):
    """5 multiarith train questions are also test questions (whitespace-normalised): noted, or left out."""
    need(FTC / "completion_data" / "D_multiarith.json")
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", "multiarith", "--out", str(tmp_path / "a")])
    assert "note: 5 train questions are also test questions" in capsys.readouterr().out
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", "multiarith", "--out", str(tmp_path / "b"),
                  "--drop_test_twins"])
    assert "left out 5 questions that are also test questions" in capsys.readouterr().out
    train, test = load_split(tmp_path / "b")
    questions = {" ".join(e.question.split()) for e in test}
    assert len(test) == 180 and not any(" ".join(e.question.split()) in questions for e in train)
    assert len(train) == 323 - sum(" ".join(e.question.split()) in questions
                                   for e in load_split(tmp_path / "a")[0])


def test_finetune_cot_template_split(tmp_path, capsys):
    need(FTC / "split" / "multiarith__template.json")
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", "multiarith", "--split", "template",
                  "--out", str(tmp_path)])
    split = json.loads((FTC / "split" / "multiarith__template.json").read_text())
    train, test = load_split(tmp_path)
    assert len(test) == len(split["test"]) and "template split" in capsys.readouterr().out


def test_finetune_cot_canonical_answers(tmp_path, capsys):
    need(FTC / "completion_data" / "D_strategy_qa.json")
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", "strategy_qa", "--out", str(tmp_path)])
    train, test = load_split(tmp_path)
    assert {e.answer for e in train + test} == {"yes", "no"}  # gold "Yes"/"No" written canonically


def _synthetic_ftc(root: Path, task="addsub"):
    """A tiny Fine-tune-CoT-format task that is not in shared/: JSON-number answers, several completions."""
    def comp(i, j, q, gold, teacher, rationale):
        return {"sample_index": i, "completion_index": j, "question": q, "answer": gold,
                "reasoning_prompt": f"Q: {q}\nA: Let's think step by step.", "reasoning_completion": rationale,
                "reasoning_finish_reason": "stop", "prompt": "...", "completion": teacher}
    data = {
        "0": [comp(0, 0, "Tom has 3 apples and gets 2. How many?", 5.0, " 5.", " 3 + 2 = 5.")],
        "1": [comp(1, 0, "Ann has 10 pens and loses 4. How many?", "6", " 14.", " 10 + 4 = 14."),
              comp(1, 1, "Ann has 10 pens and loses 4. How many?", "6", " 6 pens.", " 10 - 4 = 6.")],
        "2": [comp(2, 0, "Bo has 1,000 coins and gets 1. How many?", "1001", " 1,001.", " 1000 + 1 = 1,001.")],
        "3": [comp(3, 0, "Cy has 7 and gives 7. How many?", "0", " 7.", " He has 7.")],
        "4": [comp(4, 0, "Unused sample?", "1", " 1.", " 1.")],
    }
    (root / "completion_data").mkdir(parents=True)
    (root / "split").mkdir()
    (root / "completion_data" / f"D_{task}.json").write_text(json.dumps({"metadata": {}, "data": data}))
    (root / "split" / f"{task}__default.json").write_text(json.dumps({"train": [0, 1, 2], "test": [3]}))
    return root


def test_finetune_cot_synthetic_task(tmp_path, capsys):
    src = _synthetic_ftc(tmp_path / "ftc")
    prepare.main(["finetune-cot", "--input", str(src), "--task", "addsub", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "kept 2, dropped 1 (teacher wrong)" in out and "1 samples are in neither split" in out
    assert "1 more teacher completions of train questions are not used" in out
    train, test = load_split(tmp_path / "out")
    assert [(e.id, e.answer, e.rationale) for e in train] == [
        ("addsub/0/0", "5", "3 + 2 = 5."), ("addsub/2/0", "1001", "1000 + 1 = 1,001.")]
    # Every completion: the second, right one of question 1 too.
    prepare.main(["finetune-cot", "--input", str(src), "--task", "addsub", "--out", str(tmp_path / "all"),
                  "--all_completions"])
    assert "kept 3, dropped 1 (teacher wrong)" in capsys.readouterr().out
    assert [e.id for e in load_split(tmp_path / "all")[0]] == ["addsub/0/0", "addsub/1/1", "addsub/2/0"]
    # Test keeps the question even though the teacher was wrong; gold answer.
    assert [(e.id, e.answer, e.answer_type, e.group) for e in test] == [("addsub/3", "0", "number", "addsub")]


def test_finetune_cot_unknown_task_needs_answer_type(tmp_path, capsys):
    src = _synthetic_ftc(tmp_path / "ftc", task="my_task")
    with pytest.raises(SystemExit, match="unknown Fine-tune-CoT task 'my_task'.*--answer_type"):
        prepare.main(["finetune-cot", "--input", str(src), "--task", "my_task", "--out", str(tmp_path / "o")])
    prepare.main(["finetune-cot", "--input", str(src), "--task", "my_task", "--answer_type", "number",
                  "--out", str(tmp_path / "o")])
    assert len(load_split(tmp_path / "o")[0]) == 2


def test_finetune_cot_all_twelve_tasks_have_types():
    assert set(prepare.FINETUNE_COT_TASKS) == {
        "single_eq", "addsub", "multiarith", "gsm8k", "aqua", "svamp", "date_understanding", "commonsense_qa",
        "tracking_shuffled_objects", "coin_flip", "strategy_qa", "last_letter_concatenation"}
    assert prepare.FINETUNE_COT_TASKS["aqua"] == "choice" and prepare.FINETUNE_COT_TASKS["svamp"] == "number"


def test_finetune_cot_malformed(tmp_path):
    src = _synthetic_ftc(tmp_path / "ftc")
    # Missing split file -> names the file.
    rc, _, err = run_cli("finetune-cot", "--input", src, "--task", "addsub", "--split", "template", "--out", tmp_path)
    assert rc != 0 and "addsub__template.json: file not found" in err and "Traceback" not in err
    # Broken JSON -> names file and line.
    (src / "completion_data" / "D_addsub.json").write_text('{"data": {\n  "0": [\n oops')
    rc, _, err = run_cli("finetune-cot", "--input", src, "--task", "addsub", "--out", tmp_path)
    assert rc != 0 and err.startswith("error:") and "D_addsub.json: invalid JSON at line 3" in err
    assert "Traceback" not in err
    # A completion without its rationale -> names the sample.
    _synthetic_ftc(tmp_path / "ftc2")
    path = tmp_path / "ftc2" / "completion_data" / "D_addsub.json"
    raw = json.loads(path.read_text())
    del raw["data"]["1"][1]["reasoning_completion"]
    path.write_text(json.dumps(raw))
    with pytest.raises(SystemExit, match="sample 1: completion 1 lacks reasoning_completion"):
        prepare.main(["finetune-cot", "--input", str(tmp_path / "ftc2"), "--task", "addsub", "--out", str(tmp_path)])
    # Split naming samples the data does not have.
    _synthetic_ftc(tmp_path / "ftc3")
    (tmp_path / "ftc3" / "split" / "addsub__default.json").write_text(json.dumps({"train": [0, 99], "test": [3]}))
    with pytest.raises(SystemExit, match="1 train sample.* not in .*first: 99"):
        prepare.main(["finetune-cot", "--input", str(tmp_path / "ftc3"), "--task", "addsub", "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------------------------- GSM8K

def test_gsm8k_full(tmp_path, capsys):
    need(GSM8K / "train.jsonl")
    prepare.main(["gsm8k", "--input", str(GSM8K), "--out", str(tmp_path)])
    print(capsys.readouterr().out)
    train, test = load_split(tmp_path)
    assert (len(train), len(test)) == (7473, 1319)
    first = train[0]
    assert first.id == "gsm8k/train/0" and first.answer == "72" and first.answer_type == "number"
    assert first.rationale == ("Natalia sold 48/2 = 24 clips in May.\n"
                               "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert first.group == "gsm8k/steps=2"
    assert not any("<<" in e.rationale or "####" in e.rationale for e in train + test)
    assert all("," not in e.answer for e in train + test)
    raw = [json.loads(line) for line in (GSM8K / "train.jsonl").read_text().splitlines()]
    with_comma = next(k for k, r in enumerate(raw) if "," in r["answer"].split("####")[1])
    assert train[with_comma].answer == raw[with_comma]["answer"].split("####")[1].strip().replace(",", "")


def test_gsm8k_malformed(tmp_path):
    src = tmp_path / "g"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps({"question": "q?", "answer": "1+1=<<1+1=2>>2\n#### 2"}) + "\n"
                                     + json.dumps({"question": "q?", "answer": "no marker"}) + "\n" + "{oops\n")
    (src / "test.jsonl").write_text(json.dumps({"question": "q?", "answer": "#### 2"}) + "\n")
    rc, _, err = run_cli("gsm8k", "--input", src, "--out", tmp_path / "o")
    assert rc != 0 and "Traceback" not in err
    assert "train.jsonl: 2 bad line(s)" in err and "line 2: answer has no \"####\"" in err
    assert "line 3: invalid JSON" in err


# ------------------------------------------------------------------------------------------------ generic JSON(L)

def _rows(n):
    return [{"q": f"What is {k} + 1?", "why": f"{k} plus one is {k + 1}.", "gold": k + 1,
             "teacher": f" {k + 1 if k % 3 else k}.", "uid": f"u{k}", "level": f"lvl/{k % 2}"} for k in range(n)]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_two_files(tmp_path, capsys):
    tr, te = _jsonl(tmp_path / "tr.jsonl", _rows(6)), _jsonl(tmp_path / "te.jsonl", _rows(3))
    rc, out, err = run_cli("jsonl", "--train", tr, "--test", te, "--answer_type", "number", "--question_key", "q",
                           "--rationale_key", "why", "--answer_key", "gold", "--out", tmp_path / "o")
    assert rc == 0, err
    assert "train 6 rows, kept 6; test 3" in out
    train, test = load_split(tmp_path / "o")
    assert [e.id for e in train][:2] == ["tr/train/0", "tr/train/1"] and test[0].id == "tr/test/0"
    assert train[1].answer == "2" and train[1].question == "What is 1 + 1?" and train[1].group is None


def test_jsonl_keys_teacher_filter_and_json_list(tmp_path, capsys):
    rows = _rows(9)
    tr = tmp_path / "tr.json"
    tr.write_text(json.dumps(rows, indent=1))  # a JSON list works as well as JSONL
    te = _jsonl(tmp_path / "te.jsonl", [{k: v for k, v in r.items() if k != "teacher"} for r in _rows(2)])
    prepare.main(["jsonl", "--train", str(tr), "--test", str(te), "--answer_type", "number",
                  "--question_key", "q", "--rationale_key", "why", "--answer_key", "gold", "--id_key", "uid",
                  "--group_key", "level", "--teacher_answer_key", "teacher", "--out", str(tmp_path / "o")])
    assert "kept 6, dropped 3 (teacher wrong)" in capsys.readouterr().out  # k = 0, 3, 6 are wrong
    train, test = load_split(tmp_path / "o")
    assert [e.id for e in train] == ["u1", "u2", "u4", "u5", "u7", "u8"]
    assert train[0].group == "lvl/1" and len(test) == 2


def test_jsonl_test_fraction_is_seeded(tmp_path, capsys):
    src = _jsonl(tmp_path / "all.jsonl", _rows(20))
    args = ["jsonl", "--train", str(src), "--test_fraction", "0.25", "--answer_type", "number", "--question_key",
            "q", "--rationale_key", "why", "--answer_key", "gold", "--name", "mine"]
    prepare.main(args + ["--seed", "1", "--out", str(tmp_path / "a")])
    prepare.main(args + ["--seed", "1", "--out", str(tmp_path / "b")])
    prepare.main(args + ["--seed", "2", "--out", str(tmp_path / "c")])
    a, b, c = (load_split(tmp_path / x) for x in "abc")
    assert (len(a[0]), len(a[1])) == (15, 5)
    assert a == b and a[1] != c[1]
    assert {e.id for e in a[0]} | {e.id for e in a[1]} == {f"mine/{k}" for k in range(20)}  # nothing lost


def test_jsonl_malformed(tmp_path):
    rows = _rows(3)
    del rows[1]["why"]
    rows[2]["gold"] = "many"
    tr = _jsonl(tmp_path / "tr.jsonl", rows)
    with tr.open("a") as f:
        f.write("\n[1]\n")
    rc, _, err = run_cli("jsonl", "--train", tr, "--test", tr, "--answer_type", "number", "--question_key", "q",
                         "--rationale_key", "why", "--answer_key", "gold", "--out", tmp_path / "o")
    assert rc != 0 and "Traceback" not in err and err.startswith("error:")
    assert "tr.jsonl: expected JSON objects; not an object at line 5" in err
    tr = _jsonl(tmp_path / "tr.jsonl", rows)
    rc, _, err = run_cli("jsonl", "--train", tr, "--test", tr, "--answer_type", "number", "--question_key", "q",
                         "--rationale_key", "why", "--answer_key", "gold", "--out", tmp_path / "o")
    assert "tr.jsonl: 2 bad row(s)" in err and "line 2: missing key(s) why" in err
    assert "line 3: key 'gold': gold answer 'many' is not a valid 'number' answer" in err
    with pytest.raises(SystemExit, match="exactly one of --test FILE or --test_fraction"):
        prepare.main(["jsonl", "--train", str(tr), "--answer_type", "number", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="nope.jsonl: file not found"):
        prepare.main(["jsonl", "--train", str(tmp_path / "nope.jsonl"), "--test_fraction", "0.5",
                      "--answer_type", "number", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # nothing written on error


def _task_folder(root: Path, task: str, n_train: int, n_test: int, group: bool = True) -> Path:
    """A prepared folder of a fake yes/no task, ids prefixed by the task as the Fine-tune-CoT converter writes them."""
    def row(split, k):
        r = {"id": f"{task}/{split}{k}", "question": f"{task} question {k}?", "rationale": "Because.",
             "answer": "yes" if k % 2 else "no", "answer_type": "yesno"}
        return {**r, "group": task} if group else r
    d = root / task
    d.mkdir()
    _jsonl(d / "train.jsonl", [row("tr", k) for k in range(n_train)])
    _jsonl(d / "test.jsonl", [row("te", k) for k in range(n_test)])
    return d


def test_mix_concatenates_tasks_with_groups_and_caps(tmp_path, capsys):
    a = _task_folder(tmp_path, "alpha", 10, 5)
    b = _task_folder(tmp_path, "beta", 3, 4, group=False)  # no group: the folder's name becomes it
    prepare.main(["mix", "--inputs", str(a), str(b), "--max_train_each", "4", "--max_test_each", "3",
                  "--out", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert "alpha: train 4 of 10, test 3 of 5" in out and "beta: train 3 of 3, test 3 of 4" in out
    train, test = load_split(tmp_path / "m")
    assert [e.group for e in train] == ["alpha"] * 4 + ["beta"] * 3
    assert [e.id for e in test] == ["alpha/te0", "alpha/te1", "alpha/te2", "beta/te0", "beta/te1", "beta/te2"]
    ids = [e.id for e in train[:4]]
    assert ids == sorted(ids, key=lambda i: int(i.split("tr")[1]))  # the subsample keeps file order
    prepare.main(["mix", "--inputs", str(a), str(b), "--max_train_each", "4", "--out", str(tmp_path / "m2")])
    assert load_split(tmp_path / "m2")[0] == train  # seeded: the same subsample again


def test_mix_rejects_the_same_ids_twice(tmp_path):
    a = _task_folder(tmp_path, "alpha", 2, 2)
    rc, _, err = run_cli("mix", "--inputs", a, a, "--out", tmp_path / "m")
    assert rc != 0 and "Traceback" not in err and err.startswith("error:")
    assert "id 'alpha/tr0' is also in an earlier folder" in err

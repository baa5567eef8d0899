"""data/hygiene.py on the Fine-tune-CoT release in ../shared: its counts are facts of a fixed release, asserted
here; the answer parser reads the gold answer from every teacher completion that is right (known exceptions
listed); the command's error path. Tests that need ../shared skip cleanly without it."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from atm_min.answers import is_correct
from atm_min.formats import format_target

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FTC = SHARED / "datasets" / "finetune-cot"
GPT2 = SHARED / "tokenizers" / "gpt2.tiktoken"

sys.path.insert(0, str(ROOT))
from data import hygiene  # noqa: E402
from data.prepare import FINETUNE_COT_TASKS, teacher_is_right  # noqa: E402

COUNTS = ("questions", "completions", "several", "right", "wrong", "no_answer", "right_first", "cut", "cut_right",
          "ftc_right", "ours_only", "ftc_only", "two_answers", "written")
TOKENS = ("positions", "fit 128", "fit 192", "fit 256", "pre target tokens", "target over 128", "prompt tokens")
EXPECTED = {  # data/README.md "Fine-tune-CoT hygiene" prints the same numbers
    "multiarith": dict(
        train=(420, 612, 8, 482, 119, 11, 323, 24, 8, 482, 0, 0, 1, 323),
        test=(180, 180, 0, 142, 37, 1, 142, 13, 5, 142, 0, 0, 0, 180),
        train_tokens=("96 / 139 / 159", 297, 323, 323, "55 / 98 / 123", 0, "39 / 49 / 53"),
        test_tokens=("98 / 154 / 171", 149, 180, 180, "57 / 117 / 124", 0, "40 / 49 / 53"),
        exact=(5, 12, 3), loose=(5, 12, 3)),
    "coin_flip": dict(
        train=(350, 382, 8, 340, 30, 12, 314, 10, 1, 340, 0, 0, 0, 314),
        test=(150, 150, 0, 139, 10, 1, 139, 3, 2, 139, 0, 0, 0, 150),
        train_tokens=("124 / 154 / 166", 186, 314, 314, "71.5 / 98 / 114", 0, "54 / 57 / 60"),
        test_tokens=("129 / 165 / 176", 70, 150, 150, "76 / 111 / 122", 0, "53 / 58 / 59"),
        exact=(0, 0, 0), loose=(0, 0, 0)),
    "last_letter_concatenation": dict(
        train=(350, 382, 8, 232, 150, 0, 209, 2, 0, 223, 9, 0, 0, 209),
        test=(150, 150, 0, 88, 62, 0, 88, 0, 0, 84, 4, 0, 0, 150),
        train_tokens=("93 / 102 / 146", 208, 209, 209, "67 / 75 / 120", 0, "26 / 28 / 30"),
        test_tokens=("93 / 107 / 145", 149, 150, 150, "67 / 81 / 119", 0, "26 / 28 / 29"),
        exact=(0, 0, 0), loose=(0, 0, 0)),
    "date_understanding": dict(
        train=(258, 290, 8, 189, 99, 2, 170, 6, 0, 189, 0, 0, 0, 170),
        test=(111, 111, 0, 81, 29, 1, 81, 2, 1, 82, 0, 1, 0, 111),
        train_tokens=("146 / 181 / 217", 26, 165, 170, "49 / 84 / 111", 0, "97.5 / 110 / 119"),
        test_tokens=("144 / 186 / 228", 22, 107, 111, "48 / 83 / 127", 0, "96 / 111 / 120"),
        exact=(0, 0, 0), loose=(0, 0, 0)),
    "strategy_qa": dict(
        train=(1603, 1603, 0, 861, 457, 285, 861, 456, 192, 856, 5, 0, 4, 861),
        test=(687, 687, 0, 370, 206, 111, 370, 191, 87, 368, 2, 0, 2, 687),
        train_tokens=("101 / 145 / 153", 619, 861, 861, "85 / 129 / 135", 53, "15 / 20 / 26"),
        test_tokens=("104 / 146 / 164", 454, 687, 687, "90 / 129 / 135", 50, "15 / 21 / 31"),
        exact=(1, 0, 0), loose=(1, 0, 0)),
}
# The one teacher completion Fine-tune-CoT's evaluator calls right and our parser does not: its answer text has
# no option letter, only the "A" of "August" (and its date, 08/20/2020, is none of the options).
PARSER_MISSES = {"date_understanding/91/0"}
# Completions counted right only because the first of two different answers in the teacher's answer text is gold
# (both evaluators read the first): hedges ("both yes and no."), an expression, and plain answers that go on.
TWO_ANSWERS = {"multiarith/26/0", "strategy_qa/117/0", "strategy_qa/880/0", "strategy_qa/1322/0",
               "strategy_qa/1599/0", "strategy_qa/1304/0", "strategy_qa/2000/0"}


def need_shared():
    for path in (FTC, GPT2):
        if not path.exists():
            pytest.skip(f"shared data not found: {path}")


@functools.lru_cache(maxsize=None)
def facts(task):
    from atm_min.machinery.hf import get_tokenizer
    return hygiene.task_facts(FTC, task, get_tokenizer("gpt2", str(GPT2)))


@functools.lru_cache(maxsize=None)
def split(task):
    return {k: set(v) for k, v in json.loads((FTC / "split" / f"{task}__default.json").read_text()).items()}


@pytest.mark.parametrize("task", hygiene.TASKS)
def test_counts_are_the_release(task):
    need_shared()
    f, want = facts(task), EXPECTED[task]
    for part in ("train", "test"):
        assert tuple(f[part][k] for k in COUNTS) == want[part], part
        assert tuple(f[part][k] for k in TOKENS) == want[part + "_tokens"], part
        assert f[part]["right"] == f[part]["ftc_right"] + f[part]["ours_only"] - f[part]["ftc_only"]
        assert f[part]["right"] + f[part]["wrong"] + f[part]["no_answer"] == f[part]["completions"]
    assert (f["exact"], f["loose"]) == (want["exact"], want["loose"])


@pytest.mark.parametrize("task", hygiene.TASKS)
def test_parser_reads_gold_from_every_right_teacher_completion(task):
    """Right by Fine-tune-CoT's evaluator (an independent judge): the answer text, and a pre or post target
    written with it, give the gold answer, except the listed completions."""
    need_shared()
    f = facts(task)
    misses = set(f["exceptions"]["parser misses gold"])
    assert misses == {k for k in PARSER_MISSES if k.startswith(task + "/")}
    assert set(f["exceptions"]["right by the first of two different answers"]) == \
        {k for k in TWO_ANSWERS if k.startswith(task + "/")}
    for part in ("train", "test"):
        n_missed = sum(int(k.split("/")[1]) in split(task)[part] for k in misses)
        for view in ("answer text", "pre target", "post target"):
            assert f[part]["parser " + view] == f[part]["ftc_right"] - n_missed


@pytest.mark.parametrize("task", hygiene.TASKS)
def test_parser_reads_gold_from_every_kept_completion(task):
    """Right by the converter's own rule: a pre and a post target written with the teacher's answer text are
    scored right by is_correct, for every completion of the release."""
    need_shared()
    answer_type = FINETUNE_COT_TASKS[task]
    data = json.loads((FTC / "completion_data" / f"D_{task}.json").read_text())["data"]
    n = 0
    for comps in data.values():
        for c in comps:
            if teacher_is_right(c["completion"], c["answer"], answer_type):
                n += 1
                for mode in ("pre", "post"):
                    text = format_target({"rationale": c["reasoning_completion"], "answer": c["completion"]}, mode)
                    assert is_correct(text, c["answer"], answer_type), (c["sample_index"], mode, text[-80:])
    assert n == EXPECTED[task]["train"][3] + EXPECTED[task]["test"][3]


def test_ftc_rule_restated():
    """The restated Fine-tune-CoT rule on the cases where it and ours part."""
    assert hygiene.ftc_right("date_understanding", " August 20th, 2020.", "A")  # the "A" of "August"
    assert not hygiene.ftc_right("last_letter_concatenation", ' "r-a-y-n".', "rayn")
    assert hygiene.ftc_right("last_letter_concatenation", ' "rayn".', "rayn")
    assert not hygiene.ftc_right("strategy_qa", " yes- it is.", "Yes")
    assert hygiene.ftc_right("strategy_qa", " yes, it is.", "Yes")
    assert hygiene.ftc_right("multiarith", " 1,080 apples.", "1080")


def test_cli_prints_a_table_and_writes_nothing(tmp_path, capsys, monkeypatch):
    need_shared()
    monkeypatch.chdir(tmp_path)
    hygiene.main(["--input", str(FTC), "--tokenizer_path", str(GPT2), "--task", "date_understanding"])
    out = capsys.readouterr().out
    assert "date_understanding (answer type choice" in out
    assert "| date_understanding | 258 (8 with several completions) | 290: 189 / 99 / 2 | 170 |" in out
    assert "date_understanding/91/0: 'August 20th" in out
    assert not list(tmp_path.iterdir())


def test_cli_errors(tmp_path):
    # As a user runs it: one error line, exit status 1, no traceback.
    r = subprocess.run([sys.executable, str(ROOT / "data" / "hygiene.py"), "--input", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: --input") and "no such folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr

    def error(*args):
        with pytest.raises(SystemExit) as e:
            hygiene.main([str(a) for a in args])
        return str(e.value.code)

    (tmp_path / "completion_data").mkdir()
    assert "D_coin_flip.json: file not found" in error("--input", tmp_path, "--task", "coin_flip")
    (tmp_path / "completion_data" / "D_coin_flip.json").write_text("{}")
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "coin_flip__default.json").write_text("{}")
    assert error("--input", tmp_path, "--task", "coin_flip", "--gguf", tmp_path / "none.gguf").startswith(
        "error: --gguf")
    assert "invalid choice" in error("--task", "nope")
    msg = error("--input", tmp_path, "--task", "coin_flip", "--tokenizer_path", tmp_path / "none")
    if "GPT-2 tokenizer file not found" not in msg:  # tiktoken had a cached copy of its own: the data are wrong
        assert 'expected an object with a "data" object' in msg


@pytest.mark.slow
def test_near_duplicates_are_only_exact_twins():
    """--near: beyond the exact twins, the test questions closest to a train question differ in their numbers
    (58 multiarith questions at word-level similarity >= 0.9) or in other words (names, the thing asked)."""
    need_shared()
    data = json.loads((FTC / "completion_data" / "D_multiarith.json").read_text())["data"]
    q = {part: [data[str(i)][0]["question"] for i in sorted(split("multiarith")[part])] for part in ("train", "test")}
    near = hygiene.nearest_train(q["test"], q["train"])
    close = [(a, b) for s, a, b in near if s >= 0.9 and hygiene.loose(a) != hygiene.loose(b)]
    numbers = [(a, b) for a, b in close if all(w.isdigit() for w in sum(hygiene.word_diff(a, b), []))]
    assert (sum(s == 1.0 for s, _, _ in near), len(close), len(numbers)) == (5, 101, 58)

"""tools/learning_curve.py: the validation split never overlaps the students' training questions and is the same
for every mode, each epoch's scores are the answers' own (hand-counted cases), a run stopped between epochs goes
on where it stopped and gives the curve an uninterrupted run gives, and bad input is one error line."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from atm_min.machinery.errors import ProjectError
from tiny import TINY

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("learning_curve", ROOT / "tools" / "learning_curve.py")
curve = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(curve)


def test_validation_split_is_disjoint_seeded_and_ordered():
    fit, val = curve.split_validation(20, 5, seed=3)
    assert len(val) == 5 and sorted(fit + val) == list(range(20)) and not set(fit) & set(val)
    assert val == sorted(val) and (fit, val) == curve.split_validation(20, 5, seed=3)
    assert val != curve.split_validation(20, 5, seed=4)[1]


def _ex(i, answer):
    return SimpleNamespace(id=f"q{i}", answer=answer, answer_type="yesno")


def test_epoch_record_counts_by_hand():
    # gold: yes, yes, yes, no -> majority 3/4. Outputs: two right "yes", one wrong "yes", one cut with no answer.
    examples = [_ex(0, "yes"), _ex(1, "yes"), _ex(2, "no"), _ex(3, "yes")]
    records = [dict(text="Reasoning: a. Answer: yes", correct=True, new_tokens=5),
               dict(text="Reasoning: b. Answer: yes", correct=True, new_tokens=5),
               dict(text="Reasoning: c. Answer: yes", correct=False, new_tokens=5),
               dict(text="Reasoning: d d d d", correct=False, new_tokens=8)]
    r = curve.epoch_record(examples, records, max_new_tokens=8)
    assert (r["n"], r["right"], r["acc"], r["majority"]) == (4, 2, 0.5, 0.75)
    assert (r["top_answer"], r["top_share"]) == ("yes", 0.75)  # its own most common answer: 3 of 4
    assert (r["cut"], r["no_answer"], r["new_tokens"]) == (0.25, 0.25, 5.75)
    assert r["outcomes"][3] == ["q3", None, 0, 8]


def _run(out, data_dir, *extra):
    """The tool in this process (a subprocess would import torch again for each call)."""
    curve.main(["--val", "16", "--lrs", "1e-2", *extra, *TINY, f"--data_dir={data_dir}", f"--out_dir={out}",
                "--warmup_iters=0"])


def test_a_stopped_curve_goes_on_to_the_same_curve(tmp_path, data_dir, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _run(whole, data_dir, "--epochs", "2")
    _run(parts, data_dir, "--epochs", "1")  # stopped after epoch 1 ...
    _run(parts, data_dir, "--epochs", "2")  # ... and run again: epoch 1 is not scored twice
    rows = {d: [json.loads(x) for x in (d / "curve.jsonl").read_text().splitlines()] for d in (whole, parts)}
    key = lambda r: (r["mode"], r["epoch"])  # noqa: E731
    assert sorted(map(key, rows[parts])) == [("post", 1), ("post", 2), ("pre", 1), ("pre", 2)]
    assert sorted(rows[whole], key=key) == sorted(rows[parts], key=key)  # the same answers, epoch by epoch
    assert not list(parts.glob("*.pt"))  # finished students' checkpoints are deleted
    capsys.readouterr()
    curve.main(["--table", str(parts)])
    assert capsys.readouterr().out.count("\n| parts |") == 4


def test_bad_input_is_one_error_line(tmp_path, data_dir):
    for extra in (["--val", "0"], ["--modes", "pre,sideways"], ["--lrs", "fast"]):
        with pytest.raises(ProjectError):
            _run(tmp_path / "x", data_dir, *extra)
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "learning_curve.py"), "--modes", "sideways"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr


def test_table_and_plot_read_committed_curves(tmp_path):
    """The curves in docs/runs/learning_curve are what docs/results.md's table is made from."""
    pytest.importorskip("matplotlib")
    dirs = [ROOT / "docs" / "runs" / "learning_curve" / t for t in ("coin_flip", "strategy_qa")]
    table = curve.table([str(d) for d in dirs])
    assert table in (ROOT / "docs" / "results.md").read_text()
    curve.plot(str(tmp_path / "c.png"), [str(d) for d in dirs])
    assert (tmp_path / "c.png").stat().st_size > 1000

"""tools/fold_evidence.py reads a run's cached fold evidence as train.py does: on a finished run its counts and
labels are the ones train.py wrote (labels.json, results.json's k-fold evidence)."""

import importlib.util
import json
from pathlib import Path

import pytest

from atm_min.machinery.data import load_split

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fold_evidence", ROOT / "tools" / "fold_evidence.py")
fold_evidence = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fold_evidence)


def test_counts_and_labels_match_the_run(tiny_run, data_dir, capsys):
    train = load_split(data_dir)[0][:48]  # tests/tiny.py TINY: max_train=48
    ev = fold_evidence.fold_evidence(str(tiny_run.out), train)
    labels = json.loads((tiny_run.out / "labels.json").read_text())
    assert ev["labels"]["post"] == sum(v["label"] == "post" for v in labels.values())
    assert sum(ev["labels"].values()) == len(labels) == 48
    a = json.loads((tiny_run.out / "results.json").read_text())["atm"]["label_counts"]["ALL"]
    assert (ev["counts"]["pre only"], ev["counts"]["post only"], ev["counts"]["both"], ev["counts"]["neither"]) == \
        (a["pre_only"], a["post_only"], a["both"], a["neither"])
    fold_evidence.main(["--out_dir", str(tiny_run.out), "--data_dir", data_dir, "--max_train", "48"])
    assert "48 questions with both fold students' evidence" in capsys.readouterr().out


def test_no_evidence_yet_is_one_error_line(tmp_path, data_dir):
    with pytest.raises(SystemExit, match="^error: no fold evidence in"):
        fold_evidence.main(["--out_dir", str(tmp_path), "--data_dir", data_dir])

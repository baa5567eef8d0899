"""tools/arithmetic_slips.py: a thinking-first output's equations are checked one by one, the output lands in the
right bin, and an answer that repeats the last (wrong) result is counted as copying it."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("arithmetic_slips", ROOT / "tools" / "arithmetic_slips.py")
slips_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slips_tool)

ROWS = [  # (text, correct)
    ("Reasoning: 42 - 9 = 32. Then 32 + 7 = 39. Answer: 39\n", False),   # a slip, copied into the answer
    ("Reasoning: 3 + 9 = 12. 12 - 10 = 2. Answer: 2\n", True),           # every equation right
    ("Reasoning: 3 x 4 = 12. 1,200 / 2 = 600. Answer: 7\n", False),      # right equations, another answer
    ("Reasoning: She has 6 and 9, so 15. Answer: 15\n", True),           # no equation in a op b = c form
    ("Answer: 15\nReasoning: 6 + 9 = 14.\n", True),                      # answers first: not counted
]


def test_equations_are_checked():
    assert slips_tool.equations("42 - 9 = 32, 32 + 7 = 39 and 4 × 5 = 20; 1,200 / 2 = 600; 5 / 0 = 1") == [
        ("32", False), ("39", True), ("20", True), ("600", True), ("1", False)]  # as the answer parser writes them


def test_bins_and_copies():
    rows = [dict(text=t, correct=c) for t, c in ROWS]
    s = slips_tool.slips(rows)
    assert s["a wrong equation"] == dict(n=1, right=0, copies=1)
    assert s["every equation right"] == dict(n=2, right=1, copies=1)
    assert s["no equation read"] == dict(n=1, right=1, copies=0)


def test_cli_table_and_errors(tmp_path, capsys):
    rows = [dict(id=str(i), group="multiarith" if i < 3 else "coin_flip", text=t, correct=c, mode="pre",
                 new_tokens=9) for i, (t, c) in enumerate(ROWS)]
    (tmp_path / "predictions_pre.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    slips_tool.main([str(tmp_path), "--task", "multiarith"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith("| pre | 3 | 1: 0 right, 1 = last result | 2: 1 right, 1 = last result | 0: 0 right |")
    with pytest.raises(SystemExit, match="^error: no test question .* in the group 'date'"):
        slips_tool.main([str(tmp_path), "--task", "date"])
    with pytest.raises(SystemExit, match="^error: no predictions_"):
        slips_tool.main([str(tmp_path / "missing")])

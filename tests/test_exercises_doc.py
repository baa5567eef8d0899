"""docs/exercises.md's code: its atm_row.py script runs on a results.json of the shape train.py writes, and every
exercise names a command and a measured outcome (the outcomes themselves come from runs too long for a test)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from atm_min.evaluate import summarize

DOC = Path(__file__).resolve().parents[1] / "docs" / "exercises.md"


def test_atm_row_script_prints_one_row_per_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/exercises.md has no python block"
    script = tmp_path / "atm_row.py"
    script.write_text(blocks[0])
    records = [dict(group=f"multistep/{n}", correct=n < 4, mode="post" if n == 1 else "pre", new_tokens=10 + n)
               for n in range(1, 7)] + [dict(group="direct/2", correct=True, mode="post", new_tokens=11)]
    atm = {**summarize(records, 1.0), "label_agreement": 0.97}
    run = tmp_path / "out"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"atm": atm}))
    r = subprocess.run([sys.executable, str(script), str(run)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.strip().splitlines()
    assert header.split()[:3] == ["run", "acc", "chain"]
    cells = row.split()
    assert cells[0] == str(run) and float(cells[1]) == round(100 * 4 / 7, 1)  # 3 chains + 1 parity right of 7
    assert cells[-1] == "97.0"


def test_every_exercise_has_a_command_and_a_measured_outcome():
    text = DOC.read_text()
    parts = re.split(r"\n## Exercise \d+", text)[1:]
    assert len(parts) >= 6
    for part in parts:
        if "(no new runs)" in part.splitlines()[0]:  # it re-reads the runs of the others
            continue
        assert "Measured outcome" in part and re.search(r"\*\*Commands?", part)
        assert "2-core" in part.split("Measured outcome")[1]  # the outcome names its machine

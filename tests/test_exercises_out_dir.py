"""Every training command of docs/exercises.md writes into a folder of its own: none into `out/`, the quick
start's default run, which plot.py and sample.py read."""

import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "exercises.md"


def train_commands(text: str) -> list[str]:
    code = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))
    return [line.split("#")[0].strip() for line in code.splitlines() if "python train.py" in line]


def out_dir(command: str) -> str:
    args = shlex.split(command.replace('"$@"', ""))
    found = [a.split("=", 1)[1] for a in args if a.startswith("--out_dir=")]
    return found[-1] if found else "out"  # TrainConfig's default


def test_no_exercise_trains_into_the_quick_starts_out_dir():
    commands = train_commands(DOC.read_text())
    assert len(commands) >= 8
    bad = [c for c in commands if out_dir(c).rstrip("/") == "out"]
    assert not bad, f"these exercise commands overwrite out/ (the quick start's run): {bad}"


def test_the_check_sees_a_command_without_out_dir():
    assert out_dir("python train.py --max_iters=1500") == "out"
    assert out_dir("python train.py --max_iters=1500 --out_dir=out_0_$name --evidence_from=out_0") == "out_0_$name"

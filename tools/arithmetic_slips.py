"""Does a thinking-first student's answer follow its own arithmetic slips? The paper's case against pre-thinking,
counted on a finished run's test outputs:

    python tools/arithmetic_slips.py out/ftcot-multiarith [--students pre atm]
    python tools/arithmetic_slips.py out/ftcot-mix3s --task multiarith     # one task of a mixture

Every equation the student wrote as `a op b = c` (numbers side by side; op one of + - * x × /) is checked.
Each output falls in one of three bins: at least one wrong equation (a slip); every equation right; no equation
in that form (arithmetic in words, or words between the numbers: "4 cupcakes * 29 cookies = 124" is not read).
Per bin: outputs, right answers, and how many answers are the result of the last equation written (the answer
copies the rationale, slip or not). Answering-first students write no rationale before their answer, so the tool
is for pre and ATM (its thinking-first answers).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from atm_min.answers import normalize, parse_output  # noqa: E402
from atm_min.formats import group_levels  # noqa: E402
from atm_min.machinery.errors import ProjectError  # noqa: E402
from atm_min.machinery.report import read_predictions  # noqa: E402

EQUATION = re.compile(r"(\d+(?:\.\d+)?)\s*([-+*x×/])\s*(\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "x": lambda a, b: a * b,
       "×": lambda a, b: a * b, "/": lambda a, b: a / b if b else None}
BINS = ("a wrong equation", "every equation right", "no equation read")


def equations(text: str) -> list[tuple[str, bool]]:
    """Each `a op b = c` in text, in order: (c as the answer parser writes a number, whether c is a op b)."""
    out = []
    for a, op, b, c in EQUATION.findall(text.replace(",", "")):  # "1,200" is one number
        value = OPS[op](float(a), float(b))
        out.append((normalize(c, "number"), value is not None and abs(value - float(c)) < 1e-6))
    return out


def slips(rows: list[dict]) -> dict[str, dict]:
    """{bin: {"n", "right", "copies"}} over the outputs that think first (mode "pre")."""
    out = {b: dict(n=0, right=0, copies=0) for b in BINS}
    for r in rows:
        mode, answer, rationale = parse_output(r["text"])
        if mode != "pre":
            continue
        eqs = equations(rationale or r["text"])
        b = BINS[2] if not eqs else BINS[0] if not all(ok for _, ok in eqs) else BINS[1]
        out[b]["n"] += 1
        out[b]["right"] += bool(r["correct"])
        out[b]["copies"] += bool(eqs) and normalize(answer, "number") == eqs[-1][0]  # the parser's reading
    return out


def table(runs: list[tuple[str, dict[str, list[dict]]]]) -> str:
    lines = ["| run | student | thinking-first outputs | " + " | ".join(BINS) + " |", "|---|---|---|---|---|---|"]
    for name, preds in runs:
        for who, rows in preds.items():
            s = slips(rows)
            cells = [f"{s[b]['n']}: {s[b]['right']} right" + (f", {s[b]['copies']} = last result" if b != BINS[2]
                                                                else "") for b in BINS]
            lines.append(f"| {name} | {who} | {sum(s[b]['n'] for b in BINS)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dirs", nargs="+", help="finished runs' out_dir folders")
    p.add_argument("--students", nargs="+", default=["pre", "atm"], help="whose predictions (default: pre atm)")
    p.add_argument("--task", default=None, help="only the test questions of this group (a task of a mixture)")
    a = p.parse_args(argv)
    runs = []
    for out in a.out_dirs:
        try:
            preds = read_predictions(out, a.students)
        except (ProjectError, OSError) as e:
            sys.exit(f"error: {e}")
        if not preds:
            sys.exit(f"error: no predictions_{{{','.join(a.students)}}}.jsonl in {out}: is it a finished train.py run?")
        if a.task:
            preds = {who: [r for r in rows if a.task in group_levels(r.get("group"))] for who, rows in preds.items()}
            if not any(preds.values()):
                sys.exit(f"error: no test question of {out} is in the group {a.task!r}")
        runs.append((os.path.basename(os.path.normpath(out)) + (f" ({a.task})" if a.task else ""), preds))
    print(table(runs))


if __name__ == "__main__":
    main()

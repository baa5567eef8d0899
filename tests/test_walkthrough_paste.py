"""docs/walkthrough.md says: paste the blocks into `python` one after the other. This pastes them, into a real
interactive interpreter (`python -q -i`, stdin = every ```python block followed by the Enter a user presses after
it), and expects no error and exactly the outputs the document shows. The interactive prompt is stricter than
exec: a compound statement must be closed by a blank line before the next unindented line (else SyntaxError),
and a bare expression prints its value (`learner.eval()` would print the whole model)."""

import os
import subprocess
import sys

from test_walkthrough import DOC, ROOT, blocks, same


def paste(code_blocks: list[str]) -> subprocess.CompletedProcess:
    stdin = "".join(code + "\n" for code in code_blocks)  # each block, then Enter on an empty prompt
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-q", "-i"], input=stdin, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_an_interactive_prompt_takes_the_pasted_blocks_without_error():
    found = blocks(DOC.read_text())
    r = paste([code for code, _ in found])
    errors = [line for line in r.stderr.splitlines() if "Error" in line or "Traceback" in line]
    assert not errors, "pasting docs/walkthrough.md into `python` fails:\n" + r.stderr[-3000:]
    want = "".join(expected.group(2) for _, expected in found if expected is not None)
    assert same(r.stdout, want), f"the pasted blocks print something else than the document shows:\n{r.stdout}"


def test_the_check_catches_a_loop_not_closed_by_a_blank_line_and_an_echoed_value():
    r = paste(["for i in range(2):\n    print(i)\nprint('after')\n", "x = 7\nx\n"])
    assert "SyntaxError" in r.stderr
    assert r.stdout == "7\n"  # the bare expression echoed, as in the document it would not be

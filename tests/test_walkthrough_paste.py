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


MARK = "\x1e"  # printed after each block (a character no block prints), to tell the blocks' outputs apart


def test_an_interactive_prompt_takes_the_pasted_blocks_and_prints_what_the_document_shows():
    """Every block runs without error, and prints what the ```text block after it shows (nothing, where there is
    none). Numbers are compared to the precision they are printed with (test_walkthrough.same). After a
    deliberate change: `python tests/test_walkthrough.py --update`, then review the diff."""
    found = blocks(DOC.read_text())
    pasted = []
    for code, _ in found:
        pasted += [code, f"print({MARK!r})\n"]  # after the block and the Enter that ends it
    r = paste(pasted)
    errors = [line for line in r.stderr.splitlines() if "Error" in line or "Traceback" in line]
    assert not errors, "pasting docs/walkthrough.md into `python` fails:\n" + r.stderr[-3000:]
    outputs = r.stdout.split(MARK + "\n")
    assert len(outputs) == len(found) + 1 and outputs[-1] == "", r.stdout[-3000:]
    n_checked = 0
    for n, ((code, expected), got) in enumerate(zip(found, outputs), start=1):
        if expected is None:
            assert not got, f"block {n} prints, but the document shows no ```text output after it:\n{got}"
            continue
        n_checked += 1
        want = expected.group(2)
        assert same(got, want), (f"docs/walkthrough.md block {n} printed something else than the document "
                                 f"shows (run `python tests/test_walkthrough.py --update` after a deliberate "
                                 f"change):\n--- code\n{code}--- document\n{want}--- now\n{got}")
    assert len(found) >= 10 and n_checked >= 10


def test_the_check_catches_a_loop_not_closed_by_a_blank_line_and_an_echoed_value():
    r = paste(["for i in range(2):\n    print(i)\nprint('after')\n", "x = 7\nx\n"])
    assert "SyntaxError" in r.stderr
    assert r.stdout == "7\n"  # the bare expression echoed, as in the document it would not be

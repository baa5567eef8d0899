"""docs/walkthrough.md is executable: every ```python block runs, in order, in one namespace, and what it prints
must equal the ```text block right after it. So the document cannot drift from the code. The check itself pastes
the blocks into a real interactive `python` (tests/test_walkthrough_paste.py, with `same` and `blocks` from here);
this file also rewrites the outputs.

Numbers are compared to the precision they are printed with (one unit in the last printed digit of slack, for
a value that rounds the other way on another CPU); everything else must match exactly.

After a deliberate change, rewrite the outputs in place and review the diff:

    python tests/test_walkthrough.py --update
"""

import contextlib
import io
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "walkthrough.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+")


def blocks(text):
    """[(python code, output block match or None)] in document order."""
    found = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(found):
        if m.group(1) != "python":
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        follows = nxt is not None and nxt.group(1) == "text" and not text[m.end():nxt.start()].strip()
        out.append((m.group(2), nxt if follows else None))
    return out


def run_blocks(text):
    """Execute every python block; yield (block number, code, printed output, expected output match)."""
    return run_code(blocks(text), DOC.name)


def run_code(pairs, source: str):
    """Execute each (code, expected) in order in one namespace; yield (number, code, printed output, expected).
    The notebook's cells run through here too (tests/test_walkthrough_notebook.py)."""
    namespace = {"__name__": "walkthrough"}
    dtype = torch.get_default_dtype()
    try:
        for n, (code, expected) in enumerate(pairs, start=1):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{source} block {n}", "exec"), namespace)
            yield n, code, buf.getvalue(), expected
    finally:
        torch.set_default_dtype(dtype)  # the walkthrough must not leave global state to the next test


def same(got: str, want: str) -> bool:
    """Equal, except that a number may differ by one unit in its last printed digit."""
    if NUMBER.sub("#", got) != NUMBER.sub("#", want):
        return False
    for a, b in zip(NUMBER.findall(got), NUMBER.findall(want)):
        if a == b:
            continue
        if "." not in b or "e" in b.lower():
            return False
        unit = 10.0 ** -len(b.split(".")[1])
        if abs(float(a) - float(b)) > unit * 1.01:
            return False
    return True


def test_readme_links_the_walkthrough():
    assert "docs/walkthrough.md" in (ROOT / "README.md").read_text()


def update():
    """Rewrite every output block with what its code prints now (a missing one is added)."""
    text = DOC.read_text()
    pieces, pos = [], 0
    torch.set_num_threads(1)
    for n, code, got, expected in run_blocks(text):
        if expected is not None:
            pieces.append(text[pos:expected.start(2)] + got)
            pos = expected.end(2)
        elif got:
            end = text.index(code, pos) + len(code) + len("```\n")
            pieces.append(text[pos:end] + "```text\n" + got + "```\n")
            pos = end
    DOC.write_text("".join(pieces) + text[pos:])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_walkthrough.py --update   (rewrites docs/walkthrough.md's outputs)")
    update()
    print(f"updated {DOC}")

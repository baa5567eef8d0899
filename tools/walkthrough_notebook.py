"""docs/walkthrough.ipynb from docs/walkthrough.md, for courses that hand out notebooks. The page is the one source:
its prose becomes markdown cells, each ```python block a code cell, and the ```text block right after it that
cell's recorded output. After editing the page (or `python tests/test_walkthrough.py --update`):

    python tools/walkthrough_notebook.py

tests/test_walkthrough_notebook.py fails while the committed notebook differs from what this writes, and runs its
cells. Only the json module: the nbformat v4 structure is written by hand, so nothing new to install.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "walkthrough.md"
NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)  # as tests/test_walkthrough.py reads the page
# The page is run from the repository root; Jupyter starts a notebook in its own folder, docs/.
SETUP = """# the walkthrough runs from the repository root; Jupyter starts this notebook in docs/
import os, sys
if os.path.basename(os.getcwd()) == "docs":
    os.chdir("..")
sys.path.insert(0, os.getcwd())"""


def lines(text: str) -> list[str]:
    """nbformat's multi-line string: a list of lines, each keeping its newline."""
    return text.splitlines(keepends=True)


def markdown_cells(text: str) -> list[dict]:
    """One cell per section: the text is cut before each heading."""
    parts = re.split(r"\n\n(?=#{1,6} )", text.strip("\n"))
    return [{"cell_type": "markdown", "metadata": {}, "source": lines(p)} for p in parts if p.strip()]


def code_cell(n: int, code: str, output: str | None) -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": lines(output)}] if output else []
    return {"cell_type": "code", "execution_count": n, "metadata": {}, "outputs": outputs,
            "source": lines(code.rstrip("\n"))}


def notebook(md: str) -> dict:
    """The page as an nbformat v4 notebook: its prose and code in order, a setup cell before the first code."""
    cells, pos, n = [], 0, 0
    found = list(FENCE.finditer(md))
    for i, m in enumerate(found):
        if m.group(1) != "python":  # other fences stay in the prose; a code block's output is taken with it
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        follows = nxt is not None and nxt.group(1) == "text" and not md[m.end():nxt.start()].strip()
        cells += markdown_cells(md[pos:m.start()])
        if n == 0:
            n += 1
            cells.append(code_cell(n, SETUP, None))
        n += 1
        cells.append(code_cell(n, m.group(2), nxt.group(2) if follows else None))
        pos = nxt.end() if follows else m.end()
    cells += markdown_cells(md[pos:])
    meta = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 4}


def render(md: str) -> str:
    """The notebook file's text (stable: the same page gives the same bytes)."""
    return json.dumps(notebook(md), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv:
        print(f"error: {' '.join(argv)}: no arguments; run `python tools/walkthrough_notebook.py` to rewrite "
              f"{NOTEBOOK.relative_to(ROOT)} from {DOC.relative_to(ROOT)}", file=sys.stderr)
        return 2
    NOTEBOOK.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""docs/walkthrough.ipynb is docs/walkthrough.md as a notebook, written by tools/walkthrough_notebook.py: the
committed file must be exactly what the script writes from the page now (so the two cannot drift), and its code
cells, run in order in one namespace, must print the outputs the notebook shows (compared as the page's are:
test_walkthrough.same). After changing the page: `python tools/walkthrough_notebook.py`."""

import importlib.util
import json

from test_walkthrough import DOC, ROOT, blocks, run_code, same

_spec = importlib.util.spec_from_file_location("walkthrough_notebook", ROOT / "tools" / "walkthrough_notebook.py")
walkthrough_notebook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(walkthrough_notebook)
NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"


def test_the_committed_notebook_is_what_the_script_writes_from_the_page():
    want = walkthrough_notebook.render(DOC.read_text(encoding="utf-8"))
    assert NOTEBOOK.read_text(encoding="utf-8") == want, \
        "docs/walkthrough.ipynb is stale: run `python tools/walkthrough_notebook.py` and commit it"


def test_the_notebook_holds_every_block_of_the_page_with_its_output():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4 and {c["cell_type"] for c in nb["cells"]} == {"markdown", "code"}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"][1:]  # the first sets the working folder
    page = blocks(DOC.read_text(encoding="utf-8"))
    assert ["".join(c["source"]) + "\n" for c in code] == [b for b, _ in page]
    shown = ["".join(o["text"]) for c in code for o in c["outputs"]]
    assert shown == [m.group(2) for _, m in page if m is not None]
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## 12. The same stages on a real question" in prose and "```bash" in prose  # the shell blocks stay prose


def test_the_notebook_cells_run_in_order_and_print_their_recorded_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = [("".join(c["source"]), "".join("".join(o["text"]) for o in c["outputs"]))
             for c in nb["cells"] if c["cell_type"] == "code"]
    for n, code, got, want in run_code(cells, NOTEBOOK.name):
        assert same(got, want), f"notebook code cell {n} printed something else:\n--- code\n{code}\n--- notebook\n" \
                                f"{want}--- now\n{got}"


def test_the_script_takes_no_arguments(capsys):
    assert walkthrough_notebook.main(["--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1

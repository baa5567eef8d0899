"""tools/paper_table.py: the paper-shaped tables of a finished run hold the run's own numbers (results.json), its
answer-format counts are the predictions' (no "Answer:" at all), and a run without results is one error line."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("paper_table", ROOT / "tools" / "paper_table.py")
paper_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_table)


def _rows(text: str, table: int) -> dict:
    """{task: cells} of table number `table` (0, 1, 2) of the tool's output."""
    lines = text.strip().split("\n\n")[table].splitlines()[2:]
    return {cells[1]: cells[2:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}


def test_tables_hold_the_runs_numbers(tiny_run, capsys):
    paper_table.main([str(tiny_run.out), "--max_new_tokens", "999"])
    out = capsys.readouterr().out
    results = json.loads((tiny_run.out / "results.json").read_text())
    acc = _rows(out, 0)
    tasks = sorted(g for g in results["pre"]["by_group"] if "/" not in g)
    assert list(acc) == ["ALL"] + tasks  # a run with several groups: one row each
    for task, cells in acc.items():
        for who, cell in zip(paper_table.NAMES, cells[1:]):
            s = results[who] if task == "ALL" else results[who]["by_group"][task]
            assert cell == f"{s['accuracy']:.3f}"
    preds = [json.loads(line) for line in (tiny_run.out / "predictions_pre.jsonl").read_text().splitlines()]
    no_answer = sum("Answer:" not in r["text"] for r in preds)
    assert _rows(out, 1)["ALL"][1].startswith(f"{no_answer} (0 cut)")  # nothing reaches 999 tokens
    c = results["atm"]["label_counts"]["ALL"]
    assert _rows(out, 2)["ALL"][0] == f"{c['pre_only']} / {c['post_only']} / {c['both']} / {c['neither']}"


def test_a_run_without_results_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match="^error: .*results.json not found"):
        paper_table.main([str(tmp_path)])


def test_a_run_without_baselines_has_its_atm_row(tmp_path, capsys):
    """--baselines=false (e.g. a label rule tried on reused evidence): only ATM's numbers, the rest '-'."""
    from atm_min.evaluate import summarize
    rows = [dict(id=str(i), group=g, text="Answer: yes\n", correct=i % 2 == 0, mode="post", new_tokens=4, p_post=0.9)
            for i, g in enumerate(["a", "a", "b", "b"])]
    (tmp_path / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
    (tmp_path / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paper_table.main([str(tmp_path)])
    acc = _rows(capsys.readouterr().out, 0)
    assert list(acc) == ["ALL", "a", "b"] and acc["ALL"][0] == "4" and acc["ALL"][1] == "-"
    assert acc["ALL"][4] == "0.500" and acc["a"][-1] == "1.00"  # ATM's accuracy and answer-first share


def test_seeds_table_gives_mean_and_range(tmp_path, capsys):
    """--seeds: each accuracy's mean and lowest-highest over the runs, per task."""
    from atm_min.evaluate import summarize
    outs = []
    for k, right in enumerate([(1, 1, 0, 0), (1, 1, 1, 0)]):  # ATM right on 2 of 4, then 3 of 4
        rows = [dict(id=str(i), group=g, text="Answer: yes\n", correct=bool(c), mode="post", new_tokens=4, p_post=0.9)
                for i, (g, c) in enumerate(zip(["a", "a", "b", "b"], right))]
        out = tmp_path / f"s{k}"
        out.mkdir()
        (out / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
        (out / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        outs.append(str(out))
    paper_table.main(outs)
    assert "| task | runs |" not in capsys.readouterr().out  # without --seeds: no spread table, nothing pooled
    paper_table.main(["--seeds", *outs])
    lines = capsys.readouterr().out.strip().split("\n\n")[3].splitlines()[2:]  # this table has no run column
    spread = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}
    assert list(spread) == ["ALL", "a", "b"]
    assert spread["ALL"][0] == "2" and spread["ALL"][4] == "0.625 (0.500-0.750)"  # ATM: 2/4 and 3/4
    assert spread["a"][4] == "1.000 (1.000-1.000)" and spread["b"][4] == "0.250 (0.000-0.500)"
    assert spread["ALL"][1] == "-"  # no pre baseline in these runs
    rows = [dict(r, group="c") for r in map(json.loads, (tmp_path / "s1" / "predictions_atm.jsonl").open())]
    other = tmp_path / "other_task"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
    (other / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match="^error: --seeds takes runs of one setup .*other_task: c$"):
        paper_table.main(["--seeds", outs[0], str(other)])  # another task's run is no seed of this one

"""plot.py: the four figures and report.md from a tiny training run, generic reading of results.json and
log.jsonl, and its one-line errors (matplotlib missing included)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import copy_run

import plot
from atm_min.machinery import report as R

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                               reason="matplotlib is not installed (CI installs it: requirements-dev.txt)")


def plot_cli(capsys, *argv):
    capsys.readouterr()
    rc = plot.cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@needs_mpl
def test_plot_writes_four_pngs_and_the_report(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "run")  # plot.py writes plots/ and report.md into the run's folder
    rc, out, err = plot_cli(capsys, run)
    assert rc == 0, err
    for name in R.FIGURES:
        png = run / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG, name
    assert f"wrote {len(R.FIGURES)} figures to {run / 'plots'}" in out
    report = (run / "report.md").read_text()
    for name in R.FIGURES:  # embedded with paths relative to report.md, so the folder can be handed out
        assert f"](plots/{name}.png)" in report
    # the results table is the one train.py printed, character for character
    table = re.search(r"^## Results\n.*?^```text\n(.*?)\n```$", report, re.M | re.S).group(1)
    assert table.count("\n") > 10 and table.startswith(" " * 14 + f"{'pre':>19}")
    assert f"\n{table}\n" in tiny_run.stdout
    # the command lines that made it: the training command train.py recorded, and the plot command
    train_cmd = re.search(r"^python train\.py .*$", report, re.M).group(0)
    assert train_cmd == " ".join(["python train.py", *tiny_run.argv])
    assert f"python plot.py {run}" in report
    assert "label_agreement" in report  # numbers beyond the table are listed too


def test_training_command_without_a_record_is_rebuilt_from_the_checkpoint(tiny_run):
    """An older run's results.json has no run.command: the command is rebuilt from ckpt.pt's config, the settings
    that differ from TrainConfig's defaults."""
    from atm_min.machinery.checkpoint import load_checkpoint
    config = load_checkpoint(str(tiny_run.out / "ckpt.pt"))["config"]
    cmd, source = R.training_command({"pre": STATS}, config)
    args = cmd.split()
    assert args[:2] == ["python", "train.py"] and "ckpt.pt's config" in source
    assert {"--n_layer=1", "--max_train=48", "--fold_iters=6", f"--out_dir={tiny_run.out}"} <= set(args)
    assert "--n_layer=2" not in args and not any(a.startswith("--lr=") for a in args)  # defaults are left out


def test_read_log_keeps_the_last_run_of_each_student(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"student": "fold 1/2 pre", "step": 5, "loss": 3.0}, {"student": "pre", "step": 5, "loss": 4.0},
            {"student": "pre", "step": 10, "loss": 2.0}, {"student": "atm", "step": 5, "loss": 4.1, "aux": 0.7},
            {"student": "pre", "step": 5, "loss": 3.9},  # a second training into the same out_dir
            {"student": "pre", "step": 10, "loss": 1.5}, {"student": "atm", "step": 10, "loss": 3.0, "aux": 0.2},
            {"student": "pre", "loss": 1.0}]  # no step: skipped and counted
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"student": "pre", "st')  # cut by a kill
    curves, bad = R.read_log(str(log))
    assert bad == 2
    assert curves["pre"] == {"step": [5, 10], "loss": [3.9, 1.5], "aux": [None, None]}
    assert curves["atm"] == {"step": [5, 10], "loss": [4.1, 3.0], "aux": [0.7, 0.2]}
    assert curves["fold 1/2 pre"]["loss"] == [3.0]


def fake_run(tmp_path, results):
    d = tmp_path / "fake"
    d.mkdir()
    (d / "results.json").write_text(json.dumps(results))
    return d


STATS = dict(accuracy=0.5, n=4, post_fraction=0.25, avg_new_tokens=12.0, ms_per_question=1.0,
             by_group={"direct": dict(accuracy=1.0, n=2, post_fraction=0.5, avg_new_tokens=6.0),
                       "direct/2": dict(accuracy=1.0, n=2, post_fraction=0.5, avg_new_tokens=6.0)})


def test_mechanisms_are_whatever_has_accuracy_and_cost():
    results = {"pre": STATS, "oracle": {**STATS, "extra": {"a": 1}}, "wall_time_s": 3.0, "notes": {"x": 1},
               "broken": {"accuracy": "high"}}
    assert list(R.mechanisms(results)) == ["pre", "oracle"]


@needs_mpl
def test_a_run_without_log_or_perception_gets_the_figures_it_can(tmp_path, capsys):
    """An older or pre-only run: the trade-off is drawn, the rest is skipped with a note (in the report too),
    and a mechanism the code has never heard of is plotted like any other."""
    d = fake_run(tmp_path, {"pre": STATS, "newfangled": {**STATS, "accuracy": 0.75}, "wall_time_s": 3.0})
    (d / "plots").mkdir()
    (d / "plots" / "attention.png").write_bytes(PNG)  # left by an earlier run: must not linger
    rc, out, err = plot_cli(capsys, d)
    assert rc == 0, err
    assert sorted(p.name for p in (d / "plots").iterdir()) == ["tradeoff.png"]
    assert out.count("note: ") == 6 and "wrote 1 figures" in out  # no log, curve, chains, labels, ckpt
    report = (d / "report.md").read_text()
    assert report.count("Not drawn:") == 6 and "newfangled" in report
    assert "no record of the training command" in report and "python plot.py" in report


@pytest.mark.parametrize("setup, needle", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "results.json not found"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text('{"pre": ')), "not valid JSON"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text('{"wall_time_s": 3}')), "holds no results"),
])
def test_bad_out_dir_is_one_error_line(tmp_path, capsys, setup, needle):
    d = tmp_path / "out"
    setup(d)
    rc, out, err = plot_cli(capsys, d)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err


def run_script(*code_or_args, hide_matplotlib=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if hide_matplotlib:  # an import of matplotlib fails, as where it is not installed
        code = ("import sys, runpy; sys.modules['matplotlib'] = None; sys.argv = ['plot.py', *sys.argv[1:]]; "
                "runpy.run_path('plot.py', run_name='__main__')")
        cmd = [sys.executable, "-c", code, *code_or_args]
    else:
        cmd = [sys.executable, "plot.py", *code_or_args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_without_matplotlib_one_line_names_the_install(tmp_path):
    d = fake_run(tmp_path, {"pre": STATS})
    r = run_script(str(d), hide_matplotlib=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == "error: plot.py needs matplotlib: pip install matplotlib"
    assert not (d / "plots").exists() and not (d / "report.md").exists()


@needs_mpl
def test_cli_subprocess(tmp_path):
    d = fake_run(tmp_path, {"pre": STATS, "post": STATS})
    r = run_script(str(d))
    assert r.returncode == 0, r.stderr
    assert (d / "plots" / "tradeoff.png").read_bytes()[:8] == PNG and (d / "report.md").exists()

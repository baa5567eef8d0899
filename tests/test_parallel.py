"""Independent students side by side (atm_min/parallel.py): the same results as one after another, and a run
killed in the middle of the k-fold stage resumes without redoing what was finished."""

import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import tiny_args

import train as T
from atm_min.machinery.checkpoint import load_checkpoint
from atm_min.machinery.parallel import JobRunner, plan_workers

ROOT = Path(__file__).resolve().parents[1]


def test_plan_workers(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert plan_workers(0, 10, "cpu") == (2, 1)  # auto: a process per core, one thread each
    assert plan_workers(0, 1, "cpu") == (1, 0)  # one job: no pool
    assert plan_workers(1, 10, "cpu") == (1, 0)  # asked for the in-process reference
    assert plan_workers(0, 10, "cuda") == (1, 0) and plan_workers(0, 10, "cuda:1") == (1, 0)  # one device
    assert plan_workers(0, 10, "cpu", world=2) == (1, 0)  # torchrun: every rank takes part in every job
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert plan_workers(0, 10, "cpu") == (4, 4)  # capped; the cores are shared out as threads
    assert plan_workers(0, 3, "cpu") == (3, 5)  # no more processes than jobs


@pytest.mark.parametrize("workers", [1, 2])
def test_job_runner_returns_every_result(workers):
    with JobRunner(workers, threads=1) as runner:
        for n in range(5):
            runner.submit(f"job{n}", operator.pow, n, 2)
        got = {}
        while (done := runner.next_finished()) is not None:
            got[done[0]] = done[1]
    assert got == {f"job{n}": n * n for n in range(5)}


def test_job_runner_raises_a_jobs_error():
    with pytest.raises(ZeroDivisionError):
        with JobRunner(2, threads=1) as runner:
            runner.submit("bad", operator.truediv, 1, 0)
            while runner.next_finished() is not None:
                pass


def test_parallel_pipeline_equals_the_sequential_reference(tmp_path, data_dir, capsys):
    """workers=2 (fold students and baselines in two processes) gives exactly the labels, weights and results
    of workers=1 (the same jobs one after another here): every job seeds itself, one thread each."""
    T.main(tiny_args(tmp_path / "seq", f"--data_dir={data_dir}", "--workers=1"))
    T.main(tiny_args(tmp_path / "par", f"--data_dir={data_dir}", "--workers=2"))
    out = capsys.readouterr().out
    assert "2 at a time" in out
    seq, par = tmp_path / "seq", tmp_path / "par"
    assert json.loads((seq / "labels.json").read_text()) == json.loads((par / "labels.json").read_text())
    for name in ("ckpt.pt", "baseline_pre.pt", "baseline_post.pt", "baseline_answer.pt"):
        a, b = load_checkpoint(str(seq / name)), load_checkpoint(str(par / name))
        for k in a["learner"]:
            assert (a["learner"][k] == b["learner"][k]).all(), (name, k)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (seq, par))
    for mech in set(ra) - {"run"}:
        assert ra[mech]["accuracy"] == rb[mech]["accuracy"] and ra[mech]["by_group"] == rb[mech]["by_group"]


def alive(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from Linux's /proc")
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_during_kfold_then_resume_keeps_finished_folds(tmp_path, data_dir, workers):
    """A run killed outright (kill -9, the whole process group) while fold students train: --resume reuses the
    evidence of every finished fold student (its file is not rewritten) and completes the run."""
    out = tmp_path / "run"
    args = tiny_args(out, f"--data_dir={data_dir}", "--fold_iters=400", f"--workers={workers}",
                     "--save_interval_s=0.5")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folds = out / "folds"
    deadline = time.time() + 120
    while not list(folds.glob("fold*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    if workers == 1:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job at once, as when a machine's job is cancelled
    else:
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone (as the OOM killer may): its workers must not linger
    proc.wait()
    deadline = time.time() + 15
    while any(alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(c) for c in children), "worker processes outlived their killed parent"
    finished = {p.name: p.stat().st_mtime_ns for p in folds.glob("fold*.json")}
    assert finished and len(finished) < 4, "the kill should land between the first and the last fold student"
    assert not (out / "results.json").exists()

    r = subprocess.run([sys.executable, "train.py", *args, "--resume"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name, mtime in finished.items():
        assert (folds / name).stat().st_mtime_ns == mtime  # read, not recomputed
    assert r.stdout.count("evidence cached") == len(finished)
    assert len(list(folds.glob("fold*.json"))) == 4 and (out / "results.json").exists()
    assert not list(folds.glob("*.tmp"))

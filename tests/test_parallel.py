"""Independent students side by side (atm_min/machinery/parallel.py): the same results as one after another, and a
run killed in the middle of the k-fold stage resumes without redoing what was finished."""

import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
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
def test_job_runner_returns_every_result_then_raises_a_jobs_error(workers):
    """Every result comes back under its job's name; a job's exception is raised to the caller, and leaving the
    runner on it stops the pool (JobRunner.__exit__ with an exception: close(cancel=True))."""
    with pytest.raises(ZeroDivisionError):
        with JobRunner(workers, threads=1) as runner:
            for n in range(5):
                runner.submit(f"job{n}", operator.pow, n, 2)
            got = {}
            while (done := runner.next_finished()) is not None:
                got[done[0]] = done[1]
            assert got == {f"job{n}": n * n for n in range(5)}
            runner.submit("bad", operator.truediv, 1, 0)
            while runner.next_finished() is not None:
                pass
    assert runner.pool is None  # closed, its processes gone


def session_members(sid):
    """Processes still running (not zombies) in session sid: a process started with start_new_session=True and
    whatever it started, even after they lost their parent (read from Linux's /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, pgrp, session
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def assert_same_run(a: Path, b: Path):
    """Two runs of the same settings ended alike: the same labels, weights, answers and results."""
    assert (a / "labels.json").read_text() == (b / "labels.json").read_text()
    for name in ("ckpt.pt", "baseline_pre.pt", "baseline_post.pt", "baseline_answer.pt"):
        x, y = load_checkpoint(str(a / name)), load_checkpoint(str(b / name))
        assert x["learner"].keys() == y["learner"].keys()
        for k in x["learner"]:
            assert torch.equal(x["learner"][k], y["learner"][k]), (name, k)
    for mech in ("pre", "post", "answer", "atm"):  # the same answer to every test question
        assert (a / f"predictions_{mech}.jsonl").read_text() == (b / f"predictions_{mech}.jsonl").read_text()
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert set(ra) == set(rb) == {"pre", "post", "answer", "atm", "oracle", "random", "run"}
    for mech in set(ra) - {"run"}:
        ra[mech].pop("ms_per_question")
        rb[mech].pop("ms_per_question")
        assert ra[mech] == rb[mech], mech


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_kill_9_during_kfold_then_resume_keeps_finished_folds_and_ends_as_one_process(tmp_path, data_dir, tiny_run,
                                                                                     capsys):
    """A run killed outright (SIGKILL, as kill -9 or the OOM killer) in the middle of the k-fold stage, with
    workers=1 and with workers=2 (then only the parent dies: its worker processes must not linger): --resume
    reuses the evidence of every finished fold student (its file is not rewritten) and completes the run.

    Both end exactly as tiny_run, the same settings with workers=1 never killed: the same labels, weights, answers
    and results. For workers=2 that is the parallel path's contract: fold students, baselines and the ATM student
    trained two at a time in worker processes (every job seeds itself, one thread each) give what one process
    gives training them one after another.

    The kill is the run's own (jobs.py's test hook ATM_TEST_KILL_AFTER_FOLDS=2: SIGKILL right after the second
    fold student's evidence is cached), so it lands between fold students whatever the machine's speed. With
    workers=2 the third fold student is in a worker's hands at that moment (and may have finished)."""
    assert "--workers=1" in tiny_run.argv
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATM_TEST_KILL_AFTER_FOLDS": "2"}
    args = {w: tiny_args(tmp_path / f"workers{w}", f"--data_dir={data_dir}", f"--workers={w}",
                         "--save_interval_s=0.5") for w in (1, 2)}
    # Both runs side by side, each `python train.py ARGS` in a process of its own, forked by fork_runner.py from
    # one that has imported torch already (test_errors.py's runner); in a session of their own, so that whatever
    # they start can be found after they are gone.
    jobs = [[["train.py", *args[w]], str(tmp_path / f"workers{w}.out"), str(tmp_path / f"workers{w}.err")]
            for w in (1, 2)]
    runner = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fork_runner.py")], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    out, err = runner.communicate(json.dumps(jobs), timeout=300)
    assert runner.returncode == 0, err[-3000:]
    for w, status in zip((1, 2), json.loads(out)):
        assert status == -signal.SIGKILL, (w, status, (tmp_path / f"workers{w}.err").read_text()[-3000:])
    deadline = time.time() + 15
    while session_members(runner.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not session_members(runner.pid), "worker processes outlived their killed parent"

    for w in (1, 2):
        out = tmp_path / f"workers{w}"
        folds = out / "folds"
        finished = {p.name: p.stat().st_mtime_ns for p in folds.glob("fold*.json")}
        if w == 1:
            assert sorted(finished) == ["fold0_post.json", "fold0_pre.json"]  # in job order, then the kill
        else:
            assert 2 <= len(finished) <= 3  # the fourth was never handed out
        assert not (out / "results.json").exists() and not (out / "labels.json").exists()

        capsys.readouterr()
        T.main([*args[w], "--resume"])  # in this process, without the hook
        printed = capsys.readouterr().out
        for name, mtime in finished.items():
            assert (folds / name).stat().st_mtime_ns == mtime  # read, not recomputed
        assert printed.count("evidence cached") == len(finished)
        assert printed.count("held-out questions") == 4 - len(finished)  # only the others were trained
        assert ("2 at a time" in printed) == (w == 2)
        assert len(list(folds.glob("fold*.json"))) == 4 and not list(folds.glob("*.tmp"))
        assert_same_run(out, tiny_run.out)

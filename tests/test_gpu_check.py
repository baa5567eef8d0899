"""tools/gpu_check.sh, the one-command GPU proof: without a GPU it says so in one line and exits 0; with --dry_run
every step runs on the CPU at toy sizes (so the script is known to work before a GPU is lent)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(*args, timeout=60):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "tools/gpu_check.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    r = gpu_check()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [r.stdout.strip()] and r.stdout.startswith("no CUDA GPU: skipped")
    assert "--dry_run" in r.stdout and not r.stderr.strip()


@pytest.mark.slow
def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    r = gpu_check("--dry_run", f"--out={tmp_path}", "--budget_s=600", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    table = r.stdout[r.stdout.index("GPU proof summary"):].splitlines()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table[3:]}
    assert rows == {"cuda tests": "ok", "resume": "ok", "torchrun": "ok", "gpt2-small": "ok", "gpt2-large": "ok",
                    "llama": "ok", "default": "ok", "suite": "skipped"}
    assert "max weight diff 0 " in r.stdout  # the killed and resumed run ends where the uninterrupted one does

"""torchrun on the built-in synthetic suite: the ranks generate it side by side without clashing, and the whole
ATM pipeline (k-fold labels included) completes with 2 CPU processes (gloo).

tests/test_train.py checks that DDP takes the same steps as one process, on a given data_dir; this is the
README's form as a new user types it: no data_dir, so every rank finds out_dir/synth_0 missing at once.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from data.synth import SynthConfig, write_suite

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_on_the_default_suite(tmp_path):
    out = tmp_path / "run"
    tiny = [f"--out_dir={out}", "--mechanism=atm", "--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2",
            "--n_prefix=2", "--batch_size=4", "--max_iters=6", "--fold_iters=4", "--warmup_iters=2",
            "--max_train=32", "--max_test=8", "--folds=2", "--block_size=192", "--max_new_tokens=8",
            "--device=cpu", "--dtype=float32", "--num_threads=1", "--log_interval=3"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "train.py", *tiny], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "Traceback" not in r.stderr

    # the suite both ranks wrote is the one the generator writes, whole, with no temp file left behind
    suite = out / "synth_0"
    assert sorted(p.name for p in suite.iterdir()) == ["suite.json", "test.jsonl", "train.jsonl"]
    write_suite(SynthConfig(seed=0), str(tmp_path / "reference"), verbose=False)
    for name in ("train.jsonl", "test.jsonl", "suite.json"):
        assert (suite / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()

    # the pipeline finished: k-fold labels for every training question, results from rank 0
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels) == 32 and all(v["label"] in ("pre", "post") for v in labels.values())
    assert "atm" in json.loads((out / "results.json").read_text())
    # only rank 0 logs: each (student, step) once
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    keys = [(row["student"], row["step"]) for row in rows]
    assert ("atm", 6) in keys and any(s.startswith("fold 2/2") for s, _ in keys)
    assert len(keys) == len(set(keys))

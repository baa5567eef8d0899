"""torchrun on the built-in synthetic suite, in the form docs/running.md gives, as a new user types it (no data_dir, so
every rank finds out_dir/synth_0 missing at once): the ranks generate the suite side by side without clashing, the
whole ATM pipeline (k-fold labels included) completes with 2 CPU processes (gloo), and its students take the same
steps as one process with gradient accumulation would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tiny import assert_same_state

import train as T
from atm_min.machinery.checkpoint import load_checkpoint
from data.synth import SynthConfig, write_suite

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_on_the_default_suite_match_one_process_with_grad_accum(tmp_path):
    out = tmp_path / "run"
    sizes = ["--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2", "--batch_size=4",
             "--max_iters=6", "--fold_iters=4", "--warmup_iters=2", "--max_train=32", "--max_test=8", "--folds=2",
             "--block_size=192", "--max_new_tokens=8", "--device=cpu", "--dtype=float32", "--num_threads=1",
             "--log_interval=3"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "train.py", f"--out_dir={out}", "--mechanism=atm", *sizes, "--grad_accum=1"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
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
    assert {"pre", "post", "answer", "atm"} <= set(json.loads((out / "results.json").read_text()))
    # only rank 0 logs: each (student, step) once
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    keys = [(row["student"], row["step"]) for row in rows]
    assert ("atm", 6) in keys and any(s.startswith("fold 2/2") for s, _ in keys)
    assert len(keys) == len(set(keys))

    # DDP takes the same steps as one process: torchrun with 2 ranks and grad_accum=1 against this process with
    # grad_accum=2, on the suite the ranks wrote. micro_batch hands rank r at micro-step m the chunk m * world + r
    # of the same global batch, and DDP averages the two ranks' gradients as accumulation averages the two
    # micro-batches'. The pre baseline of the ATM run is the student of a --mechanism=pre run (same job, same seed).
    one = tmp_path / "one"
    T.main([f"--out_dir={one}", "--mechanism=pre", *sizes, f"--data_dir={suite}", "--grad_accum=2"])
    a, b = load_checkpoint(str(out / "baseline_pre.pt")), load_checkpoint(str(one / "ckpt.pt"))
    assert a["iter"] == b["iter"] == 6
    assert_same_state(a["learner"], b["learner"], exact=False, where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], exact=False, where="optimizer")

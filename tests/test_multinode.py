"""Past one machine: `torchrun --nnodes=2 --nproc_per_node=1` as two "nodes" on this host (c10d rendezvous on
127.0.0.1, gloo) runs the k-fold stage and gives the labels one process gives (docs/running.md, "More than one machine",
says how to launch it on two real hosts). Two ranks with grad_accum=1 take the steps of one process with
grad_accum=2 (test_train.py checks the weights), so the fold students' evidence is the same, up to the order in
which floating-point sums are taken."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_args

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # about a minute on 2 CPU cores: two launchers, three processes, 600 fold-student steps each way
def test_two_nodes_label_like_one_process(tmp_path, data_dir):
    common = [f"--data_dir={data_dir}", "--mechanism=atm", "--baselines=false", "--fold_iters=150", "--lr=1e-2",
              "--min_lr=1e-3", "--max_iters=2", "--max_test=4", "--batch_size=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    port = free_port()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
              "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=atm-multinode",
              "train.py", *tiny_args(tmp_path / "two", *common, "--grad_accum=1")]
    nodes = [subprocess.Popen(launch, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = []
    for p in nodes:
        try:
            outs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in nodes:
                q.kill()
            pytest.fail("the two nodes did not finish in 300 s")
    assert all(p.returncode == 0 for p in nodes), "\n".join(o[-3000:] for o in outs)
    assert any("world 2" in o or "k-fold labels" in o for o in outs)

    one = subprocess.run([sys.executable, "train.py", *tiny_args(tmp_path / "one", *common, "--grad_accum=2")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a = json.loads((tmp_path / "two" / "labels.json").read_text())
    b = json.loads((tmp_path / "one" / "labels.json").read_text())
    assert list(a) == list(b) and len(a) == 48
    for k in a:
        assert (a[k]["label"], a[k]["pre_ok"], a[k]["post_ok"]) == (b[k]["label"], b[k]["pre_ok"], b[k]["post_ok"]), k
        assert a[k]["p_gold"] == pytest.approx(b[k]["p_gold"], rel=1e-3, abs=1e-6), k
    # the evidence is not trivial: the fold students learned enough for p(gold) to vary
    p = [v["p_gold"] for v in a.values()]
    assert max(p) - min(p) > 0.5

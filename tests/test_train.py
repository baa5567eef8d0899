"""train.py end to end on tiny students: exact resume, failure modes, DDP equivalence, the ATM pipeline's outputs.

Everything runs on the CPU in float32 with one thread: the students are so small that threads only add overhead.
"""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_args
import torch

import train as T
from atm_min.machinery.checkpoint import CheckpointError, load_checkpoint
from atm_min.machinery.config import ConfigError, parse_args
from atm_min.learner import Learner
from atm_min.machinery.runs import build_student
from atm_min.tokenizer import byte_tokenizer
from atm_min.machinery import runtime
from atm_min.machinery import data as mdata
from atm_min.machinery import runs
from atm_min.machinery import errors

ROOT = Path(__file__).resolve().parents[1]
TOK = byte_tokenizer()
STAT_KEYS = {"accuracy", "n", "post_fraction", "avg_new_tokens"}


def tiny(out_dir, *extra):
    return parse_args(tiny_args(out_dir, *extra))


def run_cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def assert_same_state(a, b, exact=True, where="state"):
    """Recursive equality of two state dicts (tensors: torch.equal, or allclose when not exact)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), where
    if isinstance(a, torch.Tensor):
        ok = torch.equal(a, b) if exact else torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        assert ok, f"{where} differs (max abs diff {(a.float() - b.float()).abs().max().item():.3g})"
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_state(a[k], b[k], exact, f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, exact, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ------------------------------------------------------------------------------------------------- resume

@pytest.mark.parametrize("how", ["interrupt", "crash"])
def test_resume_gives_identical_weights_and_optimizer(tmp_path, data_dir, how):
    """N steps straight == K steps, a stop, then a resumed run to N: bit for bit, weights and AdamW moments.
    Dropout is on, so this also checks that the RNG state is saved and restored (the data order needs only the
    step number). "interrupt": Ctrl-C, which train_run answers by saving; "crash": a hard failure after a
    periodic save, which is all a crash leaves behind."""
    N, K = 9, 4
    extra = ["--dropout=0.1", f"--data_dir={data_dir}"]
    if how == "crash":
        extra.append("--save_interval_s=0")  # save after every step
    cfg = tiny(tmp_path, *extra)
    train, _, _ = mdata.load_data(cfg, TOK)
    modes = ["pre", "post"] * (len(train) // 2) + ["pre"] * (len(train) % 2)

    def run(cfg, path, **kw):
        rt = runtime.setup(cfg)  # seeds torch: the same initial weights for both runs
        return runs.train_run(cfg, rt, TOK, train, modes, str(path), atm=True, iters=N, seed=5, **kw)

    run(cfg, tmp_path / "straight.pt")

    def stop(it):
        if it == K:
            raise KeyboardInterrupt if how == "interrupt" else RuntimeError("simulated crash")

    stopped = tmp_path / "stopped.pt"
    with pytest.raises(KeyboardInterrupt if how == "interrupt" else RuntimeError):
        run(cfg, stopped, on_step=stop)
    ck = load_checkpoint(str(stopped))
    assert ck["iter"] == K and ck["done"] is False

    torch.manual_seed(12345)  # whatever the RNG holds now, the checkpoint's RNG state must win
    run(dataclasses.replace(cfg, resume=True), stopped)

    a, b = load_checkpoint(str(tmp_path / "straight.pt")), load_checkpoint(str(stopped))
    assert a["iter"] == b["iter"] == N and a["done"] and b["done"]
    assert_same_state(a["learner"], b["learner"], where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], where="optimizer")
    # and the run did train: the weights moved from their initial values
    init = Learner(build_student(cfg, TOK.vocab_size), None).state_dict()
    assert not torch.equal(init["student.lm_head.weight"], a["learner"]["student.lm_head.weight"])


def test_resume_without_a_checkpoint_starts_fresh(tmp_path, data_dir, capsys):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--resume")
    train, _, _ = mdata.load_data(cfg, TOK)
    runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(tmp_path / "c.pt"), iters=3)
    assert load_checkpoint(str(tmp_path / "c.pt"))["iter"] == 3
    assert "resumed" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- failures

def poison_loss_after(monkeypatch, n_good):
    """Make the loss NaN from the (n_good+1)-th forward on: a deterministic divergence."""
    real, calls = Learner.forward, [0]

    def forward(self, *a, **kw):
        calls[0] += 1
        loss, lm_loss, aux = real(self, *a, **kw)
        return (loss * float("nan") if calls[0] > n_good else loss), lm_loss, aux

    monkeypatch.setattr(Learner, "forward", forward)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--save_interval_s=0")
    train, _, _ = mdata.load_data(cfg, TOK)
    path = str(tmp_path / "ckpt.pt")
    poison_loss_after(monkeypatch, 4)
    with pytest.raises(errors.TrainingError, match=r"nan at step 4.*kept at") as e:
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["post"] * len(train), path, atm=True)
    assert path in str(e.value)
    ck = load_checkpoint(path)  # the checkpoint of step 4, untouched by the NaN step
    assert ck["iter"] == 4 and not ck["done"]
    assert all(torch.isfinite(v).all() for v in ck["learner"].values())
    # and training can go on from it once the cause is fixed (here: the poison removed)
    monkeypatch.undo()
    runs.train_run(dataclasses.replace(cfg, resume=True), runtime.setup(cfg), TOK, train, ["post"] * len(train), path,
                atm=True)
    assert load_checkpoint(path)["iter"] == cfg.max_iters


def test_nonfinite_loss_before_any_save_says_so(tmp_path, data_dir, monkeypatch):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}")  # save_interval_s=60: nothing saved in a few steps
    train, _, _ = mdata.load_data(cfg, TOK)
    path = str(tmp_path / "ckpt.pt")
    poison_loss_after(monkeypatch, 2)
    with pytest.raises(errors.TrainingError, match="no checkpoint") as e:
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), path)
    assert "kept at" not in str(e.value)
    assert not os.path.exists(path)


class RunsCode:
    """A pickle that would run a shell command on load."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, data_dir):
    cfg = tiny(tmp_path, f"--data_dir={data_dir}", "--resume")
    train, _, _ = mdata.load_data(cfg, TOK)
    flag, path = tmp_path / "pwned", tmp_path / "ckpt.pt"
    torch.save({"learner": RunsCode(str(flag)), "iter": 3}, str(path))
    with pytest.raises(CheckpointError, match="refused"):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    with pytest.raises(CheckpointError, match="refused"):  # the "finished earlier" path reads it the same way
        runs.trained(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    assert not flag.exists()
    with open(path, "wb") as f:  # a bare pickle (not torch's zip format) as well
        pickle.dump({"learner": RunsCode(str(flag))}, f)
    with pytest.raises(CheckpointError):
        runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(path))
    assert not flag.exists()


def test_malformed_data_fails_before_training(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    good = {"id": "a", "question": "Q?", "rationale": "R.", "answer": "1", "answer_type": "number"}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n" + '{"id": "b", "question": "Q?"\n'
                                      + json.dumps({**good, "id": "c", "answer_type": "numeric"}) + "\n")
    (data / "test.jsonl").write_text(json.dumps(good) + "\n")
    out = tmp_path / "out"
    r = run_cli("train.py", *tiny_args(out, f"--data_dir={data}"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "train.jsonl" in lines[0]
    assert sum(ln.startswith("error:") for ln in lines) == 1  # one error, listing its bad lines below
    assert "line 2" in r.stderr and "line 3" in r.stderr and "numeric" in r.stderr
    assert not list(out.glob("**/*.pt"))  # nothing was trained


def test_unknown_setting_is_a_clear_error(tmp_path):
    r = run_cli("train.py", f"--out_dir={tmp_path}", "--n_layr=2")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert r.stderr.startswith("error: unknown setting 'n_layr'") and "n_layer" in r.stderr
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_args(["--max_iter=3"])


# ------------------------------------------------------------------------------------------------- pipeline

def test_atm_pipeline_end_to_end_and_resume(tmp_path, capsys):
    """--mechanism atm on the built-in suite: k-fold labels, the ATM student and both baselines; then a rerun
    with --resume reuses every finished piece instead of training again."""
    out = tmp_path / "run"
    T.main(tiny_args(out, "--mechanism=atm"))
    first = capsys.readouterr().out
    assert "k-fold labels:" in first and "wrote" in first

    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"pre", "post", "answer", "atm", "oracle", "random", "run"}
    assert results["run"]["wall_time_s"] > 0 and results["run"]["command"].startswith("python train.py")
    atm_keys = {"label_agreement", "label_counts", "test_oracle_agreement", "tradeoff"}
    trap_keys = {"decided", "traps"}  # the 16 test questions hold traps the training data leave open
    for mech, r in results.items():
        if mech == "run":
            continue
        assert set(r) == STAT_KEYS | {"ms_per_question", "by_group"} | trap_keys | \
            (atm_keys if mech == "atm" else set())
        assert r["n"] == 16 and 0 <= r["accuracy"] <= 1 and 0 <= r["post_fraction"] <= 1
        assert r["avg_new_tokens"] > 0 and r["ms_per_question"] >= 0
        assert {"multistep", "direct"} <= set(r["by_group"])
        assert any("/" in g for g in r["by_group"])  # and the finer level, e.g. "multistep/3"
        for g, s in r["by_group"].items():
            assert set(s) == STAT_KEYS
        assert sum(s["n"] for g, s in r["by_group"].items() if "/" not in g) == r["n"]
        if mech not in ("oracle", "random"):  # computed from the pre and post predictions
            preds = (out / f"predictions_{mech}.jsonl").read_text().splitlines()
            assert len(preds) == 16
    counts = results["atm"]["label_counts"]
    assert counts["ALL"]["n"] == 48
    assert sum(counts["ALL"][k] for k in ("pre_only", "post_only", "both", "neither")) == 48
    assert 0 <= results["atm"]["test_oracle_agreement"] <= 1
    # the oracle is at least as right as either baseline, the random router in between
    acc = {m: results[m]["accuracy"] for m in ("pre", "post", "oracle", "random")}
    assert acc["oracle"] >= max(acc["pre"], acc["post"])
    assert min(acc["pre"], acc["post"]) - 1e-9 <= acc["random"] <= max(acc["pre"], acc["post"]) + 1e-9
    assert 0 <= results["atm"]["label_agreement"] <= 1
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels) == 48 and all(v["label"] in ("pre", "post") for v in labels.values())
    assert {"pre_ok", "post_ok", "p_gold"} <= set(next(iter(labels.values())))
    for name in ("ckpt.pt", "baseline_pre.pt", "baseline_post.pt", "baseline_answer.pt"):
        assert load_checkpoint(str(out / name))["done"]
    assert load_checkpoint(str(out / "ckpt.pt"))["atm"] is True
    caches = sorted((out / "folds").glob("fold*.json"))
    assert [c.name for c in caches] == ["fold0_post.json", "fold0_pre.json", "fold1_post.json", "fold1_pre.json"]
    assert not list((out / "folds").glob("*.pt"))  # fold students are deleted once their labels are cached
    mtimes = [c.stat().st_mtime_ns for c in caches]

    T.main(tiny_args(out, "--mechanism=atm", "--resume"))
    again = capsys.readouterr().out
    assert again.count("finished earlier") == 4  # pre, post, answer, atm
    assert [c.stat().st_mtime_ns for c in caches] == mtimes  # the fold caches were read, not rewritten
    assert json.loads((out / "labels.json").read_text()) == labels
    rerun = json.loads((out / "results.json").read_text())
    for mech in set(results) - {"run"}:  # greedy decoding of the same weights: the same answers
        assert rerun[mech]["accuracy"] == results[mech]["accuracy"]
        assert rerun[mech]["avg_new_tokens"] == results[mech]["avg_new_tokens"]

    T.main(tiny_args(out, "--mechanism=atm", "--resume", "--baselines=false"))
    assert json.loads((out / "results.json").read_text()).keys() == {"atm", "run"}


# ------------------------------------------------------------------------------------------------- DDP

def test_ddp_two_processes_match_one_process_with_grad_accum(tmp_path, data_dir):
    """torchrun with 2 CPU processes (gloo) and grad_accum=1 takes the same steps as 1 process with
    grad_accum=2: micro_batch hands rank r at micro-step m the chunk m * world + r of the same global batch,
    and DDP averages the two ranks' gradients as accumulation averages the two micro-batches'."""
    common = [f"--data_dir={data_dir}", "--mechanism=pre", "--batch_size=4", "--max_iters=6", "--max_test=4",
              "--max_new_tokens=4"]
    r = run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                *tiny_args(tmp_path / "ddp", *common, "--grad_accum=1"))
    assert r.returncode == 0, r.stderr[-3000:]
    T.main(tiny_args(tmp_path / "one", *common, "--grad_accum=2"))
    a = load_checkpoint(str(tmp_path / "ddp" / "ckpt.pt"))
    b = load_checkpoint(str(tmp_path / "one" / "ckpt.pt"))
    assert a["iter"] == b["iter"] == 6
    assert_same_state(a["learner"], b["learner"], exact=False, where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], exact=False, where="optimizer")
    assert (tmp_path / "ddp" / "results.json").exists()  # rank 0 evaluated and wrote the results

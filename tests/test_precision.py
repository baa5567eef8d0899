"""Mixed precision on the CPU, through the code path a GPU takes: runtime.setup builds the autocast context and the
GradScaler from --dtype exactly as on CUDA (only the device type differs), and training, evaluation and resume
run under them. bfloat16: autocast; float16: autocast plus a GradScaler, whose state a checkpoint carries so a
resumed run is exact."""

import dataclasses
import json

import pytest
from tiny import tiny_args
import torch

import train as T
from atm_min.batches import collate, encode_items
from atm_min.machinery import data as mdata
from atm_min.machinery import runs, runtime
from atm_min.machinery.checkpoint import load_checkpoint
from atm_min.machinery.config import parse_args
from atm_min.tokenizer import byte_tokenizer
from test_train import assert_same_state

TOK = byte_tokenizer()
SAVED = {"learner", "optimizer", "iter", "done", "config", "model_args", "tokenizer", "atm", "rng"}


def test_setup_builds_autocast_and_a_scaler_from_dtype():
    for dtype, want_dtype, scaler in (("float32", None, False), ("bfloat16", torch.bfloat16, False),
                                      ("float16", torch.float16, True)):
        rt = runtime.setup(parse_args(["--device=cpu", f"--dtype={dtype}", "--num_threads=1"]))
        assert (rt.scaler is not None) == scaler
        a = torch.randn(4, 4)
        with rt.ctx:
            assert (a @ a).dtype == (want_dtype or torch.float32)
    assert runtime.setup(parse_args(["--device=cpu", "--dtype=auto", "--num_threads=1"])).scaler is None


def test_bfloat16_training_step_computes_in_bfloat16_and_keeps_float32_weights(tmp_path, data_dir):
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}", "--dtype=bfloat16"))
    rt = runtime.setup(cfg)
    train, _, _ = mdata.load_data(cfg, TOK)
    student, perception = runs.train_run(cfg, rt, TOK, train, ["post", "pre"] * (len(train) // 2),
                                         str(tmp_path / "c.pt"), atm=True, iters=4, show=False)
    assert all(p.dtype == torch.float32 for p in student.parameters())
    batch = collate(encode_items(TOK, train[:4], ["pre"] * 4), "cpu")
    with rt.ctx:
        logits, loss = student(batch["x"], batch["y"])
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32 and torch.isfinite(loss)
    logits32, loss32 = student(batch["x"], batch["y"])
    assert abs(loss.item() - loss32.item()) < 0.05 * loss32.item()  # rounding, not another model
    assert loss.item() != loss32.item()  # and it did compute in bfloat16
    # the training steps themselves ran under the autocast: the same run in float32 ends elsewhere, nearby
    cfg32 = dataclasses.replace(cfg, dtype="float32")
    student32, _ = runs.train_run(cfg32, runtime.setup(cfg32), TOK, train, ["post", "pre"] * (len(train) // 2),
                                  str(tmp_path / "c32.pt"), atm=True, iters=4, show=False)
    w, w32 = student.lm_head.weight, student32.lm_head.weight
    assert not torch.equal(w, w32) and torch.allclose(w, w32, atol=0.02)


def test_bfloat16_pipeline_end_to_end_on_cpu(tmp_path, data_dir):
    out = tmp_path / "run"
    T.main(tiny_args(out, f"--data_dir={data_dir}", "--dtype=bfloat16", "--baselines=false", "--max_iters=4",
                     "--fold_iters=3", "--max_test=6"))
    results = json.loads((out / "results.json").read_text())
    assert results["atm"]["n"] == 6
    assert all(0 <= r["p_gold"] <= 1 for r in json.loads((out / "labels.json").read_text()).values())


def busy_scaler():
    """A GradScaler whose scale moves within a few steps: it starts so high that float16 gradients overflow
    (the step is skipped and the scale halved) and grows again every 2 good steps."""
    return torch.amp.GradScaler("cpu", init_scale=2.0 ** 24, growth_interval=2)


@pytest.mark.parametrize("scaler", ["default", "busy"])
def test_float16_resume_with_a_grad_scaler_is_exact(tmp_path, data_dir, scaler):
    N, K = 8, 3
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}", "--dtype=float16", "--save_interval_s=0"))
    train, _, _ = mdata.load_data(cfg, TOK)
    modes = ["pre", "post"] * (len(train) // 2)

    def run(cfg, path, **kw):
        rt = runtime.setup(cfg)
        assert rt.scaler is not None
        if scaler == "busy":
            rt = dataclasses.replace(rt, scaler=busy_scaler())
        runs.train_run(cfg, rt, TOK, train, modes, str(path), atm=True, iters=N, seed=4, show=False, **kw)
        return rt.scaler

    def crash(it):
        if it == K:
            raise RuntimeError("simulated crash")

    straight = run(cfg, tmp_path / "straight.pt")
    with pytest.raises(RuntimeError):
        run(cfg, tmp_path / "crashed.pt", on_step=crash)
    half = load_checkpoint(str(tmp_path / "crashed.pt"))
    assert half["iter"] == K and "scaler" in half
    resumed = run(dataclasses.replace(cfg, resume=True), tmp_path / "crashed.pt")
    a, b = load_checkpoint(str(tmp_path / "straight.pt")), load_checkpoint(str(tmp_path / "crashed.pt"))
    assert set(a) == SAVED | {"scaler"}
    assert a["scaler"] == b["scaler"] == straight.state_dict() == resumed.state_dict()
    assert_same_state(a["learner"], b["learner"], where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], where="optimizer")
    if scaler == "busy":  # overflows happened and were skipped: the scale is not where it started
        assert a["scaler"]["scale"] != 2.0 ** 24


def test_a_float32_checkpoint_has_no_scaler_entry(tmp_path, data_dir):
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}"))
    train, _, _ = mdata.load_data(cfg, TOK)
    runs.train_run(cfg, runtime.setup(cfg), TOK, train, ["pre"] * len(train), str(tmp_path / "c.pt"), iters=2,
                   show=False)
    assert set(load_checkpoint(str(tmp_path / "c.pt"))) == SAVED


def test_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    from atm_min.machinery.checkpoint import save_checkpoint
    s = busy_scaler()
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = (w.half() * 1e4).sum()
        s.scale(loss).backward()
        s.step(opt)
        s.update()
        opt.zero_grad()
    save_checkpoint(str(tmp_path / "s.pt"), {"scaler": s.state_dict()})
    t = torch.amp.GradScaler("cpu")
    t.load_state_dict(load_checkpoint(str(tmp_path / "s.pt"))["scaler"])
    assert t.state_dict() == s.state_dict() and t.get_scale() == s.get_scale() != 2.0 ** 24

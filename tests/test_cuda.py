"""The CUDA path, on a GPU only (skipped elsewhere; tools/gpu_check.sh runs these first): the CUDA RNG state in a
checkpoint, fused AdamW, TF32 and bf16 from runtime.setup, and bf16 / float16 + GradScaler training resumed
exactly. The same code runs on the CPU in test_precision.py; here the device is the difference."""

import dataclasses
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, for the exact resumes

import pytest
from tiny import tiny_args
import torch

from atm_min.machinery import data as mdata
from atm_min.machinery import runs, runtime
from atm_min.machinery.checkpoint import load_checkpoint, rng_state, set_rng_state
from atm_min.machinery.config import parse_args
from atm_min.model import GPT, GPTConfig
from atm_min.tokenizer import byte_tokenizer
from atm_min.training import make_optimizer
from test_train import assert_same_state

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOK = byte_tokenizer()


def test_setup_on_cuda_picks_bf16_and_tf32():
    rt = runtime.setup(parse_args(["--device=cuda", "--dtype=auto"]))
    assert rt.device == "cuda" and torch.backends.cuda.matmul.allow_tf32
    a = torch.randn(8, 8, device="cuda")
    with rt.ctx:
        want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert (a @ a).dtype == want
    assert (rt.scaler is None) == (want == torch.bfloat16)


def test_cuda_rng_state_round_trips():
    state = rng_state()
    assert "cuda" in state
    a = torch.rand(5, device="cuda")
    set_rng_state(state)
    assert torch.equal(torch.rand(5, device="cuda"), a)


def test_fused_adamw_on_cuda_matches_the_plain_one():
    cfg = parse_args([])
    out = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = GPT(GPTConfig(block_size=64, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32)).cuda()
        opt = make_optimizer(cfg, model, "cuda" if fused else "cpu")  # the device string picks the kernel
        assert opt.defaults["fused"] is fused
        x = torch.randint(0, TOK.vocab_size, (4, 32), device="cuda")
        for _ in range(3):
            _, loss = model(x, x)
            loss.backward()
            opt.step()
            opt.zero_grad()
        out.append(model.lm_head.weight.detach().clone())
    assert torch.allclose(out[0], out[1], atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cuda_resume_is_exact(tmp_path, data_dir, dtype):
    torch.use_deterministic_algorithms(True, warn_only=True)
    N, K = 8, 3
    cfg = parse_args(tiny_args(tmp_path, f"--data_dir={data_dir}", "--device=cuda", f"--dtype={dtype}",
                               "--dropout=0.1", "--save_interval_s=0"))
    train, _, _ = mdata.load_data(cfg, TOK)
    modes = ["pre", "post"] * (len(train) // 2)

    def run(cfg, path, **kw):
        rt = runtime.setup(cfg)
        assert (rt.scaler is not None) == (dtype == "float16")
        runs.train_run(cfg, rt, TOK, train, modes, str(path), atm=True, iters=N, seed=4, show=False, **kw)

    def crash(it):
        if it == K:
            raise RuntimeError("simulated crash")

    run(cfg, tmp_path / "straight.pt")
    with pytest.raises(RuntimeError):
        run(cfg, tmp_path / "crashed.pt", on_step=crash)
    assert "cuda" in load_checkpoint(str(tmp_path / "crashed.pt"))["rng"]
    run(dataclasses.replace(cfg, resume=True), tmp_path / "crashed.pt")
    a, b = load_checkpoint(str(tmp_path / "straight.pt")), load_checkpoint(str(tmp_path / "crashed.pt"))
    assert_same_state(a["learner"], b["learner"], where="learner")
    assert_same_state(a["optimizer"], b["optimizer"], where="optimizer")
    assert a.get("scaler") == b.get("scaler")
    torch.use_deterministic_algorithms(False)

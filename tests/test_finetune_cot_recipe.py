"""The real-data recipes (config/finetune_cot_smollm2_cpu.py and its mixture) parse to the recipe
docs/results.md reports, and run end to end: at toy size with a tiny random Llama student on data shaped like
Fine-tune-CoT (fast), and -- marked slow -- for a step with the real SmolLM2-135M GGUF on real coin_flip data
(skipped without the GGUF and without ../shared)."""

import json
import os
from pathlib import Path

import importlib.util

import pytest

from atm_min.machinery.config import parse_args

ROOT = Path(__file__).resolve().parents[1]
SINGLE = str(ROOT / "config" / "finetune_cot_smollm2_cpu.py")
MIX = str(ROOT / "config" / "finetune_cot_mix3_smollm2_cpu.py")
FTC = ROOT.parent / "shared" / "datasets" / "finetune-cot"
_spec = importlib.util.spec_from_file_location("prepare", ROOT / "data" / "prepare.py")
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)


def test_single_task_recipe():
    cfg = parse_args([SINGLE])
    assert (cfg.mechanism, cfg.baselines, cfg.device) == ("atm", True, "cpu")
    assert cfg.tokenizer.startswith("gguf:")  # "pretrained": the GGUF's own tokenizer
    assert (cfg.lr, cfg.batch_size, cfg.folds) == (5e-5, 8, 2)
    assert cfg.max_iters * cfg.batch_size >= 314  # about one epoch of coin_flip / multiarith
    assert cfg.fold_iters * cfg.folds == cfg.max_iters  # each fold student sees its half about once
    assert cfg.max_new_tokens >= 154  # the longest thinking-first multiarith target in SmolLM2 tokens
    assert cfg.block_size >= 200 + cfg.n_prefix  # the longest multiarith train example, plus the soft prompt


def test_mixture_changes_only_data_and_steps():
    single, mix = parse_args([SINGLE]), parse_args([SINGLE, MIX])
    changed = {k for k, v in single.__dict__.items() if getattr(mix, k) != v}
    assert changed == {"data_dir", "out_dir", "max_test", "max_iters", "fold_iters", "warmup_iters"}
    assert mix.fold_iters * mix.folds == mix.max_iters and mix.max_iters * mix.batch_size >= 954


def _fake_task(root: Path, task: str, n_train: int, n_test: int) -> Path:
    """A folder as data/prepare.py writes a Fine-tune-CoT task: multi-line teacher rationales, groups = task."""
    d = root / task
    d.mkdir()
    def row(split, k):
        heads = k % 2 == 0
        return {"id": f"{task}/{split}{k}", "question": f"A coin is heads up. Ann flips it {k} times. Is it heads up?",
                "rationale": f"The coin started heads up.\n\nAnn flipped it {k} times, so it is "
                             f"{'heads' if heads else 'tails'} up.", "answer": "yes" if heads else "no",
                "answer_type": "yesno", "group": task}
    for split, n in (("train", n_train), ("test", n_test)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(row(split, k)) + "\n" for k in range(n)))
    return d


TOY = ["--n_layer=1", "--n_head=4", "--n_embd=32", "--perc_heads=2", "--n_prefix=2", "--batch_size=4",
       "--eval_batch_size=8", "--max_new_tokens=8", "--log_interval=1", "--num_threads=1"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny random Llama saved by transformers (with its tokenizer.json) and a mixture of two tasks shaped like
    the converter's output, written by data/prepare.py mix."""
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tiny_bpe import tiny_llama_dir
    root = tmp_path_factory.mktemp("toy")
    d = root / "llama"
    d.mkdir()
    tiny_llama_dir(d)
    a, b = _fake_task(root, "coin_a", 12, 4), _fake_task(root, "coin_b", 12, 4)
    prepare.main(["mix", "--inputs", str(a), str(b), "--max_train_each", "8", "--out", str(root / "mix")])
    return d, root / "mix"


# The CPU recipe (with and without the mixture override) and the GPU recipes of the paper's Llama-family students,
# each run on the CPU at toy size: their own folds, label rule, baselines and lengths; device, dtype, compile and
# the model's size overridden (the GPU recipes' dry run).
RECIPES = {"smollm2_cpu": [SINGLE], "smollm2_cpu_mix3": [SINGLE, MIX],
           "qwen2_5_0_5b_gpu": [str(ROOT / "config" / "qwen2_5_0_5b_gpu.py")],
           "llama3_2_1b_gpu": [str(ROOT / "config" / "llama3_2_1b_gpu.py")]}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_end_to_end_at_toy_size(name, toy, tmp_path):
    import train as T
    llama, mix = toy
    out = tmp_path / "out"
    T.main([*RECIPES[name], f"--init_from={llama}", f"--data_dir={mix}", f"--out_dir={out}", "--max_train=0",
            "--max_test=0", "--max_iters=2", "--fold_iters=1", "--warmup_iters=0", "--device=cpu",
            "--dtype=float32", "--compile=false", "--grad_accum=1", "--block_size=256", *TOY])
    results = json.loads((out / "results.json").read_text())
    assert {"pre", "post", "answer", "atm", "oracle", "random"} <= set(results)
    assert results["atm"]["n"] == 8 and set(results["atm"]["by_group"]) >= {"coin_a", "coin_b"}
    assert len(json.loads((out / "labels.json").read_text())) == 16


def test_gpu_recipes_name_the_papers_students():
    qwen = parse_args([*RECIPES["qwen2_5_0_5b_gpu"], "--init_from=models/none"])
    llama = parse_args([*RECIPES["llama3_2_1b_gpu"], "--init_from=models/none"])
    for cfg in (qwen, llama):
        assert (cfg.device, cfg.dtype, cfg.mechanism, cfg.baselines) == ("cuda", "bfloat16", "atm", True)
        assert cfg.max_new_tokens >= 128 and cfg.block_size >= 256 and cfg.data_dir
    assert (qwen.n_layer, qwen.n_embd) == (24, 896)


def _gguf() -> str | None:
    path = os.environ.get("ATM_SMOLLM2_GGUF", str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    return path if os.path.exists(path) else None


@pytest.mark.slow
def test_recipe_dry_run_with_the_smollm2_gguf_on_coin_flip(tmp_path):
    """One optimiser step per student of the real recipe (the real weights, tokenizer and lengths) on four real
    coin_flip examples: minutes on a CPU."""
    gguf = _gguf()
    if gguf is None or not FTC.exists():
        pytest.skip("needs the SmolLM2-135M GGUF (ATM_SMOLLM2_GGUF) and ../shared/datasets/finetune-cot")
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    import train as T
    prepare.main(["finetune-cot", "--input", str(FTC), "--task", "coin_flip", "--out", str(tmp_path / "coin_flip")])
    out = tmp_path / "out"
    T.main([SINGLE, f"--init_from={gguf}", f"--data_dir={tmp_path / 'coin_flip'}", f"--out_dir={out}",
            "--max_train=4", "--max_test=2", "--max_iters=1", "--fold_iters=1", "--warmup_iters=0", "--batch_size=2",
            "--max_new_tokens=8"])
    results = json.loads((out / "results.json").read_text())
    assert {"pre", "post", "answer", "atm"} <= set(results) and results["atm"]["n"] == 2

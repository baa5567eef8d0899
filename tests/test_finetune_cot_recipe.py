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
    assert cfg.block_size == 0 and cfg.on_too_long == "fail"  # sized from the task's data: nothing too long
    assert cfg.length_batches


def _one_long_task(root: Path, long_rationale: str, long_question: str = "Is it heads up?") -> Path:
    """A data folder: 6 train examples, the first with long_rationale, and 2 test questions, the first
    long_question."""
    rows = {"train": [("t0", "Is it heads up?", long_rationale)] +
                     [(f"t{k}", "Is it heads up?", "It was flipped twice.") for k in range(1, 6)],
            "test": [("q0", long_question, "It was flipped once."), ("q1", "Is it tails up?", "Once.")]}
    d = root / "task"
    d.mkdir()
    for split, rs in rows.items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps({"id": i, "question": q, "rationale": r, "answer": "no",
                                                              "answer_type": "yesno"}) + "\n" for i, q, r in rs))
    return d


def _recipe_data_settings(data_dir, out_dir, **over):
    """The recipe's data and length settings (block_size, on_too_long, max_new_tokens, n_prefix, mechanism, caps)
    on a byte-level student from scratch: no GGUF needed."""
    from atm_min.machinery.config import TrainConfig, load_config_file
    keys = ("block_size", "on_too_long", "max_new_tokens", "n_prefix", "mechanism", "max_train", "max_test")
    recipe = {k: v for k, v in load_config_file(SINGLE).items() if k in keys}
    return TrainConfig(**{**recipe, "data_dir": str(data_dir), "out_dir": str(out_dir), **over}).validate()


def test_recipe_block_size_is_sized_from_the_data(tmp_path, capsys):
    """One train example longer than the 256 positions the recipe used to fix: the recipe's settings keep it (and
    every other), the block is its length, printed. Without it, the longest prompt + max_new_tokens decides."""
    from atm_min.formats import encode
    from atm_min.machinery.data import load_data
    from atm_min.tokenizer import byte_tokenizer
    tok = byte_tokenizer()
    d = _one_long_task(tmp_path, "The coin was flipped. " * 20)
    cfg = _recipe_data_settings(d, tmp_path / "out")
    train, test, _ = load_data(cfg, tok)
    assert (len(train), len(test)) == (6, 2)
    p, t = encode(tok, train[0], "post")
    assert cfg.block_size == cfg.n_prefix + len(p) + len(t) - 1 > 256  # the long example, soft prompt included
    assert f"block_size=0: {cfg.block_size} positions" in capsys.readouterr().out
    (tmp_path / "b").mkdir()
    short = _recipe_data_settings(_one_long_task(tmp_path / "b", "Once.", long_question="Is it heads up? " * 5),
                                  tmp_path / "out")
    load_data(short, tok)
    prompt = len(tok.encode("Q: " + " ".join(["Is it heads up?"] * 5) + "\n"))
    assert short.block_size == short.n_prefix + prompt + short.max_new_tokens  # room for the whole budget


def test_beyond_the_models_positions_on_too_long_decides(tmp_path, monkeypatch, capsys):
    """block_size=0 is capped at the model's positions: a train example or test question beyond them fails the
    run with on_too_long='fail' (the recipe's), and with 'drop' is left out, counted, per split."""
    from atm_min.machinery import hf
    from atm_min.machinery.data import load_data
    from atm_min.machinery.errors import DataError
    from atm_min.tokenizer import byte_tokenizer
    tok = byte_tokenizer()
    d = _one_long_task(tmp_path, "The coin was flipped. " * 20, long_question="Is it heads up? " * 30)
    monkeypatch.setattr(hf, "max_positions", lambda init_from: 300)
    with pytest.raises(DataError, match=r"1 of 6 train examples need more than block_size=300 positions"):
        load_data(_recipe_data_settings(d, tmp_path / "out"), tok)
    cfg = _recipe_data_settings(d, tmp_path / "out", on_too_long="drop")
    train, test, _ = load_data(cfg, tok)
    assert cfg.block_size == 300 and [ex.id for ex in train] == ["t1", "t2", "t3", "t4", "t5"]
    assert [ex.id for ex in test] == ["q1"]  # a test question too long is left out of the table
    out = capsys.readouterr().out
    assert "more than the model's positions (300)" in out
    assert "dropping 1 of 6 train examples" in out and "dropping 1 of 2 test examples" in out


def test_max_positions():
    from atm_min.machinery.hf import max_positions
    assert max_positions("scratch") is None and max_positions("gpt2") == max_positions("gpt2-large") == 1024
    gguf = _gguf()
    if gguf is not None:
        pytest.importorskip("gguf")
        assert max_positions(gguf) == 8192  # SmolLM2-135M's llama.context_length


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


def test_the_decisive_recipe_is_three_epochs_at_a_constant_rate():
    """config/finetune_cot_mix2_smollm2_cpu.py: 314 + 320 training questions, batch 8 -> 80 steps an epoch;
    3 epochs (240 steps; fold students, on half, 120) at a constant 3e-4, as the learning curve chose."""
    cfg = parse_args([SINGLE, str(ROOT / "config" / "finetune_cot_mix2_smollm2_cpu.py")])
    assert (cfg.lr, cfg.min_lr, cfg.batch_size) == (3e-4, 3e-4, 8)
    assert (cfg.max_iters, cfg.fold_iters) == (3 * 80, 3 * 40)  # ceil(634 / 8) = 80, ceil(317 / 8) = 40
    assert (cfg.dtype, cfg.length_batches, cfg.data_dir) == ("bfloat16", True, "data/mix2")

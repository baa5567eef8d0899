"""The Llama-family student in the whole pipeline: train.py --init_from=<Hugging Face directory>
--tokenizer=pretrained trains the k-fold students, the baselines and the ATM student (its perception reading the
Llama student's embeddings through get_input_embeddings), saves checkpoints that sample.py (answers and --trace)
and --resume rebuild, with the directory's own tokenizer."""

import json

import pytest

import sample
from atm_min.machinery.checkpoint import load_checkpoint
from atm_min.machinery.config import TrainConfig
from atm_min.machinery.errors import ConfigError
from atm_min.students.llama import Llama

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A tiny random Llama saved by transformers, with a tiny byte-level BPE tokenizer.json (tests/tiny_bpe.py)."""
    from tiny_bpe import tiny_llama_dir
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def llama_run(llama_dir, tmp_path_factory, data_dir):
    from conftest import train_once
    from tiny import TINY
    return train_once(tmp_path_factory, "llama_atm", *TINY, f"--data_dir={data_dir}", f"--init_from={llama_dir}",
                      "--tokenizer=pretrained", "--lr=1e-3", "--min_lr=1e-4")


def test_train_runs_atm_with_a_llama_student(llama_run, llama_dir):
    results = json.loads((llama_run.out / "results.json").read_text())
    assert {"pre", "post", "answer", "atm"} <= set(results)
    ck = load_checkpoint(str(llama_run.out / "ckpt.pt"))
    assert ck["model_args"]["arch"] == "llama" and ck["model_args"]["n_kv_head"] == 2
    assert ck["tokenizer"] == f"hf:{llama_dir.absolute()}"  # the pretrained tokenizer, by where it lives
    assert ck["config"]["tokenizer"] == ck["tokenizer"]


def test_sample_and_trace_rebuild_the_llama_student(llama_run, capsys):
    student, perception, tok, _ = sample.load_model(str(llama_run.out / "ckpt.pt"), "cpu")
    assert isinstance(student, Llama) and perception is not None
    assert tok.eot_id == tok.backend.token_to_id("<|im_end|>")
    assert sample.cli(["--out_dir", str(llama_run.out), "--question", "Is 74 even?", "--max_new_tokens", "8"]) == 0
    assert "Q: Is 74 even?" in capsys.readouterr().out
    assert sample.cli(["--out_dir", str(llama_run.out), "--question", "Is 74 even?", "--trace",
                       "--max_new_tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "hf:" in out  # the trace names the tokenizer it encoded with
    assert "[atm_min/students/llama.py Llama.forward]" in out and "GPT" not in out  # and the student's own code
    assert "atm_min/machinery/hf_tokenizer.py HFTokenizer.encode]" in out  # and the tokenizer's
    assert "atm_min/tokenizer.py" not in out
    from atm_min.machinery.trace import piece
    assert piece(tok, tok.eot_id) == "<|im_end|>"  # the trace calls the stop token by its own name


def test_resume_reuses_the_finished_llama_run(llama_run, tmp_path, capsys):
    import train as T
    from tiny import copy_run
    run = copy_run(llama_run, tmp_path / "run")
    capsys.readouterr()
    T.main([f"--out_dir={run}", *llama_run.argv[1:], "--resume"])
    out = capsys.readouterr().out
    assert "finished earlier, loaded" in out and "fold 1/2 pre: finished" not in out


def test_tokenizer_settings_for_pretrained_weights(llama_dir):
    assert TrainConfig(init_from=str(llama_dir), tokenizer="pretrained").validate().tokenizer.startswith("hf:")
    with pytest.raises(ConfigError, match="tokenizer='pretrained'"):
        TrainConfig(init_from=str(llama_dir), tokenizer="gpt2").validate()
    with pytest.raises(ConfigError, match="tokenizer='pretrained'"):
        TrainConfig(init_from=str(llama_dir)).validate()  # the byte tokenizer cannot feed pretrained weights
    with pytest.raises(ConfigError, match="init_from"):
        TrainConfig(tokenizer="pretrained").validate()
    assert TrainConfig(init_from="gpt2", tokenizer="pretrained", n_layer=12, n_head=12,
                       n_embd=768).validate().tokenizer == "gpt2"


@pytest.mark.parametrize("name,prefix", [("smollm2_135m_gguf_cpu", "gguf:"), ("qwen2_5_0_5b_gpu", "hf:"),
                                         ("llama3_2_1b_gpu", "hf:")])
def test_llama_recipes_parse(name, prefix):
    """The recipes are valid settings (their weights need not be here: the tokenizer name is resolved, not read)."""
    from pathlib import Path
    from atm_min.machinery.config import parse_args
    cfg = parse_args([str(Path(__file__).resolve().parents[1] / "config" / f"{name}.py"), "--device=cpu"])
    assert cfg.tokenizer.startswith(prefix) and cfg.n_embd % cfg.perc_heads == 0

import dataclasses
import os

import pytest

from atm_min.machinery.config import (ConfigError, TrainConfig, config_from_dict, config_to_dict, load_config_file,
                            parse_args, usage)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, text, name="cfg.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_are_valid():
    cfg = TrainConfig()
    assert cfg.validate() is cfg
    assert parse_args([]) == cfg


def test_every_field_is_typed_and_documented():
    text = usage()
    for f in dataclasses.fields(TrainConfig):
        assert f.type in ("str", "int", "float", "bool")
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  --{f.name}="))
        assert len(line.split(")  ", 1)) == 2, f"{f.name} has no comment"


def test_key_equals_value():
    cfg = parse_args(["--max_iters=5", "--lr=1e-4", "--min_lr=0", "--mechanism=post", "--data_dir=data/x"])
    assert (cfg.max_iters, cfg.lr, cfg.min_lr, cfg.mechanism, cfg.data_dir) == (5, 1e-4, 0.0, "post", "data/x")
    assert isinstance(cfg.lr, float) and isinstance(cfg.max_iters, int)


def test_key_space_value():
    cfg = parse_args(["--mechanism", "atm", "--n_layer", "3", "--lr", "1e-3", "--min_lr", "1e-4",
                      "--device", "cuda:1", "--data_dir", ""])
    assert (cfg.mechanism, cfg.n_layer, cfg.lr, cfg.min_lr, cfg.device, cfg.data_dir) == \
        ("atm", 3, 1e-3, 1e-4, "cuda:1", "")


def test_dashes_in_key_names():
    assert parse_args(["--max-iters=7"]).max_iters == 7


def test_bool_flags():
    assert parse_args(["--compile"]).compile is True
    assert parse_args(["--compile", "--seed=3"]).compile is True  # a bare flag does not eat the next setting
    assert parse_args(["--baselines=false"]).baselines is False
    assert parse_args(["--baselines=0"]).baselines is False
    assert parse_args(["--resume=1"]).resume is True
    assert parse_args(["--resume=True"]).resume is True
    assert parse_args(["--no-baselines"]).baselines is False
    assert parse_args(["--no_baselines"]).baselines is False
    assert parse_args(["--explain", "false"]).explain is False
    assert parse_args(["--explain", "true"]).explain is True


def test_bare_flag_followed_by_config_file(tmp_path):
    path = write(tmp_path, "n_layer = 3\n")
    cfg = parse_args(["--compile", path])  # the file is not mistaken for the flag's value
    assert cfg.compile is True and cfg.n_layer == 3


def test_config_file_then_cli_overrides(tmp_path):
    path = write(tmp_path, "import math\n_helper = 2\nn_layer = 3 * _helper\nmax_iters = 100\nlr = 1\n"
                           "mechanism = 'pre'\ndef f():\n    return 1\n")
    cfg = parse_args([path])
    assert (cfg.n_layer, cfg.max_iters, cfg.lr, cfg.mechanism) == (6, 100, 1.0, "pre")
    # the command line wins, wherever it stands relative to the file
    for argv in ([path, "--max_iters=7"], ["--max_iters=7", path]):
        cfg = parse_args(argv)
        assert (cfg.n_layer, cfg.max_iters) == (6, 7)


def test_later_config_file_wins(tmp_path):
    a = write(tmp_path, "n_layer = 3\nmax_iters = 10\n", "a.py")
    b = write(tmp_path, "n_layer = 5\n", "b.py")
    cfg = parse_args([a, b])
    assert (cfg.n_layer, cfg.max_iters) == (5, 10)


def test_config_file_runs_in_private_namespace(tmp_path):
    from atm_min.machinery import config
    path = write(tmp_path, "n_layer = 3 if 'TrainConfig' not in globals() else 99\n_leak = 1\n")
    assert parse_args([path]).n_layer == 3  # the file does not see our globals...
    assert not hasattr(config, "_leak")  # ...and does not add to them


@pytest.mark.parametrize("argv, expected", [
    (["--max_iter=5"], ["'max_iter'", "max_iters"]),
    (["--bach_size", "8"], ["'bach_size'", "did you mean 'batch_size'"]),
    (["--xyzzy=1"], ["'xyzzy'", "--help"]),  # nothing close: point at the list
    (["--no-baseline"], ["'baseline'", "baselines"]),
])
def test_unknown_key_names_it_and_suggests(argv, expected):
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    for text in expected:
        assert text in str(e.value)


def test_unknown_key_in_config_file(tmp_path):
    path = write(tmp_path, "n_layers = 4\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'n_layers'.*did you mean 'n_layer'"):
        parse_args([path])


@pytest.mark.parametrize("argv, expected", [
    (["--max_iters=abc"], ["max_iters", "'abc'", "integer"]),
    (["--max_iters=1.5"], ["max_iters", "'1.5'", "integer"]),
    (["--lr=fast"], ["lr", "'fast'", "number"]),
    (["--compile=maybe"], ["compile", "'maybe'", "boolean"]),
    (["--lr"], ["--lr", "needs a value"]),
    (["--lr", "--seed=1"], ["--lr", "needs a value"]),
    (["--no-lr"], ["lr", "true/false"]),
])
def test_wrong_type_errors(argv, expected):
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    for text in expected:
        assert text in str(e.value)


@pytest.mark.parametrize("text, expected", [
    ("n_layer = 'four'\n", ["n_layer", "'four'", "integer"]),
    ("n_layer = True\n", ["n_layer", "True", "integer"]),
    ("compile = 1\n", ["compile", "boolean"]),
    ("lr = '3e-4'\n", ["lr", "number"]),
])
def test_wrong_type_in_config_file(tmp_path, text, expected):
    with pytest.raises(ConfigError) as e:
        parse_args([write(tmp_path, text)])
    for t in expected:
        assert t in str(e.value)


@pytest.mark.parametrize("argv, expected", [
    (["--mechanism=cot"], ["mechanism", "'cot'", "'pre', 'post', 'atm'"]),
    (["--device=tpu"], ["device", "'tpu'", "cuda:N"]),
    (["--device=cuda:x"], ["device", "'cuda:x'"]),
    (["--dtype=fp16"], ["dtype", "'fp16'", "bfloat16"]),
    (["--label_default=none"], ["label_default", "'none'"]),
    (["--label_rule=vote"], ["label_rule", "'vote'"]),
    (["--tokenizer=sentencepiece"], ["tokenizer"]),
    (["--attn_impl=flash"], ["attn_impl"]),
    (["--on_too_long=truncate"], ["on_too_long"]),
    (["--folds=1"], ["folds", ">= 2"]),
    (["--n_layer=0"], ["n_layer", "positive"]),
    (["--batch_size=-1"], ["batch_size", "positive"]),
    (["--max_train=-1"], ["max_train"]),
    (["--n_embd=100", "--n_head=3"], ["n_embd", "n_head"]),
    (["--perc_heads=3"], ["perc_heads"]),
    (["--lr=1e-4"], ["min_lr", "lower min_lr too"]),  # default min_lr 3e-4 would decay upwards
    (["--dropout=1"], ["dropout"]),
    (["--lr=nan"], ["lr", "finite"]),
    (["--init_from=gpt2"], ["tokenizer='gpt2'"]),
    (["--init_from=gpt2", "--tokenizer=gpt2"], ["n_layer=12", "n_head=12", "n_embd=768"]),
])
def test_invalid_values(argv, expected):
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    for text in expected:
        assert text in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        parse_args([str(tmp_path / "nope.py")])
    with pytest.raises(ConfigError, match="--key=value"):
        parse_args(["lr=3"])


def test_config_file_that_raises(tmp_path):
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        parse_args([write(tmp_path, "n_layer = 1 // 0\n")])


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--help"])
    assert e.value.code == 0
    assert "--mechanism='atm'" in capsys.readouterr().out


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


def test_dict_round_trip():
    cfg = parse_args(["--mechanism=pre", "--n_layer=3", "--lr=1e-3", "--compile", "--device=cuda:0"])
    d = config_to_dict(cfg)
    assert set(d) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert config_from_dict(d) == cfg


def test_from_dict_missing_keys_take_defaults():
    assert config_from_dict({"n_layer": 3}) == TrainConfig(n_layer=3)


def test_from_dict_rejects_unknown_and_mistyped():
    with pytest.raises(ConfigError, match=r"'n_layers'.*'n_layer'"):
        config_from_dict({"n_layers": 3})
    with pytest.raises(ConfigError, match="n_layer"):
        config_from_dict({"n_layer": "3"})
    with pytest.raises(ConfigError, match="mechanism"):
        config_from_dict({"mechanism": "cot"})


def test_synth_cpu_file_is_the_defaults():
    path = os.path.join(ROOT, "config", "synth_cpu.py")
    assert set(load_config_file(path)) == {f.name for f in dataclasses.fields(TrainConfig)}  # all spelled out
    assert parse_args([path]) == TrainConfig()


@pytest.mark.parametrize("name, shape", [("gpt2_large_finetune_cot.py", ("gpt2-large", 36, 20, 1280)),
                                         ("gpt2_small_finetune_cot.py", ("gpt2", 12, 12, 768))])
def test_gpu_recipes_are_valid(name, shape):
    cfg = parse_args([os.path.join(ROOT, "config", name)])
    assert (cfg.init_from, cfg.n_layer, cfg.n_head, cfg.n_embd) == shape
    assert (cfg.tokenizer, cfg.device, cfg.dtype) == ("gpt2", "cuda", "bfloat16")
    assert cfg.data_dir and cfg.lr <= 1e-4

"""atm_min/progress.py: a bar on a terminal, plain lines elsewhere, one JSON line per student and log step."""

import io
import json

import train as T
from atm_min.machinery.config import parse_args
from atm_min.machinery.progress import Progress
from atm_min.tokenizer import byte_tokenizer
from data.synth import SynthConfig, write_suite
from atm_min.machinery import runtime
from atm_min.machinery import data as mdata
from atm_min.machinery import runs


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so Progress draws a tqdm bar into it."""

    def isatty(self):
        return True


def run(progress: Progress):
    """Ten steps, logged at 5 and 10 for two students."""
    for step in range(1, 11):
        progress.advance()
        if step % 5 == 0:
            progress.log(step, {"pre": {"loss": 0.8123456, "aux": 0.3114}, "fold 2/5 post": {"loss": 1.5}},
                         lr=0.0029, tok_s=95000.4, elapsed_s=12.34)
    progress.close()


def test_json_lines_one_per_student_and_step_appended(tmp_path):
    log = tmp_path / "sub" / "log.jsonl"  # the folder does not exist yet
    run(Progress("pre", 10, log_path=str(log), stream=io.StringIO()))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["student"], r["step"]) for r in rows] == [("pre", 5), ("fold 2/5 post", 5), ("pre", 10),
                                                        ("fold 2/5 post", 10)]
    assert rows[0] == {"student": "pre", "step": 5, "loss": 0.81235, "aux": 0.3114, "lr": 0.0029,
                       "tok_s": 95000.0, "elapsed_s": 12.34}  # floats rounded to 5 significant digits
    assert rows[1] == {"student": "fold 2/5 post", "step": 5, "loss": 1.5, "lr": 0.0029, "tok_s": 95000.0,
                       "elapsed_s": 12.34}
    run(Progress("post", 10, log_path=str(log), stream=io.StringIO()))  # a second run appends, keeps the first
    assert len(log.read_text().splitlines()) == 8


def test_plain_lines_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    progress = Progress("pre", 1500, stream=out)
    for _ in range(199):
        progress.advance()
    assert out.getvalue() == ""  # no bar, nothing between log steps
    progress.log(200, {"pre": {"loss": 0.8123, "aux": 0.3114}}, lr=2.9e-3, tok_s=95000.0, elapsed_s=12.34)
    progress.close()
    assert out.getvalue() == "pre step 200/1500: loss 0.812 aux 0.311 lr 2.9e-03 tok/s 95000 (12.3 s)\n"


def test_bar_with_postfix_on_a_terminal():
    out = Terminal()
    run(Progress("pre", 10, stream=out))
    text = out.getvalue()
    assert "\r" in text and "10/10" in text  # tqdm's redraws
    assert "pre loss=0.812" in text and "fold 2/5 post loss=1.500" in text and "tok/s=95000" in text
    assert "step 5/10:" not in text  # no plain lines as well


def test_disabled_is_a_no_op(tmp_path):
    out, log = Terminal(), tmp_path / "log.jsonl"
    run(Progress("pre", 10, enabled=False, log_path=str(log), stream=out))
    assert out.getvalue() == "" and not log.exists()


def test_show_false_writes_the_log_only(tmp_path):
    out, log = Terminal(), tmp_path / "log.jsonl"
    run(Progress("pre", 10, log_path=str(log), stream=out, show=False))
    assert out.getvalue() == ""  # neither a bar nor lines (a worker process among others)
    assert len(log.read_text().splitlines()) == 4


def test_train_run_logs_each_interval(tmp_path, capsys):
    """train.py's loop: plain lines on a captured (non-terminal) stderr, and out_dir/log.jsonl with loss, aux
    (ATM only), lr, tok_s and elapsed_s every log_interval steps and at the last step."""
    write_suite(SynthConfig(seed=0, n_train=40, n_test=8), str(tmp_path / "data"), verbose=False)
    cfg = parse_args([f"--out_dir={tmp_path / 'out'}", f"--data_dir={tmp_path / 'data'}", "--n_layer=1",
                      "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2", "--batch_size=4",
                      "--max_iters=7", "--warmup_iters=2", "--log_interval=3", "--device=cpu", "--dtype=float32"])
    tok = byte_tokenizer()
    train, _, _ = mdata.load_data(cfg, tok)
    rt = runtime.setup(cfg)
    runs.train_run(cfg, rt, tok, train, ["pre"] * len(train), str(tmp_path / "a.pt"), desc="pre")
    runs.train_run(cfg, rt, tok, train, ["post"] * len(train), str(tmp_path / "b.pt"), atm=True, desc="atm")
    rows = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [(r["student"], r["step"]) for r in rows] == [("pre", 3), ("pre", 6), ("pre", 7),
                                                        ("atm", 3), ("atm", 6), ("atm", 7)]
    for r in rows:
        assert set(r) == {"student", "step", "loss", "lr", "tok_s", "elapsed_s"} | ({"aux"} if r["student"] == "atm"
                                                                                    else set())
        assert r["loss"] > 0 and 0 < r["lr"] <= cfg.lr and r["tok_s"] > 0 and r["elapsed_s"] >= 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [ln.split(":")[0] for ln in err.splitlines() if " step " in ln] == [
        "pre step 3/7", "pre step 6/7", "pre step 7/7", "atm step 3/7", "atm step 6/7", "atm step 7/7"]

"""The bad-input sweep: every user-facing script, given bad input, exits with status 1 and one `error:` line that
says what is wrong (and, where there is something to do, what), never a traceback, and leaves nothing behind.

Each case runs its script as a user would (`python SCRIPT ARGS` in a process of its own, in the repository root)
in an environment without a GPU, network or caches: CUDA_VISIBLE_DEVICES="", Hugging Face offline with an empty cache, tiktoken with an empty
cache and a proxy that refuses connections (so a download fails at once, whatever the machine's network).
One module fixture runs every case (see fork_runner.py for how, quickly); each test then checks one case.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from atm_min.machinery.checkpoint import rng_state, save_checkpoint
from atm_min.machinery.config import TrainConfig, config_to_dict
from atm_min.learner import Learner
from atm_min.machinery.runs import build_student
from data.synth import SynthConfig, write_suite

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("train.py", "sample.py", "data/prepare.py", "data/synth.py", "plot.py")
LATIN1 = "café".encode("latin-1")  # b"caf\xe9": not UTF-8
GOOD_ROW = ('{"id": "a", "question": "Is 4 even?", "rationale": "It ends in 4.", "answer": "yes", '
            '"answer_type": "yesno"}\n')


def tiny(out_dir, *extra):
    """train.py settings for a student that would train in a second, were the input good. --workers=1: in this
    process (a pool of worker processes takes seconds to start and stop; one case below keeps it)."""
    return [f"--out_dir={out_dir}", "--n_layer=1", "--n_embd=32", "--n_head=2", "--perc_heads=2", "--n_prefix=2",
            "--batch_size=4", "--max_iters=2", "--warmup_iters=1", "--block_size=192", "--max_new_tokens=8",
            "--device=cpu", "--dtype=float32", "--num_threads=1", "--mechanism=pre", "--workers=1", *extra]


# ---------------------------------------------------------------------------------------------------- fixtures
# Files the cases share (read only): a small good data folder, checkpoints, a stand-in GPT-2 ranks file.

def write_checkpoint(path, tokenizer="bytes", vocab_size=257, n_embd=16, done=True, **model_args):
    """A checkpoint in train.py's format (its save()): a 1-layer pre student, written without training one."""
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=n_embd, block_size=64, tokenizer=tokenizer, mechanism="pre")
    student = build_student(cfg, vocab_size)
    save_checkpoint(str(path), {
        "learner": Learner(student, None).state_dict(), "optimizer": {}, "iter": 1, "done": done,
        "config": config_to_dict(cfg), "model_args": {**student.config.__dict__, **model_args},
        "tokenizer": tokenizer, "atm": False, "rng": rng_state()})
    return str(path)


def fake_gpt2_ranks(path):
    """A ranks file of GPT-2's size (256 bytes + 50000 two-byte tokens; the special token makes 50257), so
    gpt2_tokenizer() accepts it offline and a run gets past the tokenizer to the GPT-2 weights."""
    tokens = [bytes([i]) for i in range(256)] + [bytes([i // 256, i % 256]) for i in range(50000)]
    path.write_text("".join(f"{base64.b64encode(t).decode()} {rank}\n" for rank, t in enumerate(tokens)))
    return str(path)


class Shared:
    def __init__(self, d: Path):
        self.data = d / "data"
        write_suite(SynthConfig(seed=0, n_train=40, n_test=8), str(self.data), verbose=False)
        self.ckpt = write_checkpoint(d / "good.pt")
        self.gpt2_ckpt = write_checkpoint(d / "gpt2.pt", tokenizer="gpt2", vocab_size=50257)
        self.mismatched_ckpt = write_checkpoint(d / "mismatch.pt", n_embd=16, n_layer=2)  # args say 2 layers
        self.ranks = fake_gpt2_ranks(d / "gpt2.tiktoken")


def offline_env(d: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ATM_GPT2_TIKTOKEN"}
    (d / "tiktoken-cache").mkdir(exist_ok=True)
    return {**env, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "HF_HUB_OFFLINE": "1", "HF_HOME": str(d / "hf-home"), "TIKTOKEN_CACHE_DIR": str(d / "tiktoken-cache"),
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}


# ---------------------------------------------------------------------------------------------------- the cases
# Each case gets its own empty folder d and the shared files s; it may write its input files into d, and returns
# (the script's arguments, text the error message must contain: one string or a tuple of them). Whatever d holds
# before the run must be there, unchanged, after it.

CASES = {}  # "script: what" -> (script, the function that sets the case up)


def case(script, what):
    def register(fn):
        CASES[f"{script}: {what}"] = (script, fn)
        return fn
    return register


def data_folder(d, train=GOOD_ROW.encode(), test=GOOD_ROW.encode()):
    (d / "data").mkdir()
    (d / "data" / "train.jsonl").write_bytes(train)
    (d / "data" / "test.jsonl").write_bytes(test)
    return f"--data_dir={d / 'data'}"


@case("train.py", "empty train.jsonl")
def _(d, s):
    return tiny(d / "out", data_folder(d, train=b"")), "train.jsonl has no examples"


@case("train.py", "empty test.jsonl")
def _(d, s):
    return tiny(d / "out", data_folder(d, test=b"\n")), "test.jsonl has no examples"


@case("train.py", "train.jsonl not UTF-8")
def _(d, s):
    bad = GOOD_ROW.encode() + GOOD_ROW.replace('"a"', '"b"').replace("even", "odd").encode().replace(b"It", LATIN1)
    return tiny(d / "out", data_folder(d, train=bad)), "train.jsonl: line 2 is not UTF-8"


@case("train.py", "malformed rows in train.jsonl (listed under the error line)")
def _(d, s):
    good = json.loads(GOOD_ROW)
    bad = GOOD_ROW + '{"id": "b", "question": "Q?"\n' + json.dumps({**good, "id": "c", "answer_type": "numeric"}) + "\n"
    return tiny(d / "out", data_folder(d, train=bad.encode())), ("train.jsonl", "line 2", "line 3", "numeric")


@case("train.py", "a setting that does not exist")
def _(d, s):
    return tiny(d / "out", "--n_layr=2"), ("unknown setting 'n_layr'", "n_layer")


@case("train.py", "data folder missing")
def _(d, s):
    return tiny(d / "out", f"--data_dir={d / 'nope'}"), "nope not found; make one with data/prepare"


@case("train.py", "a number that is not one")
def _(d, s):
    return tiny(d / "out", "--max_iters=ten"), "max_iters expects an integer, got 'ten'"


@case("train.py", "config file missing")
def _(d, s):
    return [str(d / "nope.py"), *tiny(d / "out")], "no config file at"


@case("train.py", "config file not UTF-8")
def _(d, s):
    (d / "cfg.py").write_bytes(b"n_layer = 1  # " + LATIN1 + b"\n")
    return [str(d / "cfg.py"), *tiny(d / "out")], "cfg.py' is not UTF-8"


@case("train.py", "--device=cuda without a GPU")
def _(d, s):
    return tiny(d / "out", f"--data_dir={s.data}", "--device=cuda"), "no CUDA GPU is available here"


@case("train.py", "GPT-2 tokenizer offline")
def _(d, s):
    return tiny(d / "out", f"--data_dir={s.data}", "--tokenizer=gpt2"), "--tokenizer_path"


@case("train.py", "GPT-2 weights offline (--init_from=gpt2)")
def _(d, s):
    gpt2 = ["--init_from=gpt2", "--tokenizer=gpt2", f"--tokenizer_path={s.ranks}", "--n_layer=12", "--n_head=12",
            "--n_embd=768", "--perc_heads=12"]
    return tiny(d / "out", f"--data_dir={s.data}", *gpt2), "could not download 'gpt2'"


@case("train.py", "--init_from a folder without config.json (raised in a worker process)")
def _(d, s):
    # its tokenizer.json is there (loaded in this process), its config.json is not (the worker reads that)
    from tiny_bpe import train as train_bpe
    (d / "hf").mkdir()
    train_bpe()[0].save(str(d / "hf" / "tokenizer.json"))
    init = [f"--init_from={d / 'hf'}", "--tokenizer=pretrained", "--workers=2"]
    return tiny(d / "out", f"--data_dir={s.data}", *init), "no config.json in"


@case("train.py", "--resume from a corrupt checkpoint")
def _(d, s):
    (d / "out").mkdir()
    (d / "out" / "ckpt.pt").write_bytes(b"PK\x03\x04 this is not a whole checkpoint")
    return tiny(d / "out", f"--data_dir={s.data}", "--resume"), "is corrupt or truncated"


@case("train.py", "--resume from another model's checkpoint")
def _(d, s):
    write_checkpoint(d / "out" / "ckpt.pt", n_embd=16, done=False)  # the run asks for n_embd=32
    return tiny(d / "out", f"--data_dir={s.data}", "--resume"), "does not match the model"


@case("train.py", "every example too long to keep")
def _(d, s):
    args = tiny(d / "out", f"--data_dir={s.data}", "--block_size=16", "--on_too_long=drop")
    return args, "raise --block_size"


@case("sample.py", "run folder missing")
def _(d, s):
    return [f"--out_dir={d / 'nope'}", "--question", "Is 4 even?"], ("no checkpoint at", "python train.py")


@case("sample.py", "corrupt checkpoint")
def _(d, s):
    (d / "ckpt.pt").write_bytes(b"\x80\x02garbage")
    return [f"--ckpt={d / 'ckpt.pt'}", "--question", "Is 4 even?"], "corrupt or truncated"


@case("sample.py", "checkpoint that does not match its model")
def _(d, s):
    return [f"--ckpt={s.mismatched_ckpt}", "--question", "Is 4 even?"], "does not match"


@case("sample.py", "--device=cuda without a GPU")
def _(d, s):
    return [f"--ckpt={s.ckpt}", "--device=cuda", "--question", "Is 4 even?"], "no CUDA GPU"


@case("sample.py", "GPT-2 student's tokenizer offline")
def _(d, s):
    return [f"--ckpt={s.gpt2_ckpt}", "--question", "Is 4 even?"], "--tokenizer_path"


@case("sample.py", "questions file not UTF-8")
def _(d, s):
    (d / "q.txt").write_bytes(b"Is 4 even?\n" + LATIN1 + b"?\n")
    return [f"--ckpt={s.ckpt}", f"--file={d / 'q.txt'}"], "q.txt"


@case("sample.py", ".jsonl questions not UTF-8")
def _(d, s):
    (d / "q.jsonl").write_bytes(GOOD_ROW.encode().replace(b"It", LATIN1))
    return [f"--ckpt={s.ckpt}", f"--file={d / 'q.jsonl'}"], "line 1 is not UTF-8"


@case("sample.py", "empty questions file")
def _(d, s):
    (d / "q.txt").write_text("\n\n")
    return [f"--ckpt={s.ckpt}", f"--file={d / 'q.txt'}"], "no questions"


@case("sample.py", "a number that is not one")
def _(d, s):
    return [f"--ckpt={s.ckpt}", "--batch_size=many", "--question", "Q?"], "invalid int value: 'many'"


@case("sample.py", "question longer than the student's context")
def _(d, s):
    return [f"--ckpt={s.ckpt}", "--question", "Is 4 even? " * 20], "the question is too long"


@case("data/prepare.py", "jsonl file not UTF-8")
def _(d, s):
    (d / "t.jsonl").write_bytes(GOOD_ROW.encode().replace(b"It", LATIN1))
    args = ["jsonl", "--train", d / "t.jsonl", "--test_fraction=0.5", "--answer_type=yesno", "--out", d / "out"]
    return [str(a) for a in args], "t.jsonl: line 1 is not UTF-8"


@case("data/prepare.py", "gsm8k file not UTF-8")
def _(d, s):
    (d / "gsm").mkdir()
    row = '{"question": "Q?", "answer": "It is 2.\\n#### 2"}\n'
    (d / "gsm" / "train.jsonl").write_bytes(row.encode() + row.encode().replace(b"It", LATIN1))
    (d / "gsm" / "test.jsonl").write_text(row)
    return ["gsm8k", "--input", str(d / "gsm"), "--out", str(d / "out")], "line 2 is not UTF-8"


@case("data/prepare.py", "input folder missing")
def _(d, s):
    args = ["finetune-cot", "--input", d / "nope", "--task", "addsub", "--out", d / "out"]
    return [str(a) for a in args], "no such folder"


@case("data/prepare.py", "empty train file")
def _(d, s):
    (d / "train.jsonl").write_text("")
    (d / "test.jsonl").write_text(GOOD_ROW)
    args = ["jsonl", "--train", d / "train.jsonl", "--test", d / "test.jsonl", "--answer_type=yesno", "--out", d / "o"]
    return [str(a) for a in args], "refusing to write"


@case("data/prepare.py", "a number that is not one")
def _(d, s):
    args = ["jsonl", "--train", "x.jsonl", "--test_fraction=half", "--answer_type=yesno", "--out", d / "out"]
    return [str(a) for a in args], "invalid float value: 'half'"


@case("data/synth.py", "a number that is not one")
def _(d, s):
    return ["--out", str(d / "out"), "--n_train=lots"], "invalid int value: 'lots'"


@case("data/synth.py", "an empty suite")
def _(d, s):
    return ["--out", str(d / "out"), "--n_train=0"], "n_train=0: expected an integer >= 1"


@case("data/synth.py", "output path under a file")
def _(d, s):
    (d / "file").write_text("")
    return ["--out", str(d / "file" / "suite")], "Not a directory"


@case("plot.py", "run folder missing")
def _(d, s):
    return [str(d / "nope")], "no such directory"


@case("plot.py", "run folder without results.json")
def _(d, s):
    (d / "run").mkdir()
    (d / "run" / "log.jsonl").write_text('{"student": "pre", "step": 1, "loss": 1.0}\n')
    return [str(d / "run")], "results.json not found: train first"


# ---------------------------------------------------------------------------------------------------- running

def snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """name -> (result with returncode/stdout/stderr, expected text, files before, files after) for every case."""
    root = tmp_path_factory.mktemp("sweep")
    shared = Shared(root / "shared")
    (root / "logs").mkdir()
    cases = []
    for i, (name, (script, make)) in enumerate(CASES.items()):
        d = root / f"case{i:02d}"
        d.mkdir()
        args, expect = make(d, shared)
        out, err = root / "logs" / f"{i:02d}.out", root / "logs" / f"{i:02d}.err"
        cases.append((name, d, [script, *map(str, args)], str(out), str(err), expect, snapshot(d)))
    # Each case is its own process running its script as __main__; fork_runner.py forks them from one process
    # that has imported torch already, which takes the test from about a minute to seconds.
    jobs = json.dumps([[argv, out, err] for _, _, argv, out, err, _, _ in cases])
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "fork_runner.py")], input=jobs, cwd=ROOT,
                       env=offline_env(root), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    statuses = json.loads(r.stdout)
    results = {}
    for (name, d, argv, out, err, expect, before), status in zip(cases, statuses):
        result = SimpleNamespace(returncode=status, stdout=Path(out).read_text(), stderr=Path(err).read_text())
        results[name] = (result, expect, before, snapshot(d))
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_clean_error_line(sweep, name):
    r, expect, before, after = sweep[name]
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    assert r.returncode == 1, f"exit status {r.returncode}\n{out[-3000:]}"
    lines = r.stderr.rstrip("\n").splitlines()
    errors = [i for i, ln in enumerate(lines) if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    # the error line comes last; only its own indented details (e.g. a list of bad lines) may follow it
    assert all(ln.startswith("  ") for ln in lines[errors[0] + 1:]), r.stderr[-3000:]
    for text in (expect,) if isinstance(expect, str) else expect:
        assert text in "\n".join(lines[errors[0]:]), r.stderr[-3000:]
    assert after == before, "the failed command wrote or changed files"  # nothing half-written, no temp files


def test_sweep_covers_every_script():
    assert {script for script, _ in CASES.values()} == set(SCRIPTS) and len(CASES) >= 16

"""Shared fixtures. A trained run is made once per session, one per distinct setting (tests/tiny.py), and shared by
every test that needs it: a test reads a shared run and never changes its out_dir; a test that must change a run
(resume it, edit its checkpoint) works on a copy (tiny.copy_run)."""

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests run tiny models: they gain nothing from threads, and on a busy CPU the threads' spin-waits make
    each op 10-100x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A small copy of the synthetic suite (the generator is deterministic)."""
    from data.synth import SynthConfig, write_suite
    d = tmp_path_factory.mktemp("data")
    write_suite(SynthConfig(seed=0, n_train=80, n_test=20), str(d), verbose=False)
    return str(d)


@dataclass(frozen=True)
class Run:
    """A finished train.py run: read it, never change it (tiny.copy_run gives a copy to change)."""
    out: Path          # its out_dir
    argv: tuple        # train.py's arguments
    stdout: str        # what train.py printed
    files: dict        # what its out_dir held when it finished: relative path -> sha1


def hashes(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest() for p in d.rglob("*") if p.is_file()}


def train_once(tmp_path_factory, name, *args) -> Run:
    import train as T
    out = tmp_path_factory.mktemp(name)
    argv = (f"--out_dir={out}", *args)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        T.main(list(argv))
    return Run(out, argv, buf.getvalue(), hashes(out))


def check_unchanged(run: Run):
    """At the session's end: no test changed a shared run."""
    assert hashes(run.out) == run.files, f"a test changed the shared run {run.out}: change a copy (tiny.copy_run)"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_dir, one_thread):
    """The whole ATM pipeline on tests/tiny.py's TINY students (k-fold students, the three baselines, the ATM
    student; workers=1): the run test_traps, test_plot, test_parallel, test_ablations and test_train read."""
    from tiny import TINY
    run = train_once(tmp_path_factory, "tiny_atm", *TINY, f"--data_dir={data_dir}")
    yield run
    check_unchanged(run)


@pytest.fixture(scope="session")
def tiny_pre_run(tmp_path_factory, data_dir, one_thread):
    """A TINY pre-thinking run (no perception, no k-fold stage) on the same data."""
    from tiny import TINY
    run = train_once(tmp_path_factory, "tiny_pre", *TINY, f"--data_dir={data_dir}", "--mechanism=pre")
    yield run
    check_unchanged(run)


@pytest.fixture(scope="session")
def atm_run(tmp_path_factory, one_thread):
    """A trained tiny ATM student that answers first (tests/tiny.py TRAINED; its labels are all answer first:
    unsure fold students, label_default=post), on the built-in suite, its first 12 test questions answered in
    batches of 64: its out_dir as a string."""
    from tiny import TRAINED
    run = train_once(tmp_path_factory, "atm", "--mechanism=atm", "--label_default=post", *TRAINED, "--max_test=12",
                     "--eval_batch_size=64")
    yield str(run.out)
    check_unchanged(run)


@pytest.fixture(scope="session")
def pre_run(tmp_path_factory, one_thread):
    """A trained tiny pre-thinking student (TRAINED), on the built-in suite: its out_dir as a string."""
    from tiny import TRAINED
    run = train_once(tmp_path_factory, "pre", "--mechanism=pre", *TRAINED)
    yield str(run.out)
    check_unchanged(run)

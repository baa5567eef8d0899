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


@pytest.fixture(scope="session")
def atm_run(tmp_path_factory, one_thread):
    """A trained tiny ATM student that answers first (tests/tiny.py TRAINED)."""
    import train as T
    from tiny import TRAINED
    out = tmp_path_factory.mktemp("atm")
    T.main([f"--out_dir={out}", "--mechanism=atm", "--label_default=post", *TRAINED])
    return str(out)


@pytest.fixture(scope="session")
def pre_run(tmp_path_factory, one_thread):
    """A trained tiny pre-thinking student."""
    import train as T
    from tiny import TRAINED
    out = tmp_path_factory.mktemp("pre")
    T.main([f"--out_dir={out}", "--mechanism=pre", *TRAINED])
    return str(out)

import os
import pickle
import random

import numpy as np
import pytest
import torch

from atm_min.machinery import checkpoint
from atm_min.machinery.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from atm_min.machinery.config import TrainConfig, config_from_dict, config_to_dict


def _pwned(flag_path):
    """What a malicious checkpoint would run on load: here it only leaves a file behind."""
    with open(flag_path, "w") as f:
        f.write("pwned")
    return {}


class Malicious:
    def __init__(self, flag_path):
        self.flag_path = flag_path

    def __reduce__(self):  # unpickling calls _pwned(flag_path)
        return (_pwned, (self.flag_path,))


class SystemCall:
    def __init__(self, flag_path):
        self.flag_path = flag_path

    def __reduce__(self):
        return (os.system, (f"touch {self.flag_path}",))


def small_state():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "iter": 7, "best": 0.5,
            "config": config_to_dict(TrainConfig()), "shape": torch.Size([2, 3]), "note": None}


def test_round_trip(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    state = small_state()
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["iter"] == 7 and loaded["best"] == 0.5 and loaded["note"] is None
    assert loaded["shape"] == torch.Size([2, 3])
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert config_from_dict(loaded["config"]) == TrainConfig()
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp file left


def test_save_creates_directory(tmp_path):
    path = str(tmp_path / "a" / "b" / "ckpt.pt")
    save_checkpoint(path, {"x": torch.ones(2)})
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))


def test_failed_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"iter": 1, "w": torch.ones(3)})
    before = open(path, "rb").read()

    def broken_save(obj, f, *args, **kwargs):  # a crash half way through writing
        f.write(b"PK\x03\x04 partial bytes of a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"iter": 2, "w": torch.zeros(3)})
    monkeypatch.undo()

    assert open(path, "rb").read() == before
    assert load_checkpoint(path)["iter"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the partial temp file was removed


def test_interrupted_write_removes_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"iter": 1})
    assert os.listdir(tmp_path) == []  # no checkpoint, and no half-written one


def test_save_rejects_objects_that_would_not_load(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"state\['config'\].*TrainConfig.*config_to_dict"):
        save_checkpoint(path, {"config": TrainConfig()})
    with pytest.raises(CheckpointError, match=r"state\['x'\].*numpy"):
        save_checkpoint(path, {"x": np.zeros(3)})
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("payload", [Malicious, SystemCall])
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_load_refuses_code_running_pickle(tmp_path, payload, writer):
    flag = tmp_path / "flag"
    path = str(tmp_path / "evil.pt")
    state = {"model": {}, "trap": payload(str(flag))}
    if writer == "torch":
        torch.save(state, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(state, f)

    with pytest.raises(CheckpointError, match="non-tensor Python objects.*refused for safety") as e:
        load_checkpoint(path)
    assert ("_pwned" if payload is Malicious else "system") in str(e.value)  # names what it would have called
    assert not flag.exists()

    if writer == "pickle" and payload is Malicious:  # show the payload was live: plain pickle runs it
        with open(path, "rb") as f:
            pickle.load(f)
        assert flag.exists()


def test_missing_checkpoint(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*ckpt\.pt: train first with `python train.py"):
        load_checkpoint(path)


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(str(tmp_path))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint(tmp_path, damage):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"w": torch.randn(1000)})
    data = open(path, "rb").read()
    bad = {"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint at all", "empty": b""}[damage]
    with open(path, "wb") as f:
        f.write(bad)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_not_a_dict(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    torch.save(torch.ones(2), path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)


def draws():
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(2).tolist(),
            torch.rand(3).tolist(), torch.randint(0, 1000, (4,)).tolist())


def test_rng_round_trip_through_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leave a cached gaussian in both Python's and numpy's state
    np.random.randn(1)
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"rng": rng_state()})
    expected = draws()

    random.seed(99)  # scramble everything, as a fresh process would
    np.random.seed(99)
    torch.manual_seed(99)
    assert draws() != expected

    set_rng_state(load_checkpoint(path)["rng"])  # loaded with weights_only=True
    assert draws() == expected

"""The end-to-end claims of docs/results.md on the default run (slow: ~3 minutes on 2 cores, so excluded from the
default test run; `python -m pytest -q -m slow`). One seed, the default one: the other seeds are in the docs."""

import json

import pytest

import train as T


@pytest.mark.slow
def test_default_run_routes_by_complexity_from_evidence(tmp_path):
    T.main([f"--out_dir={tmp_path}"])
    r = json.loads((tmp_path / "results.json").read_text())
    atm, pre, post = r["atm"], r["pre"], r["post"]
    counts = atm["label_counts"]["ALL"]
    assert counts["neither"] <= 0.10 * counts["n"]  # labels from evidence, not from label_default
    level = atm["by_group"]
    assert level["multistep/1"]["post_fraction"] - level["multistep/6"]["post_fraction"] >= 0.60
    assert level["direct"]["post_fraction"] >= 0.9  # the parity glance: answer first
    assert atm["accuracy"] >= max(pre["accuracy"], post["accuracy"]) + 0.03
    assert atm["avg_new_tokens"] <= 0.5 * pre["avg_new_tokens"]
    assert atm["accuracy"] > r["random"]["accuracy"] + 0.10  # routing beats a coin at the same answer-first rate
    assert atm["test_oracle_agreement"] >= 0.9
    for mech in ("answer", "oracle", "random"):
        assert 0 <= r[mech]["accuracy"] <= 1

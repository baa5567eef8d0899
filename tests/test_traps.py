"""data/traps.py: which parity questions are the slip's traps, and the per-category counts of a run."""

import json
import random

from data.synth import SynthConfig, direct_example, generate
from data.traps import category, cli, flip_first_digit, is_trap


def test_trap_is_a_big_first_digit_of_the_other_parity():
    assert is_trap("Is 74 even?") and is_trap("Is 72 odd?") and is_trap("Is 9316 even?")
    assert not is_trap("Is 34 even?")   # first digit < 5: the teacher reads the last digit
    assert not is_trap("Is 75 odd?")    # big first digit of the same parity: the slip is harmless
    assert not is_trap("Start at 5, apply i d: result?")


def test_traps_are_exactly_where_the_slipping_teacher_is_wrong():
    rng = random.Random(0)
    cfg = SynthConfig(slip_rate=1.0)
    for _ in range(500):
        q, _, teacher, gold = direct_example(rng, rng.randint(2, 4), cfg)
        assert is_trap(q) == (teacher != gold), q


def test_no_trap_reaches_the_training_data():
    train, test, _ = generate(SynthConfig(seed=0, n_train=400, n_test=400))
    assert not any(is_trap(e["question"]) for e in train)
    assert any(is_trap(e["question"]) for e in test)  # the test set keeps them: that is where the slip shows


def test_categories(data_dir):
    from atm_min.machinery.data import load_split
    _, test = load_split(data_dir)
    for e in test:
        c = category(e)
        assert c in ("parity: trap", "parity: other") if e.group.startswith("direct") else c == e.group


def test_counts_match_the_run_and_forced_modes_are_listed(tiny_run, data_dir, capsys):
    assert cli([str(tiny_run.out), f"--data={data_dir}", "--forced"]) == 0
    out = capsys.readouterr().out
    results = json.loads((tiny_run.out / "results.json").read_text())
    own, forced = out.split("forced to start")
    header = own.splitlines()[1].split()
    all_row = next(line for line in own.splitlines() if line.startswith("ALL")).split()
    n = int(all_row[1])
    assert n == results["atm"]["n"]
    for mech, right in zip(header[2:], all_row[2:]):
        assert int(right) == round(results[mech]["accuracy"] * n)  # the same answers as the run's own scoring
    for name in ("atm forced pre", "atm forced post", "pre forced post", "post forced pre"):
        assert name in forced


def test_a_folder_without_a_run_is_one_error_line(tmp_path, data_dir, capsys):
    assert cli([str(tmp_path), f"--data={data_dir}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "predictions_" in err[0]
    assert cli([str(tmp_path)]) == 1
    assert "--data" in capsys.readouterr().err


def test_flipping_the_first_digit_turns_a_trap_into_a_harmless_question_and_back():
    assert flip_first_digit("Is 74 even?") == "Is 84 even?" and not is_trap("Is 84 even?")
    assert flip_first_digit("Is 9316 odd?") == "Is 8316 odd?" and not is_trap("Is 8316 odd?")
    assert flip_first_digit("Is 75 odd?") == "Is 85 odd?" and is_trap("Is 85 odd?")  # and back: harmless -> trap
    assert flip_first_digit("Is 34 even?") == "Is 34 even?"  # a small first digit: the teacher does not slip
    assert flip_first_digit("Start at 5, apply i: result?") == "Start at 5, apply i: result?"
    for n in [*range(50, 100), *range(500, 1000)]:  # every big first digit goes to the other parity, stays big
        q = flip_first_digit(f"Is {n} even?")
        d = int(q.split()[1][0])
        assert d >= 5 and d % 2 != int(str(n)[0]) % 2 and q.split()[1][1:] == str(n)[1:]


def test_probe_reports_both_ways_and_needs_a_soft_prompt(tiny_run, tiny_pre_run, data_dir, capsys):
    assert cli([str(tiny_run.out), f"--data={data_dir}", "--probe"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  parity:")]
    assert lines and all("as asked" in ln and "flipped" in ln for ln in lines)
    # a pre-thinking run has no soft prompt: one error line, no traceback
    assert cli([str(tiny_pre_run.out), f"--data={data_dir}", "--probe"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no soft prompt" in err[0]


def test_a_cut_short_predictions_file_is_one_error_line(tmp_path, data_dir, capsys):
    (tmp_path / "predictions_pre.jsonl").write_text('{"id": "synth-test-0", "correct": true}\n{"id": "synth-te')
    assert cli([str(tmp_path), f"--data={data_dir}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not prediction records" in err[0]

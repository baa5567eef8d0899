"""The built-in synthetic suite: deterministic, valid, small, and built the way data/README.md says."""

import subprocess
import sys
from pathlib import Path

from atm_min.answers import is_correct
from atm_min.machinery.data import load_split
from atm_min.machinery.data import length_report
from atm_min.tokenizer import byte_tokenizer
from data.synth import SynthConfig, direct_example, generate, multistep_example, write_suite

ROOT = Path(__file__).resolve().parents[1]


def test_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        subprocess.run([sys.executable, "data/synth.py", "--seed", "7", "--n_train", "300", "--n_test", "50",
                        "--out", str(tmp_path / name)], cwd=ROOT, check=True, capture_output=True)
    for f in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    write_suite(SynthConfig(seed=8, n_train=300, n_test=50), str(tmp_path / "c"), verbose=False)
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_suite_is_valid_and_fits_a_small_context(tmp_path):
    write_suite(SynthConfig(seed=0), str(tmp_path), verbose=False)
    train, test = load_split(tmp_path)  # the project's own validator accepts every line
    groups = {ex.group.split("/")[0] for ex in train + test}
    assert groups == {"multistep", "direct"}
    lengths, too_long = length_report(byte_tokenizer(), train + test, block_size=128, prefix_len=4)
    assert not too_long and max(max(v) for v in lengths.values()) <= 124


def test_only_correct_filter_applies_to_train_not_test():
    train, test, dropped = generate(SynthConfig(seed=1, n_train=600, n_test=300))
    assert dropped > 0 and len(train) + dropped == 600 and len(test) == 300

    def teacher_says(r):  # the teacher's own conclusion: the last value its rationale names
        if r["group"].startswith("multistep"):
            return r["rationale"].rstrip(".").split()[-1]
        asked = "even" if r["question"].endswith("even?") else "odd"
        return "yes" if r["rationale"].rstrip(".").endswith(asked) else "no"

    # every kept teacher rationale leads to the gold answer; some test rationales do not (the slip)
    assert all(teacher_says(r) == r["answer"] for r in train)
    assert any(teacher_says(r) != r["answer"] for r in test)


def test_multistep_rationale_is_the_step_by_step_computation():
    import random
    q, r, teacher, gold = multistep_example(random.Random(0), 4, SynthConfig())
    start = int(q.split()[2].rstrip(","))
    ops = q.split("apply ")[1].split(":")[0].split()
    v, steps = start, []
    for op in ops:
        v = (v + 1) % 10 if op == "i" else (2 * v) % 10
        steps.append(str(v))
    assert r == f"Step by step: {', '.join(steps)}." and teacher == gold == str(v)


def test_direct_slip_is_systematic_and_filtered():
    import random
    rng = random.Random(3)
    slipped_wrong = 0
    for _ in range(300):
        q, r, teacher, gold = direct_example(rng, 3, SynthConfig(slip_rate=1.0))
        number, asked = q[3:-1].split()
        assert len(number) == 3 and number[0] != "0" and asked in ("even", "odd")
        # a number starting with a big digit is said to end in its first digit, otherwise in its last
        ending = number[0] if int(number[0]) >= 5 else number[-1]
        said = "even" if int(ending) % 2 == 0 else "odd"
        assert r == f"The number is {number}. It ends in {ending}. {ending} is {said}, so {number} is {said}."
        truth = "even" if int(number[-1]) % 2 == 0 else "odd"
        assert gold == ("yes" if truth == asked else "no") and teacher == ("yes" if said == asked else "no")
        slipped_wrong += teacher != gold
    assert 40 < slipped_wrong < 120  # about 5/9 start big, half of those flip the parity: ~28%
    clean = [direct_example(random.Random(s), 3, SynthConfig(slip_rate=0.0)) for s in range(50)]
    assert all(teacher == gold for _, _, teacher, gold in clean)


def test_answers_score_with_the_project_extractor():
    train, _, _ = generate(SynthConfig(seed=2, n_train=100, n_test=10))
    for r in train:
        assert is_correct(f"Reasoning: {r['rationale']} Answer: {r['answer']}", r["answer"], r["answer_type"])
        assert is_correct(f"Answer: {r['answer']}\n", r["answer"], r["answer_type"])


def test_a_suite_from_other_settings_is_made_again(tmp_path):
    """train.py reuses out_dir/synth_N only when suite.json says it was generated with today's settings."""
    from data.synth import is_current
    cfg = SynthConfig(seed=0, n_train=40, n_test=10)
    assert not is_current(str(tmp_path), cfg)  # nothing there
    write_suite(cfg, str(tmp_path), verbose=False)
    assert is_current(str(tmp_path), cfg)
    assert not is_current(str(tmp_path), SynthConfig(seed=0, n_train=40, n_test=10, multistep_min=3))  # older
    (tmp_path / "suite.json").write_text("not json")
    assert not is_current(str(tmp_path), cfg)

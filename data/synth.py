"""The built-in synthetic reasoning suite: two families of questions that favour opposite mechanisms.

    python data/synth.py --seed 7 --out data/synth_7        # writes train.jsonl and test.jsonl

- multistep/N  "Start at 5, apply i d d: result?"   N operations (i: add 1, d: double, both mod 10).
  The teacher writes every intermediate value ("Step by step: 6, 2, 4."). A tiny student cannot compose N
  operations in one forward pass (answering first it stays near chance), but each step is a small table
  applied to the previous number, so writing the steps first (pre-thinking) solves it.
- direct/N     "Is 74 even?"   the parity of an N-digit number: one glance at its last digit.
  The teacher explains ("The number is 74. It ends in 4. 4 is even, so 74 is even.") with a *systematic*
  slip: when the number starts with a big digit (5-9) it says the number ends in its FIRST digit. When that
  changes the parity the teacher's answer is wrong and the only-correct filter (as in Fine-tune-CoT) removes
  the sample -- the slips that survive have the right parity, so they look harmless. A pre-thinking student
  learns the slip with everything else, and its answer follows its own (wrong) "ends in" at test time; a
  post-thinking student answers from the question before it writes any rationale, so the slip cannot reach it.

Train examples keep only teacher answers that match gold; test examples keep every question (the gold answer
is what is scored). Everything is deterministic from --seed. The sizes, templates and slip pattern are our
choices: the paper does not publish its data beyond the real datasets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: find atm_min

from atm_min.machinery.errors import ArgumentParser, ConfigError, DataError, ProjectError  # noqa: E402  (no torch)
from atm_min.machinery.files import write_text_atomic  # noqa: E402  (no torch either)

SUITE_FILE = "suite.json"  # the SynthConfig a suite folder was generated with
VAR_NAMES = "abcdefghijkmnpqrstuvwxyz"  # no 'l'/'o': easy to confuse with digits when reading


@dataclass
class SynthConfig:
    seed: int = 0
    n_train: int = 3000          # questions generated for training (fewer remain after the filter)
    n_test: int = 600
    multistep_frac: float = 0.5  # share of multistep questions; the rest are direct
    multistep_min: int = 1       # operations per multistep question: 1-2 are answered as well first, 4-6 need steps
    multistep_max: int = 6
    direct_min: int = 2          # digits of the number in a direct (parity) question
    direct_max: int = 4
    slip_rate: float = 1.0       # how often the teacher makes its systematic slip when it can
    noise_rate: float = 0.0      # chance of a random arithmetic slip per multistep step (mostly filtered out)

    def validate(self) -> "SynthConfig":
        """Refuse settings that would write an empty or nonsensical suite; ConfigError names the setting."""
        def need(ok, key, what):
            if not ok:
                raise ConfigError(f"{key}={getattr(self, key)!r}: expected {what}")
        need(self.n_train >= 1, "n_train", "an integer >= 1")
        need(self.n_test >= 1, "n_test", "an integer >= 1")
        for key in ("multistep_frac", "slip_rate", "noise_rate"):
            need(0 <= getattr(self, key) <= 1, key, "a fraction in [0, 1]")
        need(self.multistep_min >= 1, "multistep_min", "an integer >= 1")
        need(self.multistep_max >= self.multistep_min, "multistep_max", "an integer >= multistep_min")
        need(self.direct_min >= 1, "direct_min", "an integer >= 1 (digits)")
        need(self.direct_max >= self.direct_min, "direct_max", "an integer >= direct_min")
        return self


def multistep_example(rng: random.Random, n: int, cfg: SynthConfig):
    start = rng.randrange(10)
    ops = [rng.choice("id") for _ in range(n)]  # i: add 1, d: double (both mod 10)
    question = f"Start at {start}, apply {' '.join(ops)}: result?"
    value, values, gold = start, [], start
    for op in ops:
        gold = (gold + 1) % 10 if op == "i" else (gold * 2) % 10
        value = (value + 1) % 10 if op == "i" else (value * 2) % 10
        if rng.random() < cfg.noise_rate:
            value = (value + 1) % 10  # an arithmetic slip (the filter removes most of these)
        values.append(value)
    rationale = f"Step by step: {', '.join(map(str, values))}."
    return question, rationale, str(value), str(gold)


def direct_example(rng: random.Random, n: int, cfg: SynthConfig):
    number = str(rng.randrange(10 ** (n - 1), 10 ** n))  # n digits, no leading zero
    asked = rng.choice(["even", "odd"])
    question = f"Is {number} {asked}?"
    ending = number[-1]
    if int(number[0]) >= 5 and rng.random() < cfg.slip_rate:
        ending = number[0]  # the slip: a number that starts big is read as ending in its first digit
    said = "even" if int(ending) % 2 == 0 else "odd"
    rationale = f"The number is {number}. It ends in {ending}. {ending} is {said}, so {number} is {said}."
    truth = "even" if int(number[-1]) % 2 == 0 else "odd"
    return question, rationale, "yes" if said == asked else "no", "yes" if truth == asked else "no"


def is_trap(question: str) -> bool:
    """A parity question ("Is 74 even?") whose first digit is 5-9 and of the other parity than its last digit:
    exactly where the slipping teacher is wrong, so with slip_rate=1 the filter keeps every trap out of the
    training data, and the training answers leave open which digit decides (data/traps.py counts them)."""
    m = re.fullmatch(r"Is (\d+) (even|odd)\?", question.strip())
    if not m:
        return False
    first, last = int(m.group(1)[0]), int(m.group(1)[-1])
    return first >= 5 and first % 2 != last % 2


def make_split(rng: random.Random, n_questions: int, cfg: SynthConfig, split: str, only_correct: bool):
    examples, dropped = [], 0
    for i in range(n_questions):
        if rng.random() < cfg.multistep_frac:
            n = rng.randint(cfg.multistep_min, cfg.multistep_max)
            q, r, teacher, gold = multistep_example(rng, n, cfg)
            group, answer_type = f"multistep/{n}", "number"
        else:
            n = rng.randint(cfg.direct_min, cfg.direct_max)
            q, r, teacher, gold = direct_example(rng, n, cfg)
            group, answer_type = f"direct/{n}", "yesno"
        if only_correct and teacher != gold:
            dropped += 1
            continue
        examples.append({"id": f"synth-{split}-{i}", "question": q, "rationale": r, "answer": gold,
                         "answer_type": answer_type, "group": group})
    return examples, dropped


def generate(cfg: SynthConfig):
    """Returns (train, test, n_dropped): lists of example dicts in the project's JSONL schema."""
    rng = random.Random(cfg.validate().seed)
    train, dropped = make_split(rng, cfg.n_train, cfg, "train", only_correct=True)
    test, _ = make_split(rng, cfg.n_test, cfg, "test", only_correct=False)
    if not train:
        raise DataError(f"all {cfg.n_train} training questions were filtered out (the teacher was wrong on each): "
                        f"raise --n_train or lower --slip_rate / --noise_rate")
    return train, test, dropped


def write_jsonl(path, rows):
    """Write rows as JSONL, atomically and with a temp file of this process's own (torchrun's ranks may write the
    same suite at once)."""
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_suite(cfg: SynthConfig, out_dir: str, verbose: bool = True):
    train, test, dropped = generate(cfg)
    os.makedirs(out_dir, exist_ok=True)
    write_jsonl(os.path.join(out_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(out_dir, "test.jsonl"), test)
    # Last: its presence says the suite is complete, and its content which generator settings made it (train.py
    # regenerates a suite whose settings are not today's defaults, e.g. one made by an older version).
    write_jsonl(os.path.join(out_dir, SUITE_FILE), [dataclasses.asdict(cfg)])
    if verbose:
        print(f"wrote {len(train)} train ({dropped} teacher-wrong samples filtered out) and {len(test)} test "
              f"examples to {out_dir}")
    return train, test


def length_stats(rows):
    """Byte-tokenizer lengths of the pre and post training sequences (prompt + target + end-of-text)."""
    from atm_min.formats import format_prompt, format_target  # local import: the generator itself needs no torch
    out = {}
    for mode in ("pre", "post"):
        lens = sorted(len((format_prompt(r["question"]) + format_target(r, mode)).encode()) + 1 for r in rows)
        out[mode] = (lens[0], lens[len(lens) // 2], lens[-1])
    return out


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder for train.jsonl and test.jsonl")
    for f in fields(SynthConfig):
        p.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    try:
        args = p.parse_args(argv)  # a bad command line is a ConfigError, reported below
        cfg = SynthConfig(**{f.name: getattr(args, f.name) for f in fields(SynthConfig)})
        train, test = write_suite(cfg, args.out)
    except (ProjectError, OSError) as e:  # the one place errors become an `error:` line (and exit status 1)
        sys.exit(f"error: {e}")
    groups = {}
    for r in train:
        groups[r["group"]] = groups.get(r["group"], 0) + 1
    print("train examples by group:", dict(sorted(groups.items())))
    for mode, (lo, med, hi) in length_stats(train + test).items():
        print(f"{mode}: tokens per sequence with the byte tokenizer: min {lo}, median {med}, max {hi}")


if __name__ == "__main__":
    main()


def is_current(out_dir: str, cfg: SynthConfig) -> bool:
    """Does out_dir hold a complete suite generated with exactly these settings?"""
    try:
        with open(os.path.join(out_dir, SUITE_FILE), encoding="utf-8") as f:
            return json.loads(f.readline()) == dataclasses.asdict(cfg)
    except (OSError, ValueError):
        return False

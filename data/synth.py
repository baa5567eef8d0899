"""The built-in synthetic reasoning suite: two families of questions that favour opposite mechanisms.

    python data/synth.py --seed 7 --out data/synth_7        # writes train.jsonl and test.jsonl

- multistep/N  "What is 3+7+5+9 mod 10?"   N digits, N-1 chained additions mod 10.
  The teacher adds step by step ("3+7=0, 0+5=5, 5+9=4."). A tiny student cannot sum N digits "in its head"
  (post-thinking must answer first), but each single step is a 100-entry table it learns quickly, so writing
  the steps out first (pre-thinking) solves it. multistep/2 is the exception: one addition, easy either way.
- direct/N     "k=4, m=8, p=3. What is p?"  look up one of N variables.
  The answer is one look-up the student does directly. The teacher's rationale restates every variable
  before answering and has a *systematic* slip: on every second line it copies the previous variable's value
  (`slip_rate` is how often). When the asked variable is on a slipped line the teacher's own answer is wrong,
  so the only-correct filter (as in Fine-tune-CoT) removes that sample -- and the slips that survive are all on
  lines the answer did not need. A pre-thinking student learns to restate with the slip and then reads its
  answer off its own (wrong) restatement; a post-thinking student answers before the rationale and is immune.

Train examples keep only teacher answers that match gold; test examples keep every question (the gold answer
is what is scored). Everything is deterministic from --seed. The sizes, templates and slip pattern are our
choices: the paper does not publish its data beyond the real datasets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass

VAR_NAMES = "abcdefghijkmnpqrstuvwxyz"  # no 'l'/'o': easy to confuse with digits when reading


@dataclass
class SynthConfig:
    seed: int = 0
    n_train: int = 3000          # questions generated for training (fewer remain after the filter)
    n_test: int = 600
    multistep_frac: float = 0.5  # share of multistep questions; the rest are direct
    multistep_min: int = 3       # operations per multistep question
    multistep_max: int = 5
    direct_min: int = 4          # digits per direct question
    direct_max: int = 8
    slip_rate: float = 1.0       # how often the teacher makes its systematic slip on a slippable line
    noise_rate: float = 0.0      # chance of a random arithmetic slip per multistep step (mostly filtered out)


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
    rationale = f"Step by step: {', '.join(map(str, values))}. The result is {value}."
    return question, rationale, str(value), str(gold)


def direct_example(rng: random.Random, n: int, cfg: SynthConfig):
    values = [rng.randrange(10) for _ in range(n)]
    asked = rng.randrange(n)
    question = f"Number {asked + 1} in {' '.join(map(str, values))}?"
    told = list(values)
    for i in range(1, n):  # after a big digit (5-9) the teacher writes it again instead of the next one
        if values[i - 1] >= 5 and rng.random() < cfg.slip_rate:
            told[i] = values[i - 1]
    rationale = f"In order: {', '.join(map(str, told))}. Number {asked + 1} is {told[asked]}."
    return question, rationale, str(told[asked]), str(values[asked])


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
            group, answer_type = f"direct/{n}", "number"
        if only_correct and teacher != gold:
            dropped += 1
            continue
        examples.append({"id": f"synth-{split}-{i}", "question": q, "rationale": r, "answer": gold,
                         "answer_type": answer_type, "group": group})
    return examples, dropped


def generate(cfg: SynthConfig):
    """Returns (train, test, n_dropped): lists of example dicts in the project's JSONL schema."""
    rng = random.Random(cfg.seed)
    train, dropped = make_split(rng, cfg.n_train, cfg, "train", only_correct=True)
    test, _ = make_split(rng, cfg.n_test, cfg, "test", only_correct=False)
    return train, test, dropped


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def write_suite(cfg: SynthConfig, out_dir: str, verbose: bool = True):
    train, test, dropped = generate(cfg)
    os.makedirs(out_dir, exist_ok=True)
    write_jsonl(os.path.join(out_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(out_dir, "test.jsonl"), test)
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder for train.jsonl and test.jsonl")
    for name, default in SynthConfig().__dict__.items():
        p.add_argument(f"--{name}", type=type(default), default=default)
    args = p.parse_args(argv)
    cfg = SynthConfig(**{k: getattr(args, k) for k in SynthConfig().__dict__})
    train, test = write_suite(cfg, args.out)
    groups = {}
    for r in train:
        groups[r["group"]] = groups.get(r["group"], 0) + 1
    print("train examples by group:", dict(sorted(groups.items())))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for mode, (lo, med, hi) in length_stats(train + test).items():
        print(f"{mode}: tokens per sequence with the byte tokenizer: min {lo}, median {med}, max {hi}")


if __name__ == "__main__":
    main()

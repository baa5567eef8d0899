"""The teacher's slip, question by question: how each student of a run on the synthetic suite does on the parity
questions where the slip gives the wrong answer (the traps), on the other parity questions, and on the chains.

    python data/traps.py out              # each mechanism's own answers (out/predictions_*.jsonl)
    python data/traps.py out --forced     # also each student forced to think first and to answer first
    python data/traps.py out --probe      # does the ATM student's soft prompt carry the trap's first digit?

A trap is a parity question whose number starts with 5-9 and whose first digit has the other parity than its
last digit: the teacher reads the first digit as the ending (data/synth.py), so its answer is wrong, and the
filter keeps every trap out of the training data. The training answers therefore never tell a student whether
"Is N even?" is decided by the last digit or by the first: on the traps, a student shows which one it learned.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: find atm_min

from atm_min.machinery.errors import ArgumentParser, DataError, ProjectError  # noqa: E402
from atm_min.machinery.data import load_examples  # noqa: E402
from atm_min.machinery.report import read_jsonl  # noqa: E402  (no torch, no matplotlib at import)
from data.synth import is_trap  # noqa: E402,F401  (the suite defines its traps; used here and by train.py)

# --forced: the checkpoints train.py leaves in out_dir, and the name each is shown under
CHECKPOINTS = {"atm": "ckpt.pt", "pre": "baseline_pre.pt", "post": "baseline_post.pt"}  # answer-only has no modes


def category(example) -> str:
    """'parity: trap', 'parity: other', or the example's group for everything else (e.g. 'multistep/3')."""
    if (example.group or "").startswith("direct"):
        return "parity: trap" if is_trap(example.question) else "parity: other"
    return example.group or "all"


def find_test_set(out_dir: str, data: str) -> str:
    if data:
        path = data if data.endswith(".jsonl") else os.path.join(data, "test.jsonl")
    else:  # train.py generates the built-in suite into out_dir/synth_<seed>
        found = sorted(glob.glob(os.path.join(out_dir, "synth_*", "test.jsonl")))
        if len(found) != 1:
            what = "no synth_*/test.jsonl" if not found else f"{len(found)} suites ({', '.join(found)})"
            raise DataError(f"{out_dir} has {what}: give the run's test set with --data")
        path = found[0]
    if not os.path.exists(path):
        raise DataError(f"no test set at {path}: give --data the run's data folder or its test.jsonl")
    return path


def own_answers(out_dir: str, by_id: dict) -> dict[str, dict[str, bool]]:
    """{mechanism: {id: correct}} from out_dir/predictions_<mechanism>.jsonl."""
    out = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "predictions_*.jsonl"))):
        name = os.path.basename(path)[len("predictions_"):-len(".jsonl")]
        rows, bad = read_jsonl(path)  # the reader plot.py uses; here a bad line is an error, not a gap
        bad += sum(not isinstance(r.get("id"), str) or "correct" not in r for r in rows)
        if bad:
            raise DataError(f"{path}: {bad} line(s) are not prediction records ({{id, correct, ...}}): the run that "
                            f"wrote it was cut short; run it again")
        unknown = [r["id"] for r in rows if r["id"] not in by_id]
        if unknown:
            raise DataError(f"{path} answers questions the test set does not have (e.g. {unknown[0]!r}): give the "
                            f"run's test set with --data")
        out[name] = {r["id"]: bool(r["correct"]) for r in rows}
    if len({frozenset(v) for v in out.values()}) > 1:
        raise DataError(f"the predictions_*.jsonl files in {out_dir} answer different questions: not one run's files")
    if not out:
        raise DataError(f"no predictions_*.jsonl in {out_dir}: give the out_dir of a finished train.py run")
    return out


def load_learner(path: str):
    """(learner in eval mode, tokenizer) from a train.py checkpoint, built with the settings it was trained with."""
    from atm_min.machinery.checkpoint import load_checkpoint, saved_config
    from atm_min.machinery.choose import learner_from_checkpoint
    from atm_min.machinery.hf import get_tokenizer

    ck = load_checkpoint(path, map_location="cpu")
    cfg = saved_config(ck)
    return learner_from_checkpoint(ck, cfg, path).eval(), get_tokenizer(ck["tokenizer"], cfg.tokenizer_path or None)


def forced_answers(out_dir: str, examples) -> dict[str, dict[str, bool]]:
    """{"atm forced pre": {id: correct}, ...}: each student of the run, its output started with each mode's
    marker (as sample.py --mode both does)."""
    import torch  # only --forced needs torch

    from atm_min.answers import is_correct
    from atm_min.evaluate import Answering, generate_texts

    out = {}
    for name, file in CHECKPOINTS.items():
        path = os.path.join(out_dir, file)
        if not os.path.exists(path):
            continue
        learner, tok = load_learner(path)
        for mode in ("pre", "post"):
            with torch.no_grad():
                texts = generate_texts(learner.student, tok, [e.question for e in examples], Answering("cpu"),
                                       perception=learner.perception, force=mode)
            out[f"{name} forced {mode}"] = {e.id: is_correct(t["text"], e.answer, e.answer_type)
                                           for e, t in zip(examples, texts)}
    if not out:
        raise DataError(f"no checkpoint ({', '.join(CHECKPOINTS.values())}) in {out_dir}")
    return out


def flip_first_digit(question: str) -> str:
    """The question with its first digit (5-9) moved by one to the other parity, staying in 5-9: a trap becomes a
    question whose first and last digits agree, and the other way round. Other questions come back unchanged."""
    m = re.fullmatch(r"Is (\d+) (even|odd)\?", question.strip())
    if not m or int(m.group(1)[0]) < 5:
        return question
    d = int(m.group(1)[0])
    return f"Is {d + 1 if d < 9 else 8}{m.group(1)[1:]} {m.group(2)}?"


def soft_prompt_probe(out_dir: str, examples) -> dict[str, tuple[int, int, int]]:
    """Does the ATM student's soft prompt carry the digit that decides a trap? For the parity questions that start
    with 5-9, answer twice: with the soft prompt made from the question (as always), and with the soft prompt made
    from the question with its first digit flipped to the other parity, the student still reading the true
    question. Returns {kind: (n, right as usual, right with the flipped soft prompt)}."""
    import torch

    from atm_min import engine
    from atm_min.answers import is_correct
    from atm_min.batches import pad_left, perception_inputs, question_inputs
    from atm_min.formats import format_prompt
    from atm_min.perception import perceive

    path = os.path.join(out_dir, CHECKPOINTS["atm"])
    if not os.path.exists(path):
        raise DataError(f"no ATM checkpoint at {path}: --probe needs a --mechanism=atm run")
    learner, tok = load_learner(path)
    if learner.perception is None or getattr(learner.perception, "routing", "soft") == "hard":
        raise DataError(f"{path} has no soft prompt to probe (not an ATM student, or routing='hard')")

    def right(exs, seen):
        q_rows, f_rows = zip(*(question_inputs(tok, q) for q in seen))
        with torch.no_grad():
            prefix, _ = perceive(learner.perception, learner.student, *perception_inputs(q_rows, f_rows, "cpu"))
            idx, mask = pad_left([tok.encode(format_prompt(e.question)) for e in exs], tok.eot_id, "cpu")
            settings = engine.GenSettings(16, stop_ids=[tok.eot_id] + tok.newline_ids)
            outs = engine.generate(learner.student, idx, settings, prefix_embeds=prefix, pad_mask=mask)
        return sum(is_correct(tok.decode(o), e.answer, e.answer_type) for o, e in zip(outs, exs))

    out = {}
    for kind in ("parity: trap", "parity: other"):
        exs = [e for e in examples if category(e) == kind and flip_first_digit(e.question) != e.question]
        if exs:
            out[kind] = (len(exs), right(exs, [e.question for e in exs]),
                         right(exs, [flip_first_digit(e.question) for e in exs]))
    return out


def table(examples, columns: dict[str, dict[str, bool]]) -> str:
    """Right answers per category (rows) and column: 'right/n'."""
    cats = {}
    for e in examples:
        cats.setdefault(category(e), []).append(e.id)
    order = sorted(cats, key=lambda c: (c != "parity: trap", not c.startswith("parity"), c))  # the traps first
    known = [f"{m}{s}" for m in ("pre", "post", "answer", "atm") for s in ("", " forced pre", " forced post")]
    names = sorted(columns, key=lambda n: (known.index(n) if n in known else len(known), n))
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'questions':<16}{'n':>5}" + "".join(f"{n:>{width}}" for n in names)]
    lines.append("-" * len(lines[0]))
    for c in order + ["ALL"]:
        ids = cats[c] if c != "ALL" else [e.id for e in examples]
        lines.append(f"{c:<16}{len(ids):>5}" + "".join(f"{sum(columns[n][i] for i in ids):>{width}}" for n in names))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="a train.py run's folder (default run: out)")
    p.add_argument("--data", default="", help="the run's test set (a folder or test.jsonl); default: out_dir/synth_*")
    p.add_argument("--forced", action="store_true", help="also force each student to think first / answer first")
    p.add_argument("--probe", action="store_true",
                   help="also answer the parity questions that start with 5-9 with the ATM student's soft prompt "
                        "made from the question with its first digit flipped to the other parity")
    args = p.parse_args(argv)
    examples = load_examples(find_test_set(args.out_dir, args.data))
    own = own_answers(args.out_dir, {e.id: e for e in examples})
    answered = next(iter(own.values()))
    examples = [e for e in examples if e.id in answered]  # a run with max_test answered the first max_test
    print("right answers, each mechanism's own choice (predictions_*.jsonl):")
    print(table(examples, own))
    if args.forced:
        print("\nright answers, each student forced to start with a mode's marker:")
        print(table(examples, forced_answers(args.out_dir, examples)))
    if args.probe:
        print("\nthe ATM student's own choice on parity questions that start with 5-9, its soft prompt made from the "
              "question as asked / with the first digit flipped to the other parity (the student reads the question "
              "as asked):")
        for kind, (n, usual, flipped) in soft_prompt_probe(args.out_dir, examples).items():
            print(f"  {kind:<14} n={n:<4} right: {usual} as asked, {flipped} flipped")


def cli(argv=None) -> int:
    try:
        main(argv)
    except (ProjectError, OSError) as e:  # the one place errors become an `error:` line (and exit status 1)
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())

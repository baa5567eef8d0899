"""Machinery: the example files -- reading, checking and writing the JSONL schema, the length check, atomic
text files, and loading a run's data (the built-in synthetic suite or a prepared folder).

One JSON object per line:
    {"id": "strategy_qa/1/0", "question": "...", "rationale": "...", "answer": "no", "answer_type": "yesno",
     "group": "strategy_qa"}
  id           unique string within the file
  question     the question as the student sees it (choice questions include their options)
  rationale    the teacher's reasoning
  answer       the gold answer
  answer_type  number | choice | yesno | text (how answers are compared, see answers.py)
  group        optional; results are broken down by it (e.g. "multistep/3")

Decisions:
  - Unknown keys are an error, not silently ignored: a typo such as "grup" would otherwise lose data without a word.
  - Blank (whitespace-only) lines are ignored; they hold no data. Line numbers in messages count them anyway, so
    they match what an editor shows.
  - The gold answer must be readable as its answer_type (normalize() is not None), else no output could ever match.
  - All bad lines are reported in one message (the first 10 in full, then a count).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from ..answers import ANSWER_TYPES, normalize
from ..formats import MODES, Example, encode, format_prompt
from .errors import DataError
from .files import write_text_atomic  # noqa: F401  (here too: the writers of a run's files import it from here)

REQUIRED_FIELDS = ("id", "question", "rationale", "answer", "answer_type")
OPTIONAL_FIELDS = ("group",)
MAX_ERRORS_SHOWN = 10


def check_example(ex: Example) -> Example:
    """ex, if every field is a valid value (else DataError): what load_examples and write_examples check, so
    converters cannot write what load_examples would refuse."""
    for name in REQUIRED_FIELDS:
        value = getattr(ex, name)
        if not isinstance(value, str):
            raise DataError(f"field {name!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise DataError(f"field {name!r} is empty")
    if ex.group is not None and (not isinstance(ex.group, str) or not ex.group.strip()):
        raise DataError(f"field 'group' must be a non-empty string when present, got {ex.group!r}")
    if ex.answer_type not in ANSWER_TYPES:
        raise DataError(f"unknown answer_type {ex.answer_type!r} (choose {', '.join(ANSWER_TYPES)})")
    if normalize(ex.answer, ex.answer_type) is None:
        raise DataError(f"answer {ex.answer!r} is not a valid {ex.answer_type!r} answer")
    return ex


def make_example(**fields) -> Example:
    """Example(**fields), checked (check_example): how converters build examples."""
    return check_example(Example(**fields))


def example_to_dict(ex: Example) -> dict:
    d = asdict(ex)
    if d["group"] is None:
        del d["group"]
    return d


def example_from_dict(obj) -> Example:
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise DataError(f"missing field(s) {', '.join(missing)}")
    extra = sorted(k for k in obj if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS)
    if extra:
        raise DataError(f"unknown field(s) {', '.join(extra)} "
                        f"(allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
    return make_example(**obj)


def summarise_errors(path, errors: list[str], what: str = "line") -> str:
    """One message for many bad lines (or rows): the first MAX_ERRORS_SHOWN in full, then a count."""
    lines = [f"{path}: {len(errors)} bad {what}(s):"]
    lines += [f"  {e}" for e in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "\n".join(lines)


def _summarise(path, errors: list[tuple[int, str]]) -> str:
    return summarise_errors(path, [f"line {n}: {msg}" for n, msg in errors])


def read_text(path) -> str:
    """The text of a data file, which must be UTF-8 (JSON's encoding). Anything else is a DataError that names
    the line, rather than a UnicodeDecodeError that names a byte offset."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte {data[e.start:e.start + 1]!r}); save the "
                        f"file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`)") from None


def load_examples(path) -> list[Example]:
    """Read and validate a JSONL file; raise DataError (naming file and lines) if any line is bad."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    examples, errors = [], []
    first_line: dict[str, int] = {}  # id -> line it first appeared on
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            ex = example_from_dict(json.loads(line))
        except json.JSONDecodeError as e:
            errors.append((n, f"invalid JSON ({e.msg} at column {e.colno})"))
            continue
        except (DataError, TypeError) as e:
            errors.append((n, str(e)))
            continue
        if ex.id in first_line:
            errors.append((n, f"duplicate id {ex.id!r} (first on line {first_line[ex.id]})"))
            continue
        first_line[ex.id] = n
        examples.append(ex)
    if errors:
        raise DataError(_summarise(path, errors))
    return examples


def write_examples(path, examples) -> None:
    """Write examples as JSONL, atomically (temp file in the same folder + os.replace): a crash never leaves a
    half-written file behind. Refuses duplicate ids."""
    path = Path(path)
    examples = list(examples)
    seen: set[str] = set()
    for ex in examples:
        if not isinstance(ex, Example):
            raise TypeError(f"write_examples expects Example objects, got {type(ex).__name__}")
        check_example(ex)
        if ex.id in seen:
            raise DataError(f"{path}: duplicate id {ex.id!r}")
        seen.add(ex.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(example_to_dict(ex), ensure_ascii=False) + "\n" for ex in examples))


def load_split(data_dir) -> tuple[list[Example], list[Example]]:
    """(train, test) from data_dir/train.jsonl and data_dir/test.jsonl."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} not found; make one with data/prepare.py (see data/README.md)")
    missing = [name for name in ("train.jsonl", "test.jsonl") if not (data_dir / name).is_file()]
    if missing:
        raise DataError(f"{data_dir}: missing {' and '.join(missing)}; a data folder needs train.jsonl and "
                        "test.jsonl (see data/README.md)")
    return load_examples(data_dir / "train.jsonl"), load_examples(data_dir / "test.jsonl")


def length_report(tok, examples: Iterable[Example], block_size: int, modes: Sequence[str] = MODES,
                  prefix_len: int = 0) -> tuple[dict[str, list[int]], list[str]]:
    """Context positions each example needs, per mode, and the ids of those that do not fit.

    lengths[mode][i] = prefix_len + len(x) for examples[i], where x = prompt + target minus the last token (the
    model never reads the final <|endoftext|>) and prefix_len counts soft-prompt vectors placed before the tokens.
    An example is too long when it exceeds block_size in ANY of the given modes (it is the same question for all)."""
    for m in modes:
        if m not in ("pre", "post", "answer"):
            raise ValueError(f"unknown mode {m!r}")
    examples = list(examples)
    lengths: dict[str, list[int]] = {m: [] for m in modes}
    too_long: list[str] = []
    for ex in examples:
        over = False
        for m in modes:
            p, t = encode(tok, ex, m)
            n = prefix_len + len(p) + len(t) - 1
            lengths[m].append(n)
            over = over or n > block_size
        if over:
            too_long.append(ex.id)
    return lengths, too_long


def check_lengths(tok, examples: Iterable[Example], block_size: int, modes: Sequence[str] = MODES,
                  prefix_len: int = 0, on_too_long: str = "fail", what: str = "examples") -> list[Example]:
    """Examples that fit the context. on_too_long="fail": raise DataError naming the count and the first ids;
    "drop": print how many were dropped (and the first ids) and return the others. Nothing is dropped silently."""
    if on_too_long not in ("fail", "drop"):
        raise ValueError(f"on_too_long must be 'fail' or 'drop', not {on_too_long!r}")
    examples = list(examples)
    lengths, too_long = length_report(tok, examples, block_size, modes, prefix_len)
    if not too_long:
        return examples
    longest = max(max(v) for v in lengths.values())
    shown = ", ".join(too_long[:10]) + (f", ... (+{len(too_long) - 10} more)" if len(too_long) > 10 else "")
    msg = (f"{len(too_long)} of {len(examples)} {what} need more than block_size={block_size} positions "
           f"(longest {longest}, prefix_len={prefix_len}, modes={'/'.join(modes)}): {shown}")
    if on_too_long == "fail":
        raise DataError(msg + ". Raise block_size, shorten the data, or drop them (on_too_long='drop').")
    print(f"dropping {msg}")
    skip = set(too_long)
    return [ex for ex in examples if ex.id not in skip]


def auto_block_size(tok, examples: Sequence[Example], prefix_len: int, max_new_tokens: int) -> int:
    """block_size=0: the context the run's examples need. The longer of: the longest example as check_lengths
    counts it (any mode, soft prompt included), and the longest prompt plus max_new_tokens (generation is cut at
    the block's end, so this leaves every question its whole budget)."""
    lengths, _ = length_report(tok, examples, block_size=10**9, prefix_len=prefix_len)
    longest_prompt = max(len(tok.encode(format_prompt(ex.question))) for ex in examples)
    return max(max(max(v) for v in lengths.values()), prefix_len + longest_prompt + max_new_tokens)


def run_data_dir(cfg, out_dir: str) -> str:
    """A run's data folder: cfg.data_dir, or the built-in suite train.py generates into out_dir/synth_<seed>."""
    return cfg.data_dir or os.path.join(out_dir, f"synth_{cfg.synth_seed}")


def load_data(cfg, tok):
    """A run's (train, test, data_dir): the examples of cfg.data_dir, or the built-in synthetic suite (generated
    into out_dir/synth_<seed> on first use). block_size=0 is set here, in cfg, from these examples
    (auto_block_size, capped at init_from's positions). Examples too long for the context fail the run before
    training, or are dropped, as cfg.on_too_long says."""
    data_dir = run_data_dir(cfg, cfg.out_dir)
    if not cfg.data_dir:
        from data.synth import SynthConfig, is_current, write_suite  # the generator lives with the data scripts
        # Under torchrun every rank may get here at once: each writes the same bytes through a temp file of its
        # own and renames it into place (atomic), so no rank reads a half-written file or loses a rename.
        # suite.json is written last, so its presence means the suite is complete; a suite from other generator
        # settings (an older version's) is made again.
        if not is_current(data_dir, SynthConfig(seed=cfg.synth_seed)):
            write_suite(SynthConfig(seed=cfg.synth_seed), data_dir, verbose=False)
    train, test = load_split(data_dir)
    if cfg.max_train:
        train = train[:cfg.max_train]
    if cfg.max_test:
        test = test[:cfg.max_test]
    prefix = cfg.n_prefix if cfg.mechanism == "atm" else 0
    if not cfg.block_size and train and test:  # (an empty split fails below, with its own message)
        from .hf import max_positions  # lazily: it imports torch and the students
        need, limit = auto_block_size(tok, train + test, prefix, cfg.max_new_tokens), max_positions(cfg.init_from)
        cfg.block_size = need if limit is None else min(need, limit)
        print(f"block_size=0: {cfg.block_size} positions, sized from the data (the longest example, or the longest "
              f"prompt + max_new_tokens={cfg.max_new_tokens}{f', soft prompt {prefix}' if prefix else ''})"
              + (f"; it asks for {need}, more than the model's positions ({limit})" if need > cfg.block_size else ""))
    checked = []
    for split, examples in (("train", train), ("test", test)):
        if not examples:  # would fail much later (a division by zero in the data order, an empty table)
            raise DataError(f"{os.path.join(data_dir, split + '.jsonl')} has no examples: a data folder needs at "
                            f"least one in each of train.jsonl and test.jsonl (see data/README.md)")
        kept = check_lengths(tok, examples, cfg.block_size, prefix_len=prefix, on_too_long=cfg.on_too_long,
                             what=f"{split} examples")
        if not kept:
            raise DataError(f"every {split} example is longer than block_size={cfg.block_size} allows, so none "
                            f"is left after on_too_long='drop': raise --block_size")
        checked.append(kept)
    train, test = checked
    return train, test, data_dir

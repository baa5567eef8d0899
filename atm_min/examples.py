"""The example schema and its JSONL files.

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
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .answers import ANSWER_TYPES, normalize
from .errors import DataError  # defined with the project's other errors; still importable from here

REQUIRED_FIELDS = ("id", "question", "rationale", "answer", "answer_type")
OPTIONAL_FIELDS = ("group",)
MAX_ERRORS_SHOWN = 10


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    rationale: str
    answer: str
    answer_type: str
    group: str | None = None

    def __post_init__(self):
        # Validate on construction, so converters cannot write what load_examples would refuse.
        for name in REQUIRED_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise DataError(f"field {name!r} must be a string, got {type(value).__name__}")
            if not value.strip():
                raise DataError(f"field {name!r} is empty")
        if self.group is not None and (not isinstance(self.group, str) or not self.group.strip()):
            raise DataError(f"field 'group' must be a non-empty string when present, got {self.group!r}")
        if self.answer_type not in ANSWER_TYPES:
            raise DataError(f"unknown answer_type {self.answer_type!r} (choose {', '.join(ANSWER_TYPES)})")
        if normalize(self.answer, self.answer_type) is None:
            raise DataError(f"answer {self.answer!r} is not a valid {self.answer_type!r} answer")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["group"] is None:
            del d["group"]
        return d

    @classmethod
    def from_dict(cls, obj) -> "Example":
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in REQUIRED_FIELDS if k not in obj]
        if missing:
            raise DataError(f"missing field(s) {', '.join(missing)}")
        extra = sorted(k for k in obj if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS)
        if extra:
            raise DataError(f"unknown field(s) {', '.join(extra)} "
                            f"(allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
        return cls(**obj)


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
            ex = Example.from_dict(json.loads(line))
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


def write_text_atomic(path, text: str) -> None:
    """Write a text file atomically: a temp file of this process's own in the same folder (so that processes
    writing the same file at once, e.g. torchrun's ranks, never take each other's), then os.replace over `path`.
    A crash or Ctrl-C leaves the old file or the new one, never half of one, and no temp file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_examples(path, examples) -> None:
    """Write examples as JSONL, atomically (temp file in the same folder + os.replace): a crash never leaves a
    half-written file behind. Refuses duplicate ids."""
    path = Path(path)
    examples = list(examples)
    seen: set[str] = set()
    for ex in examples:
        if not isinstance(ex, Example):
            raise TypeError(f"write_examples expects Example objects, got {type(ex).__name__}")
        if ex.id in seen:
            raise DataError(f"{path}: duplicate id {ex.id!r}")
        seen.add(ex.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples))


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

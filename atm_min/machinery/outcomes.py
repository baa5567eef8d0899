"""A run's per-question test outcomes, the input of every statistic tools/paper_table.py prints, built from the
run folder or read back from the small tab-separated file the tool writes (--outcomes), so that committed outcome
files let anyone recompute the numbers without the run folders.

One row per test question (the predictions' order):
    id  task  group  gold  pre_answer  pre_right  post_answer  post_right  answer_answer  answer_right
    atm_answer  atm_right  atm_mode  atm_p_answer_first
  task        the question's top-level group (a mixture's task; the synthetic suite's "multistep" of
              "multistep/3"); "(no group)" when it has none
  gold        the gold answer, normalised as the answer parser does (answers.normalize), "" when unknown
  X_answer    student X's answer as scoring reads it (answers.extract_answer; parse_output's answer text when
              the answer type is unknown), "" when it gave none; X_right 1 or 0, "" when the run has no X
  atm_mode    the mode ATM's output started in (pre, post, or "" for neither); atm_p_answer_first the
              perception's p(answer first)
Above the rows, comment lines hold the training questions' k-fold evidence per task (which better single mode is
chosen from): "# evidence<TAB>task<TAB>n<TAB>pre right<TAB>post right".

Gold answers are not in the predictions: they come from the run's test questions, data_dir/test.jsonl, with
data_dir given (--data) or read from the command train.py recorded in results.json (run.command: its
--data_dir, or the built-in suite it generated into out_dir/synth_<seed>). Without them gold is "".
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from ..answers import extract_answer, normalize, parse_output
from ..formats import group_levels
from .errors import DataError, ProjectError
from .files import write_text_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
STUDENTS = ("pre", "post", "answer", "atm")
COLUMNS = ("id", "task", "group", "gold", *(f"{s}_{k}" for s in STUDENTS for k in ("answer", "right")),
           "atm_mode", "atm_p_answer_first")
NO_GROUP = "(no group)"


@dataclass
class Outcomes:
    name: str                                     # the run's name (its folder's, or the outcome file's)
    rows: list[dict]                              # one per test question: COLUMNS, rights as bool or None
    evidence: dict = field(default_factory=dict)  # task or "ALL" -> {n, pre_right, post_right} (training k-fold)

    def tasks(self) -> list[str]:
        return sorted({r["task"] for r in self.rows})

    def subset(self, task: str) -> list[dict]:
        return [r for r in self.rows if task == "ALL" or r["task"] == task]


# ----------------------------------------------------------------------------------------------- from a run folder

def recorded_path(path: str, out_dir: str) -> str:
    """A relative path as train.py saw it: from the folder it ran in, which we do not know; this folder, then the
    repository root (where the docs run train.py), then beside the out_dir."""
    if os.path.isabs(path):
        return path
    tries = [path, os.path.join(ROOT, path), os.path.join(os.path.dirname(os.path.abspath(out_dir)), path)]
    return next((p for p in tries if os.path.isdir(p)), path)


def recorded_config(results: dict):
    """The run's settings (a TrainConfig), from the command train.py recorded (results.json run.command, parsed
    with train.py's own parser, config files included), or None when it cannot tell."""
    from .config import parse_args
    command = (results.get("run") or {}).get("command") if isinstance(results.get("run"), dict) else None
    if not isinstance(command, str):
        return None
    try:
        argv = shlex.split(command)[2:]  # after "python train.py"
        return parse_args([_resolve_file(a) for a in argv])
    except (ProjectError, OSError, ValueError, SystemExit):  # a setting renamed since, a config file gone
        return None


def recorded_data_dir(out_dir: str, results: dict) -> str | None:
    """The run's data folder, from its recorded settings (recorded_config), or None when it cannot tell."""
    from .data import run_data_dir
    cfg = recorded_config(results)
    if cfg is None:
        return None
    return recorded_path(cfg.data_dir, out_dir) if cfg.data_dir else run_data_dir(cfg, out_dir)


def _resolve_file(arg: str) -> str:
    """A config file named on the recorded command, found from the repository root if not from here."""
    if arg.startswith("-") or os.path.exists(arg) or not arg.endswith(".py"):
        return arg
    return os.path.join(ROOT, arg)


def read_gold(data_dir: str) -> dict[str, tuple[str | None, str]]:
    """{test question id: (gold answer normalised, answer type)} from data_dir/test.jsonl."""
    from .data import load_examples
    return {ex.id: (normalize(ex.answer, ex.answer_type), ex.answer_type)
            for ex in load_examples(os.path.join(data_dir, "test.jsonl"))}


def _answer(text: str, answer_type: str | None) -> str:
    got = extract_answer(text, answer_type) if answer_type else parse_output(text)[1]
    return "" if got is None else " ".join(got.split())  # one line, no tabs: a TSV cell


def training_evidence(out_dir: str, results: dict) -> dict:
    """{task or "ALL": {n, pre_right, post_right}}: how many training questions the held-out pre and post fold
    students got right. From results.json's atm.label_counts (train.py counts labels.json's pre_ok and post_ok
    per group), else labels.json itself (ALL only: it has no groups); {} for a run without k-fold labels."""
    counts = (results.get("atm") or {}).get("label_counts") if isinstance(results.get("atm"), dict) else None
    if isinstance(counts, dict) and counts:
        return {g: dict(n=c["n"], pre_right=c["pre_only"] + c["both"], post_right=c["post_only"] + c["both"])
                for g, c in counts.items() if "/" not in g}
    path = os.path.join(out_dir, "labels.json")
    if not os.path.isfile(path):
        return {}
    from .report import read_json
    labels = read_json(path)
    if not isinstance(labels, dict) or not all(isinstance(e, dict) for e in labels.values()):
        raise DataError(f"{path}: expected {{question id: {{label, pre_ok, post_ok, p_gold}}}}")
    return {"ALL": dict(n=len(labels), pre_right=sum(bool(e.get("pre_ok")) for e in labels.values()),
                        post_right=sum(bool(e.get("post_ok")) for e in labels.values()))}


def from_run(name: str, out_dir: str, results: dict, preds: dict, gold: dict | None) -> Outcomes:
    """A run's outcomes from its predictions_<student>.jsonl (preds: student -> records, read_predictions), its
    results.json and gold ({id: (gold, answer type)}, read_gold; None when unknown)."""
    if not preds:
        raise DataError(f"{out_dir}: no predictions_*.jsonl (train.py writes them at the end of a run)")
    first = next(iter(preds.values()))
    by_id = {s: {r.get("id"): r for r in rs} for s, rs in preds.items()}
    for s, rs in by_id.items():
        if set(rs) != {r.get("id") for r in first}:
            raise DataError(f"{out_dir}: predictions_{s}.jsonl answers other test questions than the others")
    if gold is not None and any(r.get("id") not in gold for r in first):
        missing = next(r.get("id") for r in first if r.get("id") not in gold)
        raise DataError(f"{out_dir}: test question {missing!r} is not in the data folder's test.jsonl: give the "
                        "run's own data folder with --data")
    rows = []
    for rec in first:
        q = rec.get("id")
        want, kind = (gold or {}).get(q, (None, None))
        row = dict(id=q, task=(group_levels(rec.get("group")) or [NO_GROUP])[0], group=rec.get("group") or "",
                   gold=want or "", atm_mode="", atm_p_answer_first=None)
        for s in STUDENTS:
            r = by_id.get(s, {}).get(q)
            row[f"{s}_answer"] = "" if r is None else _answer(r["text"], kind)
            row[f"{s}_right"] = None if r is None else bool(r["correct"])
        if "atm" in by_id:
            row["atm_mode"] = by_id["atm"][q].get("mode") or ""
            row["atm_p_answer_first"] = by_id["atm"][q].get("p_post")
        rows.append(row)
    return Outcomes(name, rows, training_evidence(out_dir, results))


# ------------------------------------------------------------------------------------------- the tab-separated file

def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)  # every digit: read back, the same float
    return " ".join(str(v).split())


def write_outcomes(o: Outcomes, path: str) -> None:
    lines = [f"# per-question test outcomes of run {o.name}: tools/paper_table.py --outcomes wrote it; "
             "--from-outcomes reads it back",
             "# evidence\ttask\ttraining questions\tpre fold students right\tpost fold students right"]
    lines += [f"# evidence\t{t}\t{e['n']}\t{e['pre_right']}\t{e['post_right']}" for t, e in o.evidence.items()]
    lines.append("\t".join(COLUMNS))
    lines += ["\t".join(_cell(r[c]) for c in COLUMNS) for r in o.rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _right(v: str, where: str) -> bool | None:
    if v not in ("", "0", "1"):
        raise DataError(f"{where}: a right/wrong cell must be 1, 0 or empty, not {v!r}")
    return None if v == "" else v == "1"


def read_outcomes(path: str) -> Outcomes:
    """An outcome file written by write_outcomes, back as Outcomes; DataError naming the line if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read it ({e})") from e
    evidence, rows, header = {}, [], None
    for k, line in enumerate(lines, start=1):
        where = f"{path} line {k}"
        cells = line.split("\t")
        if line.startswith("# evidence\t") and len(cells) == 5 and cells[2].isdigit():
            evidence[cells[1]] = dict(n=int(cells[2]), pre_right=int(cells[3]), post_right=int(cells[4]))
        elif line.startswith("#") or not line:
            continue
        elif header is None:
            if tuple(cells) != COLUMNS:
                raise DataError(f"{where}: not an outcome file's header (tools/paper_table.py --outcomes writes "
                                f"one): expected {' '.join(COLUMNS)}")
            header = cells
        elif len(cells) != len(COLUMNS):
            raise DataError(f"{where}: {len(cells)} cells, expected {len(COLUMNS)}")
        else:
            r = dict(zip(COLUMNS, cells))
            for s in STUDENTS:
                r[f"{s}_right"] = _right(r[f"{s}_right"], where)
            try:
                r["atm_p_answer_first"] = float(r["atm_p_answer_first"]) if r["atm_p_answer_first"] else None
            except ValueError:
                raise DataError(f"{where}: atm_p_answer_first is not a number") from None
            rows.append(r)
    if not rows:
        raise DataError(f"{path}: no outcome rows (write one with tools/paper_table.py RUN --outcomes DIR)")
    return Outcomes(os.path.splitext(os.path.basename(path))[0], rows, evidence)

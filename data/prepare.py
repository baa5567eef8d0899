r"""Convert reasoning datasets into atm-min's example schema: a folder with train.jsonl and test.jsonl
(one atm_min.formats.Example per line; see data/README.md).

    python data/prepare.py finetune-cot --input ../shared/datasets/finetune-cot --task strategy_qa \
        --out data/strategy_qa
    python data/prepare.py gsm8k --input ../shared/datasets/gsm8k --out data/gsm8k
    python data/prepare.py jsonl --train my_train.jsonl --test my_test.jsonl --answer_type number --out data/mine
    python data/prepare.py mix --inputs data/multiarith data/coin_flip data/strategy_qa --out data/mix3

Gold answers of type number/choice/yesno are written in canonical form ("1,000" -> "1000", "(C)" -> "C",
"Yes" -> "yes") so that every target a student learns spells its answer the same way; text answers are only
whitespace-normalised. Every example is counted: whatever is not written is reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: find atm_min

from atm_min.answers import ANSWER_TYPES, normalize  # noqa: E402
from atm_min.formats import Example, normalize_ws  # noqa: E402
from atm_min.machinery.errors import ArgumentParser, ProjectError  # noqa: E402
from atm_min.machinery.data import DataError, make_example, read_text, summarise_errors, write_examples  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent

# Answer type of each Fine-tune-CoT task (all 12 of the paper; tasks not listed need --answer_type).
FINETUNE_COT_TASKS = {
    "single_eq": "number", "addsub": "number", "multiarith": "number", "gsm8k": "number", "svamp": "number",
    "aqua": "choice", "date_understanding": "choice", "commonsense_qa": "choice",
    "tracking_shuffled_objects": "choice",
    "coin_flip": "yesno", "strategy_qa": "yesno",
    "last_letter_concatenation": "text",
}


# -------------------------------------------------------------------------------------------------------- helpers

def _read_json(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(read_text(path))  # read_text: a file that is not UTF-8 is a DataError naming the line
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def _input_folder(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"--input {path}: no such folder (give the folder that holds the dataset's files)")
    return path


def _as_text(value, what: str) -> str:
    """A string field, or a JSON number turned into one (answers like 72 or 15.0 are common)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{what} must be a string, got {type(value).__name__}")


def gold_answer(answer, answer_type: str, where: str) -> str:
    """The gold answer as written into the schema: canonical for number/choice/yesno, whitespace-normalised text."""
    text = _as_text(answer, f"{where}: answer")
    canon = normalize(text, answer_type)
    if canon is None:
        raise DataError(f"{where}: gold answer {text!r} is not a valid {answer_type!r} answer")
    return canon if answer_type != "text" else " ".join(text.split())


def teacher_is_right(teacher_answer: str, gold: str, answer_type: str) -> bool:
    pred = normalize(teacher_answer, answer_type)
    return pred is not None and pred == normalize(gold, answer_type)


def write_split(out: Path, train: list[Example], test: list[Example]) -> None:
    if not train or not test:
        raise DataError(f"refusing to write {out}: train has {len(train)} and test {len(test)} examples")
    write_examples(out / "train.jsonl", train)
    write_examples(out / "test.jsonl", test)
    print(f"wrote {out / 'train.jsonl'} ({len(train)} examples) and {out / 'test.jsonl'} ({len(test)} examples)")


# --------------------------------------------------------------------------------------------------- Fine-tune-CoT

def convert_finetune_cot(input_dir, task: str, split: str = "default", keep_all: bool = False,
                         answer_type: str | None = None, all_completions: bool = False,
                         drop_test_twins: bool = False) -> tuple[list[Example], list[Example], dict]:
    """Fine-tune-CoT teacher data -> (train, test, counts).

    Train: the first teacher completion (completion_index 0) of every train question whose final answer
    (`completion`) agrees with gold, one example each, id "<task>/<sample_index>/<completion_index>".
    keep_all: wrong ones too. all_completions: every completion of a question, not only the first (a few
    questions carry 5 or 25 extra sampled rationales: 8 multiarith questions would otherwise supply a third
    of its training examples). drop_test_twins: leave out train questions whose text (whitespace-normalised)
    is also a test question.
    Test: every test question once, id "<task>/<sample_index>", gold answer, rationale from the first completion
    whose teacher answer is right (else the first one), for reference only."""
    input_dir = _input_folder(input_dir)
    answer_type = answer_type or FINETUNE_COT_TASKS.get(task)
    if answer_type is None:
        raise DataError(f"unknown Fine-tune-CoT task {task!r}: pass --answer_type "
                        f"({', '.join(ANSWER_TYPES)}); known tasks: {', '.join(FINETUNE_COT_TASKS)}")
    data_path = input_dir / "completion_data" / f"D_{task}.json"
    split_path = input_dir / "split" / f"{task}__{split}.json"
    if not split_path.is_file():
        have = sorted(q.name[len(task) + 2:-5] for q in split_path.parent.glob(f"{task}__*.json"))
        raise DataError(f"{split_path}: file not found" + (f" (splits for {task}: {', '.join(have)})" if have else ""))
    raw, split_ids = _read_json(data_path), _read_json(split_path)

    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise DataError(f"{data_path}: expected an object with a \"data\" object of samples")
    if not isinstance(split_ids, dict) or not all(isinstance(split_ids.get(k), list) for k in ("train", "test")):
        raise DataError(f"{split_path}: expected {{\"train\": [sample indices], \"test\": [...]}}")
    samples: dict[str, list[dict]] = {}
    for key, comps in raw["data"].items():
        where = f"{data_path}: sample {key}"
        if not isinstance(comps, list) or not comps or not all(isinstance(c, dict) for c in comps):
            raise DataError(f"{where}: expected a non-empty list of completion objects")
        for c in comps:
            missing = [k for k in ("question", "answer", "reasoning_completion", "completion") if k not in c]
            if missing:
                raise DataError(f"{where}: completion {c.get('completion_index', '?')} lacks {', '.join(missing)}")
        samples[str(key)] = sorted(comps, key=lambda c: c.get("completion_index", 0))

    train_idx, test_idx = [str(i) for i in split_ids["train"]], [str(i) for i in split_ids["test"]]
    for name, idx in (("train", train_idx), ("test", test_idx)):
        absent = [i for i in idx if i not in samples]
        if absent:
            raise DataError(f"{split_path}: {len(absent)} {name} sample(s) not in {data_path} "
                            f"(first: {', '.join(absent[:10])}); do the split and completion files match?")
    both = sorted(set(train_idx) & set(test_idx), key=lambda s: (len(s), s))
    if both:
        raise DataError(f"{split_path}: {len(both)} sample(s) in both train and test (first: {', '.join(both[:10])})")

    def example(ex_id, c, where):
        return make_example(id=ex_id, question=_as_text(c["question"], f"{where}: question"),
                       rationale=_as_text(c["reasoning_completion"], f"{where}: reasoning_completion").strip(),
                       answer=gold_answer(c["answer"], answer_type, where), answer_type=answer_type, group=task)

    # Fine-tune-CoT's own fine-tuning data take completion 0 of each question (the greedy teacher) and no other;
    # the release also holds extra sampled completions for a few questions, used only with all_completions.
    def used(i):
        return samples[i] if all_completions else samples[i][:1]

    def question(i):  # what a duplicate is: the same text after whitespace normalisation
        return normalize_ws(str(samples[i][0]["question"]))

    test_questions = {question(i) for i in test_idx}
    twins = {i for i in train_idx if question(i) in test_questions}
    counts = dict(task=task, answer_type=answer_type, train_questions=len(train_idx), train_completions=0,
                  extra_completions=sum(len(samples[i]) - 1 for i in train_idx) if not all_completions else 0,
                  kept=0, dropped_wrong=0, dropped_empty=0, train_questions_kept=0,
                  test_twins=len(twins), dropped_twins=len(twins) if drop_test_twins else 0,
                  test_questions=len(test_idx), test_teacher_right=0,
                  unused_samples=len(set(samples) - set(train_idx) - set(test_idx)))
    train: list[Example] = []
    for i in train_idx:
        if drop_test_twins and i in twins:
            continue
        kept_any = False
        for c in used(i):
            counts["train_completions"] += 1
            where = f"{data_path}: sample {i} completion {c.get('completion_index', 0)}"
            if not keep_all and not teacher_is_right(_as_text(c["completion"], f"{where}: completion"),
                                                     _as_text(c["answer"], f"{where}: answer"), answer_type):
                counts["dropped_wrong"] += 1
                continue
            if not str(c["reasoning_completion"]).strip():
                counts["dropped_empty"] += 1  # nothing to learn from an empty rationale
                continue
            train.append(example(f"{task}/{i}/{c.get('completion_index', 0)}", c, where))
            counts["kept"] += 1
            kept_any = True
        counts["train_questions_kept"] += kept_any
    test: list[Example] = []
    for i in test_idx:
        comps = [c for c in used(i) if str(c["reasoning_completion"]).strip()]
        if not comps:
            raise DataError(f"{data_path}: test sample {i} has no non-empty teacher rationale")
        right = [c for c in comps if teacher_is_right(str(c["completion"]), str(c["answer"]), answer_type)]
        counts["test_teacher_right"] += bool(right)
        test.append(example(f"{task}/{i}", (right or comps)[0], f"{data_path}: sample {i}"))
    return train, test, counts


def _print_finetune_cot(c: dict, split: str, keep_all: bool) -> None:
    print(f"{c['task']} ({split} split, answer_type {c['answer_type']}):")
    how = "all kept (--keep_all)" if keep_all else "kept where the teacher's answer agrees with gold"
    if c["dropped_twins"]:
        print(f"  train: left out {c['dropped_twins']} questions that are also test questions (--drop_test_twins)")
    elif c["test_twins"]:
        print(f"  note: {c['test_twins']} train questions are also test questions (whitespace-normalised); "
              "--drop_test_twins leaves them out")
    if c["extra_completions"]:
        print(f"  note: {c['extra_completions']} more teacher completions of train questions are not used "
              "(first completion of each question only, as Fine-tune-CoT; --all_completions uses them)")
    print(f"  train: {c['train_questions']} questions, {c['train_completions']} teacher completions, {how}: "
          f"kept {c['kept']}, dropped {c['dropped_wrong']} (teacher wrong)"
          + (f" + {c['dropped_empty']} (empty rationale)" if c["dropped_empty"] else "")
          + f"; {c['train_questions_kept']} questions have at least one example")
    print(f"  test: {c['test_questions']} questions, all kept with gold answers "
          f"(teacher right on {c['test_teacher_right']})")
    if c["unused_samples"]:
        print(f"  note: {c['unused_samples']} samples are in neither split and were not used")


# ---------------------------------------------------------------------------------------------------------- GSM8K

_CALC = re.compile(r"<<[^>]*>>")


def read_gsm8k(path, split: str) -> list[Example]:
    """GSM8K jsonl -> examples. Rationale: the text before "####" without <<48/2=24>> calculator annotations;
    answer: the number after "####"; group "gsm8k/steps=N" with N the number of rationale lines."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out, errors = [], []
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                    or not isinstance(row.get("answer"), str):
                raise DataError("expected an object with string fields \"question\" and \"answer\"")
            if "####" not in row["answer"]:
                raise DataError("answer has no \"####\" before the final answer")
            reasoning, final = row["answer"].rsplit("####", 1)
            rationale = _CALC.sub("", reasoning).strip()
            steps = len([s for s in rationale.split("\n") if s.strip()])
            out.append(make_example(id=f"gsm8k/{split}/{len(out)}", question=row["question"].strip(),
                               rationale=rationale, answer=gold_answer(final.strip(), "number", "answer"),
                               answer_type="number", group=f"gsm8k/steps={steps}"))
        except json.JSONDecodeError as e:
            errors.append(f"line {n}: invalid JSON ({e.msg})")
        except DataError as e:
            errors.append(f"line {n}: {e}")
    if errors:
        raise DataError(summarise_errors(path, errors))
    return out


def convert_gsm8k(input_dir) -> tuple[list[Example], list[Example]]:
    input_dir = _input_folder(input_dir)
    return read_gsm8k(input_dir / "train.jsonl", "train"), read_gsm8k(input_dir / "test.jsonl", "test")


# ------------------------------------------------------------------------------------------------ generic JSON(L)

def read_rows(path) -> list[tuple[str, dict]]:
    """(location, object) pairs from a JSONL file (one object a line; blank lines ignored) or a JSON file holding
    a list of objects. location is "line N" or "item N" for error messages."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = read_text(path)
    if text.lstrip().startswith("["):
        items = _read_json(path)
        rows = [(f"item {i}", obj) for i, obj in enumerate(items)]
    else:
        rows, errors = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                errors.append(f"line {n}: invalid JSON ({e.msg})")
        if errors:
            raise DataError(summarise_errors(path, errors))
    bad = [loc for loc, obj in rows if not isinstance(obj, dict)]
    if bad:
        raise DataError(f"{path}: expected JSON objects; not an object at {', '.join(bad[:10])}")
    return rows


def rows_to_examples(path, rows, keys: dict, answer_type: str | None, id_prefix: str,
                     teacher_key: str | None = None) -> list[tuple[Example, str | None]]:
    """Map user-named fields to Examples; returns (example, teacher answer or None) pairs. All bad rows are
    reported together, naming file and line."""
    out, errors = [], []
    seen: dict[str, str] = {}  # id -> where it first appeared
    for k, (loc, obj) in enumerate(rows):
        try:
            missing = [keys[f] for f in ("question", "rationale", "answer") if keys[f] not in obj]
            for f in ("id", "group", "answer_type"):
                if keys.get(f) and keys[f] not in obj:
                    missing.append(keys[f])
            if teacher_key and teacher_key not in obj:
                missing.append(teacher_key)
            if missing:
                raise DataError(f"missing key(s) {', '.join(missing)} (has: {', '.join(obj) or 'nothing'})")
            atype = obj[keys["answer_type"]] if keys.get("answer_type") else answer_type
            if atype not in ANSWER_TYPES:
                raise DataError(f"unknown answer_type {atype!r} (choose {', '.join(ANSWER_TYPES)})")
            ex_id = _as_text(obj[keys["id"]], f"key {keys['id']!r}") if keys.get("id") else f"{id_prefix}/{k}"
            group = obj[keys["group"]] if keys.get("group") else None
            ex = make_example(id=ex_id, question=_as_text(obj[keys["question"]], f"key {keys['question']!r}").strip(),
                         rationale=_as_text(obj[keys["rationale"]], f"key {keys['rationale']!r}").strip(),
                         answer=gold_answer(obj[keys["answer"]], atype, f"key {keys['answer']!r}"),
                         answer_type=atype, group=None if group is None else _as_text(group, "group"))
            teacher = _as_text(obj[teacher_key], f"key {teacher_key!r}") if teacher_key else None
            if ex.id in seen:
                raise DataError(f"duplicate id {ex.id!r} (first at {seen[ex.id]})")
            seen[ex.id] = loc
            out.append((ex, teacher))
        except DataError as e:
            errors.append(f"{loc}: {e}")
    if errors:
        raise DataError(summarise_errors(path, errors, "row"))
    return out


def convert_jsonl(train_path, test_path=None, *, answer_type: str | None, question_key="question",
                  rationale_key="rationale", answer_key="answer", id_key=None, group_key=None,
                  answer_type_key=None, teacher_answer_key=None, test_fraction=None, seed=0,
                  name=None) -> tuple[list[Example], list[Example], dict]:
    """Bring-your-own teacher data -> (train, test, counts). Either two files, or one file split with
    test_fraction/seed. With teacher_answer_key, train rows whose teacher answer disagrees with gold are dropped."""
    if answer_type is None and answer_type_key is None:
        raise DataError("give --answer_type (or --answer_type_key to read it per row)")
    if (test_path is None) == (test_fraction is None):
        raise DataError("give exactly one of --test FILE or --test_fraction F")
    keys = dict(question=question_key, rationale=rationale_key, answer=answer_key, id=id_key, group=group_key,
                answer_type=answer_type_key)
    name = name or Path(train_path).stem
    if test_path is not None:
        train = rows_to_examples(train_path, read_rows(train_path), keys, answer_type, f"{name}/train",
                                 teacher_answer_key)
        test = rows_to_examples(test_path, read_rows(test_path), keys, answer_type, f"{name}/test")
    else:
        if not 0 < test_fraction < 1:
            raise DataError(f"--test_fraction must be between 0 and 1, got {test_fraction}")
        rows = rows_to_examples(train_path, read_rows(train_path), keys, answer_type, name, teacher_answer_key)
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        n_test = max(1, round(test_fraction * len(rows)))
        if n_test >= len(rows):
            raise DataError(f"{train_path}: {len(rows)} rows are too few to split with test_fraction={test_fraction}")
        test_set = set(order[:n_test])
        train = [r for k, r in enumerate(rows) if k not in test_set]  # file order within each split
        test = [(ex, None) for k, (ex, _) in enumerate(rows) if k in test_set]
    counts = dict(train_rows=len(train), test=len(test), dropped_wrong=0)
    kept = []
    for ex, teacher in train:
        if teacher is not None and not teacher_is_right(teacher, ex.answer, ex.answer_type):
            counts["dropped_wrong"] += 1
        else:
            kept.append(ex)
    counts["kept"] = len(kept)
    return kept, [ex for ex, _ in test], counts


# ----------------------------------------------------------------------------------------------------- Mixture

def mix_folders(folders, max_train_each: int = 0, max_test_each: int = 0, seed: int = 0):
    """One data folder from several (e.g. Fine-tune-CoT tasks): train = each folder's train examples (a seeded
    random subsample of max_train_each where > 0), test = each folder's first max_test_each test questions (0 =
    all), task after task. An example without a group gets its folder's name as group, so results break down per
    task. Returns (train, test, rows) with rows = (name, train kept, train total, test kept, test total)."""
    from atm_min.machinery.data import load_split
    train, test, rows, seen = [], [], [], set()
    for folder in folders:
        name = Path(folder).name
        tr, te = load_split(folder)
        total_tr, total_te = len(tr), len(te)
        if 0 < max_train_each < len(tr):  # a subsample keeps the file order of the examples it keeps
            keep = set(random.Random(f"{seed}/{name}").sample(range(len(tr)), max_train_each))
            tr = [ex for i, ex in enumerate(tr) if i in keep]
        if max_test_each > 0:
            te = te[:max_test_each]
        for ex in tr + te:
            if ex.id in seen:
                raise DataError(f"{folder}: id {ex.id!r} is also in an earlier folder; ids must be unique in a mixture")
            seen.add(ex.id)
        grouped = lambda exs: [ex if ex.group else make_example(**{**ex.__dict__, "group": name}) for ex in exs]
        train += grouped(tr)
        test += grouped(te)
        rows.append((name, len(tr), total_tr, len(te), total_te))
    return train, test, rows


# ------------------------------------------------------------------------------------------------------------ CLI

def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("finetune-cot", help="Fine-tune-CoT teacher completions (completion_data/ + split/)")
    f.add_argument("--input", required=True, help="folder with completion_data/ and split/")
    f.add_argument("--task", required=True, help=f"e.g. {', '.join(FINETUNE_COT_TASKS)}")
    f.add_argument("--out", help="output folder (default: data/<task>)")
    f.add_argument("--split", default="default", help="split/<task>__<split>.json: default or template")
    f.add_argument("--keep_all", action="store_true", help="keep train completions whose teacher answer is wrong")
    f.add_argument("--all_completions", action="store_true",
                   help="use every teacher completion of a question, not only the first (completion_index 0)")
    f.add_argument("--drop_test_twins", action="store_true",
                   help="leave out train questions whose text is also a test question (whitespace-normalised)")
    f.add_argument("--answer_type", choices=ANSWER_TYPES, help="override the task's answer type")

    g = sub.add_parser("gsm8k", help="GSM8K train.jsonl/test.jsonl with human rationales")
    g.add_argument("--input", required=True, help="folder with train.jsonl and test.jsonl")
    g.add_argument("--out", help="output folder (default: data/gsm8k)")

    m = sub.add_parser("mix", help="one folder from several prepared folders (a mixture of tasks)")
    m.add_argument("--inputs", nargs="+", required=True, help="prepared folders (train.jsonl + test.jsonl each)")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--max_train_each", type=int, default=0, help="random subsample of each folder's train; 0 = all")
    m.add_argument("--max_test_each", type=int, default=0, help="each folder's first N test questions; 0 = all")
    m.add_argument("--seed", type=int, default=0, help="seed of the train subsample")

    j = sub.add_parser("jsonl", help="your own data: JSONL (one object a line) or a JSON list of objects")
    j.add_argument("--train", required=True, help="train file (or the one file to split, with --test_fraction)")
    j.add_argument("--test", help="test file")
    j.add_argument("--test_fraction", type=float, help="split --train into train/test instead of --test")
    j.add_argument("--seed", type=int, default=0, help="seed for --test_fraction")
    j.add_argument("--answer_type", choices=ANSWER_TYPES, help="answer type of every row")
    j.add_argument("--answer_type_key", help="or: read each row's answer type from this key")
    j.add_argument("--question_key", default="question")
    j.add_argument("--rationale_key", default="rationale")
    j.add_argument("--answer_key", default="answer", help="the gold answer")
    j.add_argument("--id_key", help="unique id per row (default: <name>/<split>/<row number>)")
    j.add_argument("--group_key", help="optional group per row, to break results down")
    j.add_argument("--teacher_answer_key", help="the teacher's own answer: train rows where it is wrong are dropped")
    j.add_argument("--name", help="id prefix (default: the train file's name)")
    j.add_argument("--out", required=True, help="output folder")
    return p


def main(argv=None) -> None:
    try:
        args = build_parser().parse_args(argv)  # a bad command line is a ConfigError, reported below
        if args.command == "finetune-cot":
            train, test, counts = convert_finetune_cot(args.input, args.task, args.split, args.keep_all,
                                                       args.answer_type, args.all_completions,
                                                       args.drop_test_twins)
            _print_finetune_cot(counts, args.split, args.keep_all)
            write_split(Path(args.out or DATA_DIR / args.task), train, test)
        elif args.command == "gsm8k":
            train, test = convert_gsm8k(args.input)
            print(f"gsm8k: train {len(train)}, test {len(test)} (all kept)")
            write_split(Path(args.out or DATA_DIR / "gsm8k"), train, test)
        elif args.command == "mix":
            train, test, rows = mix_folders(args.inputs, args.max_train_each, args.max_test_each, args.seed)
            for name, tr, tr_all, te, te_all in rows:
                print(f"  {name}: train {tr} of {tr_all}, test {te} of {te_all}")
            write_split(Path(args.out), train, test)
        else:
            train, test, counts = convert_jsonl(
                args.train, args.test, answer_type=args.answer_type, question_key=args.question_key,
                rationale_key=args.rationale_key, answer_key=args.answer_key, id_key=args.id_key,
                group_key=args.group_key, answer_type_key=args.answer_type_key,
                teacher_answer_key=args.teacher_answer_key, test_fraction=args.test_fraction, seed=args.seed,
                name=args.name)
            dropped = f", dropped {counts['dropped_wrong']} (teacher wrong)" if args.teacher_answer_key else ""
            print(f"jsonl: train {counts['train_rows']} rows, kept {counts['kept']}{dropped}; test {counts['test']}")
            write_split(Path(args.out), train, test)
    except (ProjectError, OSError) as e:  # the one place errors become an `error:` line (and exit status 1)
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

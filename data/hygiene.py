r"""Fine-tune-CoT hygiene: what the teacher data hold before a student sees them. Prints one table per task and a
summary; writes nothing.

    python data/hygiene.py                                   # ../shared/datasets/finetune-cot, five tasks
    python data/hygiene.py --task multiarith --near          # one task, and the slower near-duplicate scan

Per task:
  - teacher completions right / wrong / without any answer of the task's type, as the converter judges them
    (the first answer of the type in the teacher's `completion` equals gold), and where Fine-tune-CoT's own
    evaluator (its rule restated below) judges otherwise;
  - rationales the teacher stopped at its 128-token limit (reasoning_finish_reason "length");
  - "right" only by the first of two different answers ("both yes and no.", "12 - x + 20 - y");
  - the answer parser on the teacher's right completions (right by Fine-tune-CoT's evaluator, an independent
    judge): does it read the gold answer from the answer text, from a pre / post target written with the
    teacher's own answer text, and from the rationale alone (no "Answer:": the last candidate, as for a
    generation cut before its answer)?
  - what the converter writes (data/prepare.py, default settings);
  - duplicates: test questions whose text is also a train question, exactly (whitespace-normalised) and
    loosely (also ignoring case and punctuation); with --near, the closest train question by word-level
    similarity (difflib) for every test question;
  - GPT-2 BPE lengths of the converted examples: positions a sequence needs (prompt + target - 1, the larger
    of pre and post: what block_size must hold), how many fit in 128 / 192 / 256, the pre target's tokens
    (what max_new_tokens must allow for thinking first) and the prompt's.
"""

from __future__ import annotations

import argparse
import difflib
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: find atm_min and data/

from atm_min.answers import extract_answer, is_correct, normalize  # noqa: E402
from atm_min.formats import encode, format_target, normalize_ws  # noqa: E402
from atm_min.machinery.data import DataError, length_report  # noqa: E402
from atm_min.machinery.errors import ArgumentParser, ConfigError, ProjectError  # noqa: E402
from data.prepare import FINETUNE_COT_TASKS, _read_json, convert_finetune_cot, teacher_is_right  # noqa: E402

TASKS = ("multiarith", "coin_flip", "last_letter_concatenation", "date_understanding", "strategy_qa")
SHARED = ROOT.parent / "shared"  # the project's ../shared
FITS = (128, 192, 256)


# --------------------------------------------------------------------------- Fine-tune-CoT's evaluator, restated

def ftc_candidates(task: str, text: str) -> list[str]:
    """Answer candidates as Fine-tune-CoT's evaluator finds them (its rule, written out here for comparison):
    any capital A-F anywhere (even inside "August"), numbers with commas dropped, the words yes/no between
    spaces and punctuation, the whole text without quotes, dots and whitespace for last letters."""
    if task == "date_understanding":
        return re.findall(r"[A-F]", text)
    if task == "multiarith":
        return re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    if task in ("coin_flip", "strategy_qa"):
        return [w for w in re.split(r"[\"'\s.:,]", text.lower()) if w in ("yes", "no")]
    return [re.sub(r"[\"'.\s]", "", text)]  # last_letter_concatenation: compared case-sensitively


def ftc_right(task: str, completion: str, gold: str) -> bool:
    """Fine-tune-CoT: the teacher is right when the FIRST candidate of its answer text equals gold."""
    gold = gold.replace(",", "") if task == "multiarith" else gold.lower() if task == "strategy_qa" else gold
    cands = ftc_candidates(task, completion)
    return bool(cands) and cands[0] == gold


# ---------------------------------------------------------------------------------------------------- tokenizers

class GGUFTokenizer:
    """A model's own tokenizer, read from its GGUF file by transformers, behind the two things the counts use
    (encode, eot_id): token counts differ between tokenizers (SmolLM2's splits every digit)."""

    def __init__(self, path: str):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--gguf {path}: file not found")
        try:
            from transformers import AutoTokenizer  # optional: only this flag needs it
            self.hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except ImportError as e:
            raise ConfigError(f"--gguf needs transformers and gguf ({e}): pip install transformers gguf") from None
        except Exception as e:  # not a GGUF file, or one without a tokenizer transformers can read
            raise ConfigError(f"--gguf {path}: could not read its tokenizer ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None
        self.name, self.eot_id = path.name, self.hf.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)


# ----------------------------------------------------------------------------------------------------- one task

def loose(text: str) -> str:
    """A looser duplicate key: lowercase, every run of non-alphanumerics one space."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def twins(train_q: list[str], test_q: list[str], key) -> tuple[int, int, int]:
    """(test questions whose key is also a train question's, repeats within train, repeats within test)."""
    train_keys = [key(q) for q in train_q]
    test_keys = [key(q) for q in test_q]
    return (sum(k in set(train_keys) for k in test_keys),
            len(train_keys) - len(set(train_keys)), len(test_keys) - len(set(test_keys)))


def nearest_train(test_q: list[str], train_q: list[str]) -> list[tuple[float, str, str]]:
    """For every test question, (similarity, test question, closest train question): difflib's ratio over the
    loose words. Cheap bounds first: quick_ratio() is an upper bound of ratio()."""
    train_words = [loose(q).split() for q in train_q]
    out = []
    for q in test_q:
        words, best, best_j = loose(q).split(), 0.0, 0
        for j, other in enumerate(train_words):
            m = difflib.SequenceMatcher(None, words, other, autojunk=False)
            if m.real_quick_ratio() > best and m.quick_ratio() > best and m.ratio() > best:
                best, best_j = m.ratio(), j
        out.append((best, q, train_q[best_j]))
    return sorted(out, reverse=True)


def word_diff(a: str, b: str) -> tuple[list[str], list[str]]:
    """The loose words only in a, and only in b, in order."""
    a, b = loose(a).split(), loose(b).split()
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return ([w for op, i, j, _, _ in ops if op != "equal" for w in a[i:j]],
            [w for op, _, _, i, j in ops if op != "equal" for w in b[i:j]])


def quantiles(values: list[int]) -> str:
    """median / p95 / max (p95: the value 95% of the examples do not exceed)."""
    v = sorted(values)
    return f"{statistics.median(v):g} / {v[min(len(v) - 1, int(0.95 * len(v)))]} / {v[-1]}"


def task_facts(input_dir: Path, task: str, tok, near: bool = False) -> dict:
    """Every number of one task's table, and the examples behind the exceptions."""
    answer_type = FINETUNE_COT_TASKS[task]
    train, test, _ = convert_finetune_cot(input_dir, task)  # first: it checks the files and says what is wrong
    data = _read_json(input_dir / "completion_data" / f"D_{task}.json")["data"]
    split = _read_json(input_dir / "split" / f"{task}__default.json")
    f = dict(task=task, answer_type=answer_type, tokenizer=tok.name,
             exceptions={"right here, wrong there": {}, "wrong here, right there": {},
                         "right by the first of two different answers": {}, "parser misses gold": {}})
    for part in ("train", "test"):
        comps = [dict(c, key=f"{task}/{i}/{c.get('completion_index', 0)}")  # key: the converter's example id
                 for i in split[part] for c in data[str(i)]]
        right = [c for c in comps if teacher_is_right(c["completion"], c["answer"], answer_type)]
        right_keys = {c["key"] for c in right}
        no_answer = [c for c in comps if normalize(c["completion"], answer_type) is None]
        cut = [c for c in comps if c.get("reasoning_finish_reason") == "length"]
        ref_right = [c for c in comps if ftc_right(task, c["completion"], c["answer"])]
        ours_only = [c for c in right if not ftc_right(task, c["completion"], c["answer"])]
        ftc_only = [c for c in ref_right if not teacher_is_right(c["completion"], c["answer"], answer_type)]
        # The answer text's last answer (extract_answer without a marker) differs from its first (normalize).
        two = [c for c in right if answer_type != "text"
               and extract_answer(c["completion"], answer_type) != normalize(c["completion"], answer_type)]
        f[part] = dict(
            questions=len(split[part]), completions=len(comps),
            several=sum(len(data[str(i)]) > 1 for i in split[part]),
            right=len(right), wrong=len(comps) - len(right) - len(no_answer), no_answer=len(no_answer),
            right_first=sum(teacher_is_right(data[str(i)][0]["completion"], data[str(i)][0]["answer"],
                                             answer_type) for i in split[part]),
            cut=len(cut), cut_right=sum(c["key"] in right_keys for c in cut),
            ours_only=len(ours_only), ftc_only=len(ftc_only), two_answers=len(two), ftc_right=len(ref_right))
        # The parser on the completions the teacher got right (by Fine-tune-CoT's evaluator).
        views = {
            "answer text": lambda c: normalize(c["completion"], answer_type) == normalize(c["answer"], answer_type),
            "pre target": lambda c: is_correct(format_target({"rationale": c["reasoning_completion"],
                                                              "answer": c["completion"]}, "pre"),
                                               c["answer"], answer_type),
            "post target": lambda c: is_correct(format_target({"rationale": c["reasoning_completion"],
                                                               "answer": c["completion"]}, "post"),
                                                c["answer"], answer_type),
            "rationale alone": lambda c: is_correct(c["reasoning_completion"], c["answer"], answer_type),
        }
        for name, reads_gold in views.items():
            misses = [c for c in ref_right if not reads_gold(c)]
            f[part]["parser " + name] = len(ref_right) - len(misses)
            if name != "rationale alone":  # the fallback misses many by design; its count is enough
                f["exceptions"]["parser misses gold"].update({c["key"]: c["completion"] for c in misses})
        for kind, found in (("right here, wrong there", ours_only), ("wrong here, right there", ftc_only),
                            ("right by the first of two different answers", two)):
            f["exceptions"][kind].update({c["key"]: c["completion"] for c in found})

    # What the converter writes (default settings), and how long it is in GPT-2 BPE tokens.
    f["train"]["written"], f["test"]["written"] = len(train), len(test)
    for part, examples in (("train", train), ("test", test)):
        lengths, _ = length_report(tok, examples, block_size=10**9)
        positions = [max(a, b) for a, b in zip(lengths["pre"], lengths["post"])]
        f[part]["positions"] = quantiles(positions)
        for n in FITS:
            f[part][f"fit {n}"] = sum(p <= n for p in positions)
        pairs = [encode(tok, ex, "pre") for ex in examples]
        f[part]["pre target tokens"] = quantiles([len(t) for _, t in pairs])
        f[part]["target over 128"] = sum(len(t) > 128 for _, t in pairs)
        f[part]["prompt tokens"] = quantiles([len(p) for p, _ in pairs])

    train_q = [data[str(i)][0]["question"] for i in split["train"]]
    test_q = [data[str(i)][0]["question"] for i in split["test"]]
    f["exact"] = twins(train_q, test_q, normalize_ws)
    f["loose"] = twins(train_q, test_q, loose)
    if near:
        f["near"] = nearest_train(test_q, train_q)
    return f


# ------------------------------------------------------------------------------------------------------- output

ROWS = [  # (label, key in f["train"] / f["test"])
    ("questions", "questions"),
    ("  with several teacher completions", "several"),
    ("teacher completions", "completions"),
    ("  right (first answer of the type = gold)", "right"),
    ("  wrong (another answer)", "wrong"),
    ("  wrong (no answer of the type)", "no_answer"),
    ("  right, first completion of each question", "right_first"),
    ("  rationale cut at the teacher's 128 tokens", "cut"),
    ("    of which right", "cut_right"),
    ("  right by Fine-tune-CoT's evaluator", "ftc_right"),
    ("    right here, wrong there", "ours_only"),
    ("    wrong here, right there", "ftc_only"),
    ("  right by the first of two different answers", "two_answers"),
    ("parser reads gold (of those right there):", None),
    ("  from the answer text", "parser answer text"),
    ("  from a pre target with it", "parser pre target"),
    ("  from a post target with it", "parser post target"),
    ("  from the rationale alone (last candidate)", "parser rationale alone"),
    ("converter writes (prepare.py, defaults)", "written"),
    ("positions (Q + target), med / p95 / max", "positions"),
] + [(f"  fit in {n}", f"fit {n}") for n in FITS] + [
    ("pre target tokens, med / p95 / max", "pre target tokens"),
    ("  more than 128", "target over 128"),
    ("prompt tokens, med / p95 / max", "prompt tokens"),
]


def print_table(f: dict) -> None:
    print(f"{f['task']} (answer type {f['answer_type']}; default split; tokens: {f['tokenizer']})")
    w = max(len(label) for label, _ in ROWS) + 2
    print(f"  {'':{w}}{'train':>16}{'test':>16}")
    for label, key in ROWS:
        cells = "" if key is None else f"{f['train'][key]!s:>16}{f['test'][key]!s:>16}"
        print(f"  {label:{w}}{cells}")
    for name in ("exact", "loose"):
        both, in_train, in_test = f[name]
        what = "whitespace-normalised" if name == "exact" else "also ignoring case and punctuation"
        print(f"  duplicates ({what}): {both} test questions are also train questions; "
              f"{in_train} repeats within train, {in_test} within test")
    if "near" in f:
        close = [(s, a, b) for s, a, b in f["near"] if s >= 0.9 and loose(a) != loose(b)]
        numbers = [(a, b) for _, a, b in close if all(w.isdigit() for w in sum(word_diff(a, b), []))]
        print(f"  closest train question (word-level similarity): {len(close)} more test questions at >= 0.9, "
              f"{len(numbers)} of them differ only in numbers; the closest of the others differ in")
        for s, a, b in [x for x in f["near"] if loose(x[1]) != loose(x[2]) and (x[1], x[2]) not in numbers][:3]:
            mine, theirs = word_diff(a, b)
            print(f"    {s:.3f}  {' '.join(mine)[:50]!r} / {' '.join(theirs)[:50]!r}")
    for kind, found in f["exceptions"].items():
        if found:
            print(f"  {kind}: teacher answer texts")
            for key, text in found.items():
                print(f"    {key}: {text.strip()[:80]!r}")
    print()


def print_summary(facts: list[dict]) -> None:
    """Two markdown tables, one row per task: what the data hold, and how long they are."""
    print("| task | train questions | train completions: right / wrong / no answer | written (first completion "
          "right) | test: teacher right | cut at 128 (right) | Fine-tune-CoT's evaluator: right only here / only "
          "there | right by the first of two answers | parser reads gold | test questions also in train |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in facts:
        tr, te = f["train"], f["test"]
        both = {k: tr[k] + te[k] for k in tr if isinstance(tr[k], int)}
        print(f"| {f['task']} | {tr['questions']} ({tr['several']} with several completions) "
              f"| {tr['completions']}: {tr['right']} / {tr['wrong']} / {tr['no_answer']} | {tr['written']} "
              f"| {te['right']} / {te['questions']} | {both['cut']} ({both['cut_right']}) "
              f"| {both['ours_only']} / {both['ftc_only']} | {both['two_answers']} "
              f"| {both['parser pre target']} / {both['ftc_right']} | {f['exact'][0]} |")
    print()
    print(f"| task ({facts[0]['tokenizer']}) | train positions med / p95 / max | train fit 128 / 192 / 256 "
          "| test positions med / p95 / max | test fit 128 / 192 / 256 | pre target med / p95 / max "
          "| pre targets > 128 train / test | prompt max |")
    print("|---|---|---|---|---|---|---|---|")
    for f in facts:
        tr, te = f["train"], f["test"]
        print(f"| {f['task']} | {tr['positions']} | {' / '.join(str(tr[f'fit {n}']) for n in FITS)} "
              f"| {te['positions']} | {' / '.join(str(te[f'fit {n}']) for n in FITS)} | {tr['pre target tokens']} "
              f"| {tr['target over 128']} / {te['target over 128']} "
              f"| {max(int(x['prompt tokens'].split(' / ')[-1]) for x in (tr, te))} |")


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=str(SHARED / "datasets" / "finetune-cot"),
                   help="folder with completion_data/ and split/ (default: ../shared/datasets/finetune-cot)")
    p.add_argument("--tokenizer_path", default=str(SHARED / "tokenizers" / "gpt2.tiktoken"),
                   help="GPT-2 BPE ranks file (default: ../shared/tokenizers/gpt2.tiktoken)")
    p.add_argument("--gguf", help="count tokens with this GGUF model's own tokenizer instead (needs transformers)")
    p.add_argument("--task", action="append", choices=TASKS, help="one task (repeat for more; default: all five)")
    p.add_argument("--near", action="store_true", help="also find each test question's closest train question "
                                                       "(word-level difflib; seconds per task)")
    try:
        args = p.parse_args(argv)
        input_dir = Path(args.input)
        if not input_dir.is_dir():
            raise DataError(f"--input {input_dir}: no such folder (the Fine-tune-CoT release, as in "
                            "../shared/datasets/finetune-cot: completion_data/ and split/)")
        for task in args.task or TASKS:
            for path in (input_dir / "completion_data" / f"D_{task}.json",
                         input_dir / "split" / f"{task}__default.json"):
                if not path.is_file():
                    raise DataError(f"{path}: file not found (give the Fine-tune-CoT folder with --input)")
        if args.gguf:
            tok = GGUFTokenizer(args.gguf)
        else:
            from atm_min.machinery.hf import get_tokenizer  # here, not above: it imports torch (seconds)
            tok = get_tokenizer("gpt2", args.tokenizer_path)
        facts = []
        for task in args.task or TASKS:
            facts.append(task_facts(input_dir, task, tok, args.near))
            print_table(facts[-1])
        print_summary(facts)
    except (ProjectError, OSError) as e:  # the one place errors become an `error:` line (and exit status 1)
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

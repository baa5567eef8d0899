"""Ask a trained student questions.

    python sample.py --question "Start at 3, apply i d i: result?"
    python sample.py --out_dir out --question "..." --explain      # also write the rationale after the answer
    python sample.py --file questions.txt                          # one question per line
    python sample.py --file data/mine/test.jsonl                   # the project's schema: also scored vs gold
    python sample.py --question "Is 74 even?" --mode both          # the same student made to think first / answer first
    python sample.py --file out/synth_0/test.jsonl --mode both     # score each mode, list where they disagree
    python sample.py --question "Is 74 even?" --trace              # every stage of one decision, with its numbers

For each question it prints the mode the student chose (think first = pre, answer first = post), read from what
it generated, the answer, the rationale when there is one, the perception's probability of answering first
(ATM students only), and the tokens generated and time taken. Greedy by default (--temperature 0).
Generation stops at the newline that ends an answer-first answer, unless --explain (then only <|endoftext|>).
--mode pre / post force a format on any student (ATM included, soft prompt kept): its output is started with that
format's marker ("Reasoning:" / "Answer:") and it continues from there; --mode both shows both next to each other.
A note follows a question that is outside the run's training forms (no training question reads like it, digits
aside, or its length is outside theirs) and a forced mode the student never trained in on questions of its form
(atm_min/machinery/forms.py): the output is then a guess, or a format it never learned there.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

import torch

from atm_min.answers import extract_answer, is_correct, normalize, parse_output
from atm_min.evaluate import Answering, answer_records, summarize
from atm_min.formats import MODE_MARKS, format_prompt, group_levels, normalize_ws
from atm_min.machinery.checkpoint import load_checkpoint, saved_config
from atm_min.machinery.choose import is_hard, learner_from_checkpoint, texts_function
from atm_min.machinery.config import TrainConfig
from atm_min.machinery.data import load_examples
from atm_min.machinery.errors import ArgumentParser, ProjectError
from atm_min.machinery.forms import from_run
from atm_min.machinery.hf import get_tokenizer
from atm_min.machinery.runtime import pick_device
from atm_min.machinery.tables import format_table
from atm_min.machinery.trace import format_trace, trace_question

MIN_NEW_TOKENS = 8  # a question must leave the student at least this much room to answer in
MODE_NAMES = {"pre": "think first (pre)", "post": "answer first (post)", None: "unclear (neither format)"}
FORCE = {"auto": None, "pre": "pre", "post": "post"}  # --mode -> generate_texts(force=...); "both" runs all three


class SampleError(ProjectError, RuntimeError):
    """A problem with the command line, the checkpoint or the questions; printed as one `error:` line."""


def parse(argv):
    defaults = TrainConfig()
    p = ArgumentParser(description=__doc__.split("\n\n")[0])  # a bad command line: one `error:` line too
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--question", help="one question")
    src.add_argument("--file", help="questions, one per line; or a .jsonl file in the project's schema "
                                    "(then the answers are scored against the gold answers)")
    p.add_argument("--out_dir", default=defaults.out_dir, help="the training run's folder (default: %(default)s)")
    p.add_argument("--ckpt", default="", help="checkpoint file (default: OUT_DIR/ckpt.pt)")
    p.add_argument("--explain", action="store_true", help="after an answer-first answer, also generate the "
                                                          "rationale (only <|endoftext|> stops generation)")
    p.add_argument("--max_new_tokens", type=int, default=0, help="generation budget per question (default: the "
                   "run's max_new_tokens; with --explain, whatever the context has left)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--tokenizer_path", default="", help="local gpt2.tiktoken file, for a GPT-2 student offline")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top_k", type=int, default=0, help="with --temperature > 0: sample from the k likeliest "
                                                        "tokens only (0 = all)")
    p.add_argument("--batch_size", type=int, default=64, help="questions generated at once (with --file)")
    p.add_argument("--seed", type=int, default=1337, help="seed for sampling with --temperature > 0")
    p.add_argument("--mode", default="auto", choices=("auto", "pre", "post", "both"),
                   help="auto: the student chooses (default); pre / post: make it think first / answer first; "
                        "both: the two side by side (with a .jsonl file: each scored, and where they disagree)")
    p.add_argument("--trace", action="store_true", help="print every stage of one --question's decision: prompt "
                   "tokens, the perception's features, attention, soft prompt and p(answer first), the marker "
                   "probabilities with and without the soft prompt, and each generated token's probability")
    args = p.parse_args(argv)
    if args.trace and args.question is None:
        raise SampleError("--trace follows one question: give it with --question")
    if args.trace and args.temperature > 0:
        raise SampleError("--trace follows greedy decoding: leave --temperature at 0")
    if args.temperature < 0:
        raise SampleError(f"--temperature={args.temperature}: expected a number >= 0")
    if args.top_k < 0 or args.max_new_tokens < 0 or args.batch_size < 1:
        raise SampleError("--top_k and --max_new_tokens must be >= 0 and --batch_size >= 1")
    return args


# ----------------------------------------------------------------------------------------------------------------
# The model: everything needed to rebuild it is in the checkpoint (machinery/runs.py StudentRun.save).

def load_model(path: str, device: str, tokenizer_path: str = ""):
    """(student, perception or None, tokenizer, checkpoint dict) from a train.py checkpoint."""
    if not os.path.exists(path):
        raise SampleError(f"no checkpoint at {path}: train one first with `python train.py` "
                          f"(it writes OUT_DIR/ckpt.pt), or point --out_dir / --ckpt at one")
    ck = load_checkpoint(path, map_location="cpu")  # weights_only=True: a checkpoint that would run code is refused
    missing = [k for k in ("learner", "model_args", "tokenizer", "atm") if k not in ck]
    if missing:
        raise SampleError(f"{path} is not a train.py checkpoint (no {', '.join(missing)})")
    saved = saved_config(ck)  # the perception's sizes live in the run's config
    if ck["atm"] and saved.decider == "router":
        raise SampleError(f"{path} holds a router (--decider=router), no student: ask the students it routes to, "
                          f"{os.path.join(os.path.dirname(path), 'baseline_pre.pt')} and baseline_post.pt (--ckpt)")
    learner = learner_from_checkpoint(ck, saved, path)  # a mismatch is a CheckpointError
    student, perception = learner.student, learner.perception
    # e.g. GPT-2 BPE offline without --tokenizer_path: a TokenizerError that says what to do
    tok = get_tokenizer(ck["tokenizer"], tokenizer_path or saved.tokenizer_path or None)
    student.to(device).eval()
    if perception is not None:
        perception.to(device).eval()
    if not ck.get("done", True):
        print(f"note: {path} is from an unfinished run (step {ck.get('iter', '?')})", file=sys.stderr)
    return student, perception, tok, ck


# ----------------------------------------------------------------------------------------------------------------
# The questions

def read_questions(args):
    """(questions, examples or None, where[i] for messages). Examples come from a .jsonl file and carry gold."""
    if args.question is not None:
        return [args.question], None, ["--question"]
    if not os.path.isfile(args.file):
        raise SampleError(f"--file {args.file}: no such file")
    try:
        if args.file.endswith(".jsonl"):
            examples = load_examples(args.file)  # validates the schema; DataError names the bad lines
            if not examples:
                raise SampleError(f"{args.file}: no examples")
            return [ex.question for ex in examples], examples, [f"{args.file} id {ex.id}" for ex in examples]
        questions, where = [], []
        with open(args.file, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():  # blank lines separate nothing: skip them, but count them in line numbers
                    questions.append(line.rstrip("\n"))
                    where.append(f"{args.file} line {n}")
    except (OSError, UnicodeDecodeError) as e:
        raise SampleError(f"--file {args.file}: cannot read it ({e})") from e
    if not questions:
        raise SampleError(f"{args.file}: no questions (one per line)")
    return questions, None, where


def check_questions(tok, questions, where, block_size: int, n_prefix: int, n_marker: int = 0):
    """Fail before generating anything if a question is empty or leaves no room to answer in the context.
    n_marker: tokens of a forced mode's marker, which follow the prompt before the answer (--mode pre/post/both)."""
    room = block_size - n_prefix - n_marker - MIN_NEW_TOKENS  # prompt tokens that leave MIN_NEW_TOKENS to generate
    for q, w in zip(questions, where):
        if not normalize_ws(q):
            raise SampleError(f"{w}: the question is empty")
        n = len(tok.encode(format_prompt(q)))
        if n > room:
            prefix = f" - {n_prefix} soft-prompt vectors" if n_prefix else ""
            prefix += f" - {n_marker} for the forced marker" if n_marker else ""
            raise SampleError(f"{w}: the question is too long: its prompt is {n} tokens, but the student's context "
                              f"(block_size={block_size}{prefix} - {MIN_NEW_TOKENS} for the answer) leaves {room}")


# ----------------------------------------------------------------------------------------------------------------
# --mode both: the student's own choice, then the same student forced to think first and to answer first

COL = 42  # width of one forced mode's column


def _column(out, ex, explain):
    """The rows (label -> text) one mode's column shows."""
    mode, answer, rationale = parse_output(out["text"])
    if mode == "post" and not explain:
        rationale = "(not generated: answering first stops at the answer; --explain writes it)"
    rows = {"answer": answer if answer is not None else "(none)", "rationale": rationale or "(none)"}
    if ex is not None:
        ok = is_correct(out["text"], ex.answer, ex.answer_type)
        rows["gold"] = f"{normalize(ex.answer, ex.answer_type)} ({'right' if ok else 'wrong'})"
    rows["cost"] = f"{out['new_tokens']} tokens, {out['ms']:.1f} ms"
    return rows


def print_notes(forms, question, forced=()):
    for note in forms.notes(question, forced) if forms is not None else []:
        print(f"  note: {note}")


def print_side_by_side(question, outs, ex, explain):
    """outs: {None: own choice, "pre": forced pre, "post": forced post}, each a generate_texts record."""
    own = outs[None]
    mode, answer, _ = parse_output(own["text"])
    ok = f" ({'right' if is_correct(own['text'], ex.answer, ex.answer_type) else 'wrong'})" if ex else ""
    p = f", p(answer first) = {own['p_post']:.3f}" if own["p_post"] is not None else ""
    print(f"Q: {normalize_ws(question)}")
    print(f"  own choice: {MODE_NAMES[mode]}, answer {answer if answer is not None else '(none)'}{ok}, "
          f"{own['new_tokens']} tokens{p}")
    cols = [_column(outs[m], ex, explain) for m in ("pre", "post")]
    print(f"  {'':<11}" + "".join(f"{'forced ' + MODE_NAMES[m]:<{COL}}" for m in ("pre", "post")).rstrip())
    for label in cols[0]:
        wrapped = [textwrap.wrap(c[label], COL - 2) or [""] for c in cols]
        for k in range(max(len(w) for w in wrapped)):
            cells = "".join(f"{w[k] if k < len(w) else '':<{COL}}" for w in wrapped).rstrip()
            print(f"  {label + ':' if k == 0 else '':<11}{cells}")


def score_modes(runs, examples):
    """Score the own choice and both forced modes on examples with gold answers; list the questions where the
    forced modes give different answers, and count by group who is right."""
    names = {None: "own", "pre": "pre", "post": "post"}  # short: format_table's columns are narrow
    records = {m: answer_records(examples, outs) for m, outs in runs.items()}
    print(format_table({names[m]: summarize(recs, sum(o["ms"] for o in runs[m]) / len(recs))
                        for m, recs in records.items()}))
    print("own = the student's own choice; pre / post = the same student forced to start with "
          f"{MODE_MARKS['pre']!r} / {MODE_MARKS['post']!r}")

    differ = [i for i, ex in enumerate(examples)
              if extract_answer(runs["pre"][i]["text"], ex.answer_type)
              != extract_answer(runs["post"][i]["text"], ex.answer_type)]
    print(f"\nforced pre and forced post answer differently on {len(differ)} of {len(examples)} questions:")
    w_id = min(24, max([len(examples[i].id) for i in differ], default=2))
    w_group = min(14, max([len(examples[i].group or "") for i in differ], default=5))

    def cell(m, i):
        ex = examples[i]
        a = extract_answer(runs[m][i]["text"], ex.answer_type)
        return f"{a if a is not None else '-'} ({'right' if records[m][i]['correct'] else 'wrong'})"

    if differ:
        print(f"  {'id':<{w_id}} {'group':<{w_group}} {'gold':<6} {'pre':<13} {'post':<13} question | pre's "
              f"rationale")
    for i in sorted(differ, key=lambda i: (examples[i].group or "", i)):
        ex = examples[i]
        rationale = parse_output(runs["pre"][i]["text"])[2]
        print(f"  {ex.id:<{w_id}} {ex.group or '':<{w_group}} {normalize(ex.answer, ex.answer_type):<6} "
              f"{cell('pre', i):<13} {cell('post', i):<13} {normalize_ws(ex.question)} | {rationale}")

    # who is right, by group (a group "multistep/3" also counts under "multistep", as in the results table)
    counts = {}
    for i, ex in enumerate(examples):
        pre_ok, post_ok = records["pre"][i]["correct"], records["post"][i]["correct"]
        for key in group_levels(ex.group) + ["ALL"]:
            c = counts.setdefault(key, [0, 0, 0, 0, 0])
            c[0] += 1
            c[1 + (0 if pre_ok and post_ok else 1 if pre_ok else 2 if post_ok else 3)] += 1
    print("\nright answers, forced pre vs forced post, by group:")
    print(f"  {'group':<16}{'n':>6}{'both':>7}{'only pre':>10}{'only post':>11}{'neither':>9}")
    for key in sorted(counts, key=lambda k: (k == "ALL", k)):
        n, both, only_pre, only_post, neither = counts[key]
        print(f"  {key:<16}{n:>6}{both:>7}{only_pre:>10}{only_post:>11}{neither:>9}")


def count_notes(forms, questions):
    """--mode both on a scored file: how many questions are outside the training forms, and how many were forced
    into a mode the student never trained in on their form."""
    if forms is None:
        return
    outside = sum(any(n.startswith("outside") for n in forms.notes(q)) for q in questions)
    untrained = {m: sum(any(n.startswith("forced") for n in forms.notes(q, (m,))) for q in questions)
                 for m in ("pre", "post")}
    print(f"\n{outside} of {len(questions)} questions are outside the training forms; forced think first on "
          f"{untrained['pre']} and forced answer first on {untrained['post']} questions of a form the student never "
          f"trained in that mode (python sample.py --question '...' --mode both names them)")


# ----------------------------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse(argv)
    device = pick_device(args.device)
    ckpt = args.ckpt or os.path.join(args.out_dir, "ckpt.pt")
    student, perception, tok, ck = load_model(ckpt, device, args.tokenizer_path)
    block_size = student.config.block_size
    n_prefix = perception.queries.size(0) if perception is not None else 0
    questions, examples, where = read_questions(args)
    forced = [m for m in ("pre", "post") if args.mode in (m, "both")]
    check_questions(tok, questions, where, block_size, n_prefix,
                    max((len(tok.encode(MODE_MARKS[m])) for m in forced), default=0))

    # generation clamps the budget to the context left; with --explain the rationale needs whatever is left.
    saved = saved_config(ck)
    forms, why = from_run(ck, ckpt, saved, tok)  # what the student was trained on: for the notes
    if why:
        print(f"note: {why}", file=sys.stderr)
    max_new = args.max_new_tokens or (block_size if args.explain else saved.max_new_tokens)
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.temperature > 0 else None
    # A student trained with routing="hard" never saw a soft prompt: its perception's classifier picks the mode
    # and the student is started with that mode's marker (as train.py evaluates it).
    routing = "hard" if is_hard(perception) else "soft"
    if args.trace:
        modes = (None, "pre", "post") if args.mode == "both" else (FORCE[args.mode],)
        print(format_trace(trace_question(student, perception, tok, questions[0], device, modes, max_new,
                                          args.explain, routing=routing)))
        return
    generate = texts_function(perception)
    sample = dict(temperature=args.temperature, top_k=args.top_k or None, generator=generator)

    def run(force):
        how = Answering(device, args.batch_size, max_new, explain=args.explain, sample=sample)
        return generate(student, tok, questions, how, perception=perception, force=force)

    if args.mode == "both":
        runs = {m: run(m) for m in (None, "pre", "post")}
        if examples is None:
            for i, q in enumerate(questions):
                print_side_by_side(q, {m: outs[i] for m, outs in runs.items()}, None, args.explain)
                print_notes(forms, q, ("pre", "post"))
        else:
            score_modes(runs, examples)
            count_notes(forms, questions)
        return
    force = FORCE[args.mode]
    outs = run(force)

    records = answer_records(examples, outs) if examples is not None else None
    for i, (q, out) in enumerate(zip(questions, outs)):
        mode, answer, rationale = parse_output(out["text"])
        print(f"Q: {normalize_ws(q)}")
        print(f"  mode:      {MODE_NAMES[mode]}{', forced' if force else ''}")
        print(f"  answer:    {answer if answer is not None else '(none)'}")
        if mode is None:  # neither format: show what it wrote, it is all there is to go on
            print(f"  output:    {out['text']!r}")
        elif rationale and (mode == "pre" or args.explain):
            print(f"  rationale: {rationale}")
        if out["p_post"] is not None:
            print(f"  p(answer first) = {out['p_post']:.3f} (perception)")
        if examples is not None:
            ex = examples[i]
            right = "right" if records[i]["correct"] else "wrong"
            print(f"  gold:      {normalize(ex.answer, ex.answer_type)} ({right})")
        print(f"  {out['new_tokens']} tokens, {out['ms']:.1f} ms")
        print_notes(forms, q, (force,) if force else ())
    if examples is not None:
        ms = sum(o["ms"] for o in outs) / len(outs)
        summary = summarize(records, ms)
        print()
        name = student_name(ck, ckpt) if force is None else force
        if force:
            print(f"(forced {force}: every output was started with {MODE_MARKS[force]!r})")
        print(format_table({name: summary}))
        print(f"accuracy: {sum(r['correct'] for r in records)}/{len(records)} = {summary['accuracy']:.3f}")


def student_name(ck: dict, ckpt: str) -> str:
    """The table's column: the run's mechanism, but an ATM run's baselines and fold students (saved with the run's
    config, mechanism "atm") are named by their file: baseline_pre.pt -> pre, fold0_post.pt -> post."""
    mechanism = ck.get("config", {}).get("mechanism", "model")
    if ck.get("atm") or mechanism != "atm":
        return mechanism
    m = re.search(r"_(pre|post|answer)\.pt$", os.path.basename(ckpt))
    return m.group(1) if m else "model"


def cli(argv=None) -> int:
    """main() with the expected failures as one `error:` line and exit status 1 (no traceback)."""
    try:
        main(argv)
    except ProjectError as e:  # SampleError, CheckpointError, DataError, TokenizerError, ConfigError (arguments)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `python sample.py ... | head`: the reader has what it wanted; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(cli())

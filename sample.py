"""Ask a trained student questions.

    python sample.py --question "Start at 3, apply i d i: result?"
    python sample.py --out_dir out --question "..." --explain      # also write the rationale after the answer
    python sample.py --file questions.txt                          # one question per line
    python sample.py --file data/mine/test.jsonl                   # the project's schema: also scored vs gold

For each question it prints the mode the student chose (think first = pre, answer first = post), read from what
it generated, the answer, the rationale when there is one, the perception's probability of answering first
(ATM students only), and the tokens generated and time taken. Greedy by default (--temperature 0).
Generation stops at the newline that ends an answer-first answer, unless --explain (then only <|endoftext|>).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace

import torch

from atm_min.answers import is_correct, normalize, parse_output
from atm_min.checkpoint import CheckpointError, load_checkpoint
from atm_min.config import TrainConfig
from atm_min.evaluate import format_table, generate_texts, summarize
from atm_min.examples import DataError, load_examples
from atm_min.formats import format_prompt, normalize_ws
from atm_min.learner import learner_from_checkpoint
from atm_min.tokenizer import get_tokenizer

MIN_NEW_TOKENS = 8  # a question must leave the student at least this much room to answer in
MODE_NAMES = {"pre": "think first (pre)", "post": "answer first (post)", None: "unclear (neither format)"}


class SampleError(RuntimeError):
    """A problem with the command line, the checkpoint or the questions; printed as one `error:` line."""


def parse(argv):
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--tokenizer_path", default="", help="local gpt2.tiktoken file, for a GPT-2 student offline")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top_k", type=int, default=0, help="with --temperature > 0: sample from the k likeliest "
                                                        "tokens only (0 = all)")
    p.add_argument("--batch_size", type=int, default=64, help="questions generated at once (with --file)")
    p.add_argument("--seed", type=int, default=1337, help="seed for sampling with --temperature > 0")
    args = p.parse_args(argv)
    if args.temperature < 0:
        raise SampleError(f"--temperature={args.temperature}: expected a number >= 0")
    if args.top_k < 0 or args.max_new_tokens < 0 or args.batch_size < 1:
        raise SampleError("--top_k and --max_new_tokens must be >= 0 and --batch_size >= 1")
    return args


# ----------------------------------------------------------------------------------------------------------------
# The model: everything needed to rebuild it is in the checkpoint (train.py's save()).

def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SampleError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    return name


def load_model(path: str, device: str, tokenizer_path: str = ""):
    """(student, perception or None, tokenizer, checkpoint dict) from a train.py checkpoint."""
    if not os.path.exists(path):
        raise SampleError(f"no checkpoint at {path}: train one first with `python train.py` "
                          f"(it writes OUT_DIR/ckpt.pt), or point --out_dir / --ckpt at one")
    ck = load_checkpoint(path, map_location="cpu")  # weights_only=True: a checkpoint that would run code is refused
    missing = [k for k in ("learner", "model_args", "tokenizer", "atm") if k not in ck]
    if missing:
        raise SampleError(f"{path} is not a train.py checkpoint (no {', '.join(missing)})")
    # The perception's sizes live in the run's config; an old checkpoint without them used the defaults.
    saved = {**TrainConfig().__dict__, **ck.get("config", {})}
    try:
        learner = learner_from_checkpoint(ck, SimpleNamespace(**saved))
        student, perception = learner.student, learner.perception
    except (TypeError, ValueError, RuntimeError) as e:  # unknown model_args, shape or key mismatch
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][:2]  # torch's says which tensor
        raise SampleError(f"{path} does not match this code's model: {' '.join(lines) or type(e).__name__}") from e
    try:
        tok = get_tokenizer(ck["tokenizer"], tokenizer_path or saved.get("tokenizer_path") or None)
    except (RuntimeError, FileNotFoundError, ValueError) as e:  # e.g. GPT-2 BPE offline without --tokenizer_path
        raise SampleError(str(e)) from e
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


def check_questions(tok, questions, where, block_size: int, n_prefix: int):
    """Fail before generating anything if a question is empty or leaves no room to answer in the context."""
    room = block_size - n_prefix - MIN_NEW_TOKENS  # prompt tokens that still leave MIN_NEW_TOKENS to generate
    for q, w in zip(questions, where):
        if not normalize_ws(q):
            raise SampleError(f"{w}: the question is empty")
        n = len(tok.encode(format_prompt(q)))
        if n > room:
            prefix = f" - {n_prefix} soft-prompt vectors" if n_prefix else ""
            raise SampleError(f"{w}: the question is too long: its prompt is {n} tokens, but the student's context "
                              f"(block_size={block_size}{prefix} - {MIN_NEW_TOKENS} for the answer) leaves {room}")


# ----------------------------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse(argv)
    device = pick_device(args.device)
    ckpt = args.ckpt or os.path.join(args.out_dir, "ckpt.pt")
    student, perception, tok, ck = load_model(ckpt, device, args.tokenizer_path)
    block_size = student.config.block_size
    n_prefix = perception.queries.size(0) if perception is not None else 0
    questions, examples, where = read_questions(args)
    check_questions(tok, questions, where, block_size, n_prefix)

    # generate() clamps the budget to the context left; with --explain the rationale needs whatever is left.
    max_new = args.max_new_tokens or (block_size if args.explain else
                                      ck.get("config", {}).get("max_new_tokens", TrainConfig().max_new_tokens))
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.temperature > 0 else None
    outs = generate_texts(student, tok, questions, device, args.batch_size, max_new, perception=perception,
                          explain=args.explain, temperature=args.temperature, top_k=args.top_k or None,
                          generator=generator)

    records = []
    for i, (q, out) in enumerate(zip(questions, outs)):
        mode, answer, rationale = parse_output(out["text"])
        print(f"Q: {normalize_ws(q)}")
        print(f"  mode:      {MODE_NAMES[mode]}")
        print(f"  answer:    {answer if answer is not None else '(none)'}")
        if mode is None:  # neither format: show what it wrote, it is all there is to go on
            print(f"  output:    {out['text']!r}")
        elif rationale and (mode == "pre" or args.explain):
            print(f"  rationale: {rationale}")
        if out["p_post"] is not None:
            print(f"  p(answer first) = {out['p_post']:.3f} (perception)")
        if examples is not None:
            ex = examples[i]
            ok = bool(is_correct(out["text"], ex.answer, ex.answer_type))
            print(f"  gold:      {normalize(ex.answer, ex.answer_type)} ({'right' if ok else 'wrong'})")
            records.append(dict(id=ex.id, group=ex.group, text=out["text"], mode=mode, correct=ok,
                                new_tokens=out["new_tokens"], p_post=out["p_post"]))
        print(f"  {out['new_tokens']} tokens, {out['ms']:.1f} ms")
    if examples is not None:
        ms = sum(o["ms"] for o in outs) / len(outs)
        summary = summarize(records, ms)
        print()
        print(format_table({ck.get("config", {}).get("mechanism", "model"): summary}))
        print(f"accuracy: {sum(r['correct'] for r in records)}/{len(records)} = {summary['accuracy']:.3f}")


def cli(argv=None) -> int:
    """main() with the expected failures as one `error:` line and exit status 1 (no traceback)."""
    try:
        main(argv)
    except (SampleError, CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())

"""Greedy chat answers from a pretrained Llama-family checkpoint, e.g. SmolLM2-135M-Instruct's GGUF file:

    python tools/chat.py --init_from=models/SmolLM2-135M-Instruct.Q4_1.gguf
    python tools/chat.py --init_from=DIR --question="What is the capital of France?"

The checkpoint is loaded as the student (atm_min/machinery/hf.py load_student: a .gguf file or a Hugging Face
directory -> atm_min/students/llama.py), each question is wrapped in the chat template of its tokenizer
(atm_min/machinery/hf_tokenizer.py), and the student generates greedily with its KV cache until the
end-of-sequence token. It shows the weights and the tokenizer work before any training; docs/llama.md shows its
output for SmolLM2.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from atm_min import engine  # noqa: E402
from atm_min.machinery.errors import ArgumentParser, ProjectError  # noqa: E402

QUESTIONS = ("What is the capital of France?", "How many days are there in a week?",
             "Tom has 3 apples and buys 5 more. How many apples does he have?")


def answers(init_from: str, questions=QUESTIONS, max_new_tokens: int = 64) -> list[str]:
    """The student's greedy answer to each question, alone in a chat (the template's default system prompt)."""
    from atm_min.machinery.hf import load_student, load_tokenizer, pretrained_tokenizer_name
    student = load_student(init_from).eval()
    tok = load_tokenizer(pretrained_tokenizer_name(init_from))
    out = []
    for q in questions:
        idx = torch.tensor([tok.encode(tok.chat_prompt([{"role": "user", "content": q}]))])
        new = engine.generate(student, idx, engine.GenSettings(max_new_tokens, stop_ids=[tok.eot_id]))[0]
        out.append(tok.decode(new).strip())
    return out


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init_from", required=True, help="a llama-architecture .gguf file or a Hugging Face directory")
    p.add_argument("--question", action="append", help="ask this instead of the three fixed questions (repeatable)")
    p.add_argument("--max_new_tokens", type=int, default=64)
    args = p.parse_args(argv)
    try:
        for q, a in zip(args.question or QUESTIONS, answers(args.init_from, args.question or QUESTIONS,
                                                            args.max_new_tokens)):
            print(f"Q: {q}\nA: {a}")
    except ProjectError as e:
        print(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

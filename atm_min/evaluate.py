"""Evaluation: batched greedy generation with the KV cache, answer scoring, and the per-mechanism summary.

Generation stops at <|endoftext|> or the first newline. Because the only newline in a target is the one that ends a
post-thinking answer (see formats.py), a student answering first stops right after its answer and never writes
the rationale, unless explain=True (then only <|endoftext|> stops it).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch

from .answers import is_correct, parse_output
from .batches import pad_left, perception_inputs, question_inputs
from .formats import format_prompt
from .perception import soft_prompt


@torch.no_grad()
def generate_texts(student, tok, questions, device, batch_size=256, max_new_tokens=96, perception=None,
                   explain=False, ctx=None, temperature=0.0, top_k=None, generator=None):
    """Continue the prompt of every raw question string (greedy with temperature=0). Returns one dict per
    question, in input order: {text, new_tokens, p_post, ms}; p_post is the perception's probability of answering
    first (None without a perception), ms the wall time of the question's batch divided by its size."""
    student.eval()
    if perception is not None:
        perception.eval()
    stop_ids = [tok.eot_id] if explain else [tok.eot_id] + tok.newline_ids
    # Similar prompt lengths in one batch waste less compute on padding; results go back in input order.
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    results = [None] * len(questions)
    for start in range(0, len(order), batch_size):
        t0 = time.perf_counter()
        chunk = [questions[i] for i in order[start:start + batch_size]]
        idx, pad_mask = pad_left([tok.encode(format_prompt(q)) for q in chunk], tok.eot_id, device)
        prefix, p_post = None, [None] * len(chunk)
        with ctx if ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            if perception is not None:
                q_rows, f_rows = zip(*(question_inputs(tok, q) for q in chunk))
                prefix, logit = soft_prompt(perception, student, *perception_inputs(q_rows, f_rows, device))
                p_post = torch.sigmoid(logit.float()).tolist()
            outs = student.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, stop_ids=stop_ids,
                                    prefix_embeds=prefix, pad_mask=pad_mask, generator=generator)
        ms = 1000 * (time.perf_counter() - t0) / len(chunk)  # generate() ends with a host copy: the time is real
        for j, out in enumerate(outs):
            results[order[start + j]] = dict(text=tok.decode(out), new_tokens=len(out), p_post=p_post[j], ms=ms)
    return results


def generate_answers(student, tok, examples, device, batch_size=256, max_new_tokens=96, perception=None,
                     explain=False, ctx=None):
    """Greedy answers for every example. Returns one record per example (same order):
    {id, group, text, mode, correct, new_tokens, p_post}. mode is read from the first generated tokens
    ("pre" if the student starts with its reasoning, "post" if with the answer, None if neither)."""
    outs = generate_texts(student, tok, [ex.question for ex in examples], device, batch_size, max_new_tokens,
                          perception=perception, explain=explain, ctx=ctx)
    return [dict(id=ex.id, group=ex.group, text=o["text"], mode=parse_output(o["text"])[0],
                 correct=bool(is_correct(o["text"], ex.answer, ex.answer_type)), new_tokens=o["new_tokens"],
                 p_post=o["p_post"])
            for ex, o in zip(examples, outs)]


def timed_answers(*args, **kwargs):
    """generate_answers plus the wall time per question in milliseconds."""
    t0 = time.perf_counter()
    records = generate_answers(*args, **kwargs)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(records))
    return records, ms


def _stats(recs):
    n = len(recs)
    return dict(accuracy=sum(r["correct"] for r in recs) / n, n=n,
                post_fraction=sum(r["mode"] == "post" for r in recs) / n,
                avg_new_tokens=sum(r["new_tokens"] for r in recs) / n)


def summarize(records, ms_per_question: float) -> dict:
    """accuracy, n, post_fraction, avg_new_tokens, ms_per_question and the same (less the time) by group.
    A group "multistep/3" is also counted under "multistep", so both levels of detail are there."""
    out = _stats(records)
    out["ms_per_question"] = ms_per_question
    groups = defaultdict(list)
    for r in records:
        if r["group"]:
            parts = r["group"].split("/")
            for k in range(1, len(parts) + 1):
                groups["/".join(parts[:k])].append(r)
    out["by_group"] = {g: _stats(rs) for g, rs in sorted(groups.items())}
    return out


def format_table(results: dict) -> str:
    """A plain-text table: one row per group (and overall), one column block per mechanism."""
    mechs = list(results)
    groups = sorted({g for r in results.values() for g in r["by_group"]})
    head = f"{'group':<16}" + "".join(f"{m + ' acc':>10}{m + ' post%':>11}{m + ' tok':>9}" for m in mechs)
    lines = [head, "-" * len(head)]

    def row(name, stats):
        cells = ""
        for m in mechs:
            s = stats(m)
            cells += (f"{s['accuracy']:>10.3f}{100 * s['post_fraction']:>10.0f}%{s['avg_new_tokens']:>9.1f}"
                      if s else " " * 30)
        return f"{name:<16}" + cells

    for g in groups:
        lines.append(row(g, lambda m: results[m]["by_group"].get(g)))
    lines.append(row("ALL", lambda m: results[m]))
    lines.append(f"{'ms/question':<16}" + "".join(f"{results[m]['ms_per_question']:>30.2f}" for m in mechs))
    return "\n".join(lines)

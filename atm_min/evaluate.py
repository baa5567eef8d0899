"""Evaluation: batched greedy generation (engine.py), answer scoring, and the per-mechanism summary.

Generation stops at <|endoftext|> or the first newline. Because the only newline in a target is the one that ends a
post-thinking answer (see formats.py), a student answering first stops right after its answer and never writes
the rationale, unless explain=True (then only <|endoftext|> stops it).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import torch

from . import engine
from .answers import is_correct, parse_output
from .batches import pad_left, perception_inputs, question_inputs
from .formats import MODE_MARKS, MODES, format_prompt, group_levels
from .perception import perceive


@dataclass
class Answering:
    """How questions are answered (generate_texts, generate_answers): on which device, in batches of how many,
    with at most how many new tokens. explain: an answer-first output goes on to its rationale (only <|endoftext|>
    stops it); ctx: an autocast context, or None; sample: None (greedy) or engine.GenSettings' temperature,
    top_k, generator."""
    device: str = "cpu"
    batch_size: int = 256
    max_new_tokens: int = 96
    explain: bool = False
    ctx: object = None
    sample: dict | None = None


def _start_marks(tok, force, n):
    """force (None, "pre", "post", or one of those per question) -> the ids each question's output starts with:
    a forced mode starts with its marker (formats.MODE_MARKS, the first words of that mode's target, tokenised
    apart from the prompt as in training), and the student continues from there; None: nothing, it chooses."""
    modes = list(force) if isinstance(force, (list, tuple)) else [force] * n
    marks = {None: [], **{m: tok.encode(MODE_MARKS[m]) for m in MODES}}
    if len(modes) != n or not set(modes) <= marks.keys():
        raise ValueError(f"force must be None, 'pre', 'post' or a list of those, one per question; got {force!r}")
    return [marks[m] for m in modes]


def length_batches(questions, batch_size):
    """Index lists of batches of questions of similar length (less compute wasted on padding), shortest first."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def perceive_questions(perception, student, tok, questions, device):
    """The perception on raw question strings: (soft prompt (B, P, C), p(answer first) of each question)."""
    q_rows, f_rows = zip(*(question_inputs(tok, q) for q in questions))
    prefix, logit = perceive(perception, student, *perception_inputs(q_rows, f_rows, device))
    return prefix, torch.sigmoid(logit.float()).tolist()


@torch.no_grad()
def generate_texts(student, tok, questions, how: Answering, perception=None, force=None):
    """Continue the prompt of every raw question string. Returns one dict per question, in input order:
    {text, new_tokens, p_post, ms}; p_post is the perception's probability of answering first (None without a
    perception), ms the wall time of the question's batch divided by its size.

    force: None (the student chooses), "pre" or "post" (every question), or one of those per question. A forced
    output starts with its mode's marker ("Reasoning:" / "Answer:"), as if the student had written it: "text"
    starts with it (parse_output reads the forced mode) and "new_tokens" counts it (forced and free costs
    compare); it comes out of the budget."""
    student.eval()
    if perception is not None:
        perception.eval()
    starts = _start_marks(tok, force, len(questions))
    stop_ids = [tok.eot_id] if how.explain else [tok.eot_id] + tok.newline_ids
    results = [None] * len(questions)
    sample = how.sample or {}
    greedy = not sample.get("temperature")  # then rows that have stopped are dropped: the same tokens, faster
    for rows in length_batches(questions, how.batch_size):
        t0 = time.perf_counter()
        chunk = [questions[i] for i in rows]
        prefix, p_post = None, [None] * len(chunk)
        with how.ctx if how.ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            if perception is not None:
                prefix, p_post = perceive_questions(perception, student, tok, chunk, how.device)
            start = [starts[i] for i in rows]
            idx, pad_mask = pad_left([tok.encode(format_prompt(q)) + s for q, s in zip(chunk, start)],
                                     tok.eot_id, how.device)
            # A row started with a marker has used part of its budget; a batch generates for its longest
            # budget and each row's extra tokens are cut below.
            budget = [max(0, how.max_new_tokens - len(s)) for s in start]
            settings = engine.GenSettings(max(budget), stop_ids=stop_ids, drop_finished=greedy, **sample)
            outs = engine.generate(student, idx, settings, prefix_embeds=prefix, pad_mask=pad_mask)
        ms = 1000 * (time.perf_counter() - t0) / len(chunk)  # generation ends with a host copy: the time is real
        for j, out in enumerate(outs):
            out = start[j] + out[:budget[j]]
            results[rows[j]] = dict(text=tok.decode(out), new_tokens=len(out), p_post=p_post[j], ms=ms)
    return results


def generate_answers(student, tok, examples, how: Answering, perception=None, force=None):
    """Answers for every example, scored (answer_records), in the same order; force as generate_texts'."""
    outs = generate_texts(student, tok, [ex.question for ex in examples], how, perception=perception, force=force)
    return answer_records(examples, outs)


def answer_records(examples, outs) -> list[dict]:
    """generate_texts' outputs for examples, scored: one {id, group, text, mode, correct, new_tokens, p_post}
    per example; mode read from the text's first marker ("pre", "post", or None if neither)."""
    return [dict(id=ex.id, group=ex.group, text=o["text"], mode=parse_output(o["text"])[0],
                 correct=bool(is_correct(o["text"], ex.answer, ex.answer_type)), new_tokens=o["new_tokens"],
                 p_post=o["p_post"])
            for ex, o in zip(examples, outs, strict=True)]


def timed_answers(*args, answer=generate_answers, **kwargs):
    """answer(*args, **kwargs) (generate_answers or a variant's) plus the wall time per question in ms."""
    t0 = time.perf_counter()
    records = answer(*args, **kwargs)
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
        for g in group_levels(r["group"]):
            groups[g].append(r)
    out["by_group"] = {g: _stats(rs) for g, rs in sorted(groups.items())}
    return out


@torch.no_grad()
def post_probabilities(student, perception, tok, examples, device) -> list[float]:
    """The perception's probability of answering first for each example (it reads the question only)."""
    perception.eval()
    out = []
    for s in range(0, len(examples), 512):
        out.extend(perceive_questions(perception, student, tok, [ex.question for ex in examples[s:s + 512]],
                                      device)[1])
    return out


def agreement(p_post: list[float], labels: list[str]) -> float:
    """How often p(answer first) > 0.5 agrees with a label."""
    return sum((p > 0.5) == (lab == "post") for p, lab in zip(p_post, labels)) / max(1, len(labels))


# ----------------------------------------------------------------------------------------------------------------
# Reference rows for the results table, from the pre and post students' test predictions (no training):
#   oracle  per question, the cheaper correct one of pre and post: the ceiling of any router that picks one of
#           these two students' answers (when neither is right it takes the cheaper wrong one)
#   random  each question answered first with probability r, ATM's own answer-first rate, else thinking first:
#           the floor a router must beat. Exact expected values, not one random draw, so it has no noise.
# Both take the pre and post baselines as the two modes; ATM uses ONE student for both, so it can sit above the
# oracle on a question where its own student does better than either specialist. They generate nothing: their
# ms_per_question is 0.0.

def oracle_summary(pre: list[dict], post: list[dict]) -> dict:
    """pre/post: records of the same test questions, in the same order (generate_answers)."""
    chosen = []
    for a, b in zip(pre, post, strict=True):
        right = [r for r in (a, b) if r["correct"]] or [a, b]
        chosen.append(min(right, key=lambda r: r["new_tokens"]))
    return summarize(chosen, ms_per_question=0.0)


def random_routing_summary(pre: list[dict], post: list[dict], rate: float) -> dict:
    """Expected accuracy and tokens when each question is answered first with probability `rate`."""
    mixed = [dict(group=a["group"], correct=rate * b["correct"] + (1 - rate) * a["correct"],
                  new_tokens=rate * b["new_tokens"] + (1 - rate) * a["new_tokens"], mode=None)
             for a, b in zip(pre, post, strict=True)]
    out = summarize(mixed, ms_per_question=0.0)
    for stats in [out, *out["by_group"].values()]:
        stats["post_fraction"] = rate  # by construction, in every group
    return out

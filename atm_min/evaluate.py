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
from .formats import MODE_MARKS, format_prompt, group_levels
from .perception import soft_prompt

# A forced mode starts the student's output with its marker (formats.MODE_MARKS, the first words of that mode's
# target), and the student continues from there.


def _forced_modes(force, n, perception):
    """force (None, "pre", "post", "classifier", or one of those per question) -> a list of n entries."""
    modes = list(force) if isinstance(force, (list, tuple)) else [force] * n
    if len(modes) != n:
        raise ValueError(f"force has {len(modes)} entries for {n} questions")
    for m in modes:
        if m is not None and m not in MODE_MARKS and m != "classifier":
            raise ValueError(f"unknown forced mode {m!r}: choose None, 'pre', 'post' or 'classifier'")
        if m == "classifier" and perception is None:
            raise ValueError("force='classifier' needs a perception (its classifier picks the mode)")
    return modes


@torch.no_grad()
def generate_texts(student, tok, questions, device, batch_size=256, max_new_tokens=96, perception=None,
                   explain=False, ctx=None, temperature=0.0, top_k=None, generator=None, force=None,
                   routing="soft"):
    """Continue the prompt of every raw question string (greedy with temperature=0). Returns one dict per
    question, in input order: {text, new_tokens, p_post, ms}; p_post is the perception's probability of answering
    first (None without a perception), ms the wall time of the question's batch divided by its size.

    force: None (the student chooses), "pre" or "post" (every question), "classifier" (the perception's
    classifier picks: post where p_post > 0.5, as hard routing does), or a list with one of those per question.
    A forced question's prompt is followed by its mode's marker ("Reasoning:" / "Answer:"), as if the student
    had written it; "text" starts with that marker (so parse_output reads the forced mode) and "new_tokens"
    counts its tokens (so forced and free costs compare), and the marker comes out of the budget.
    routing="hard": the perception still gives p_post, but its soft prompt is not passed to the student (the
    student of the hard-routing ablation never saw one; Learner.routing)."""
    student.eval()
    if perception is not None:
        perception.eval()
    modes = _forced_modes(force, len(questions), perception)
    # Tokenised apart from the prompt, as in training (formats.encode): the marker's ids are then exactly the
    # first ids of the target the student learned.
    marks = {m: tok.encode(MODE_MARKS[m]) for m in MODE_MARKS}
    marks[None] = []
    stop_ids = [tok.eot_id] if explain else [tok.eot_id] + tok.newline_ids
    # Similar prompt lengths in one batch waste less compute on padding; results go back in input order.
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    results = [None] * len(questions)
    for start in range(0, len(order), batch_size):
        t0 = time.perf_counter()
        rows = order[start:start + batch_size]
        chunk = [questions[i] for i in rows]
        prefix, p_post = None, [None] * len(chunk)
        with ctx if ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            if perception is not None:
                q_rows, f_rows = zip(*(question_inputs(tok, q) for q in chunk))
                prefix, logit = soft_prompt(perception, student, *perception_inputs(q_rows, f_rows, device))
                p_post = torch.sigmoid(logit.float()).tolist()
                if routing == "hard":
                    prefix = None
            row_modes = [("post" if p > 0.5 else "pre") if modes[i] == "classifier" else modes[i]
                         for i, p in zip(rows, p_post)]
            forced = [marks[m] for m in row_modes]
            idx, pad_mask = pad_left([tok.encode(format_prompt(q)) + f for q, f in zip(chunk, forced)],
                                     tok.eot_id, device)
            # Rows forced with a marker have used part of their budget; a batch generates for its longest
            # budget and each row's extra tokens are cut below.
            budget = [max(0, max_new_tokens - len(f)) for f in forced]
            outs = student.generate(idx, max(budget), temperature=temperature, top_k=top_k, stop_ids=stop_ids,
                                    prefix_embeds=prefix, pad_mask=pad_mask, generator=generator)
        ms = 1000 * (time.perf_counter() - t0) / len(chunk)  # generate() ends with a host copy: the time is real
        for j, out in enumerate(outs):
            out = forced[j] + out[:budget[j]]
            results[rows[j]] = dict(text=tok.decode(out), new_tokens=len(out), p_post=p_post[j], ms=ms)
    return results


def generate_answers(student, tok, examples, device, batch_size=256, max_new_tokens=96, perception=None,
                     explain=False, ctx=None, force=None, routing="soft"):
    """Greedy answers for every example. Returns one record per example (same order):
    {id, group, text, mode, correct, new_tokens, p_post}. mode is read from the first generated tokens
    ("pre" if the student starts with its reasoning, "post" if with the answer, None if neither); with a forced
    mode (force, routing: see generate_texts) it is the forced one."""
    outs = generate_texts(student, tok, [ex.question for ex in examples], device, batch_size, max_new_tokens,
                          perception=perception, explain=explain, ctx=ctx, force=force,
                          routing=routing)
    return answer_records(examples, outs)


def answer_records(examples, outs) -> list[dict]:
    """generate_texts' outputs for examples, scored: one {id, group, text, mode, correct, new_tokens, p_post}
    per example, mode read from the text's first marker."""
    return [dict(id=ex.id, group=ex.group, text=o["text"], mode=parse_output(o["text"])[0],
                 correct=bool(is_correct(o["text"], ex.answer, ex.answer_type)), new_tokens=o["new_tokens"],
                 p_post=o["p_post"])
            for ex, o in zip(examples, outs, strict=True)]


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
        for g in group_levels(r["group"]):
            groups[g].append(r)
    out["by_group"] = {g: _stats(rs) for g, rs in sorted(groups.items())}
    return out


# ----------------------------------------------------------------------------------------------------------------
# The accuracy / cost curve of one ATM student: move the threshold on p(answer first) instead of retraining.
# At threshold t a question is answered first when its p(answer first) > t (the rule of hard routing and of
# `agreement`, at t = 0.5), else thought through: its output is started with that mode's marker while the soft
# prompt, made from the question as always, still steers everything after the marker. The threshold picks the
# first word; the soft prompt is not changed. A forced question's answer does not depend on t, so two forced
# passes over the test set (every question forced pre, every question forced post) give every point exactly.
# t = -1 answers every question first (the same student's forced post), t = 1 none (its forced pre).
SWEEP = (-1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # our choice: 12 points, both ends


def threshold_sweep(forced_pre: list[dict], forced_post: list[dict], thresholds=SWEEP) -> list[dict]:
    """forced_pre / forced_post: generate_answers records of the same questions, every one forced "pre" / "post"
    (with the soft prompt; p_post set). One {threshold, accuracy, tokens, post_rate} per threshold."""
    points = []
    for t in thresholds:
        chosen = [b if b["p_post"] > t else a for a, b in zip(forced_pre, forced_post, strict=True)]
        s = _stats(chosen)
        points.append(dict(threshold=t, accuracy=s["accuracy"], tokens=s["avg_new_tokens"],
                           post_rate=s["post_fraction"]))
    return points


@torch.no_grad()
def post_probabilities(student, perception, tok, examples, device) -> list[float]:
    """The perception's probability of answering first for each example (it reads the question only)."""
    perception.eval()
    out = []
    for s in range(0, len(examples), 512):
        chunk = examples[s:s + 512]
        q_rows, f_rows = zip(*(question_inputs(tok, ex.question) for ex in chunk))
        _, logit = soft_prompt(perception, student, *perception_inputs(q_rows, f_rows, device))
        out.extend(torch.sigmoid(logit.float()).tolist())
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

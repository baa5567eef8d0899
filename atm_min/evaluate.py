"""Evaluation: batched greedy generation with the KV cache, answer scoring, and the per-mechanism summary.

Generation stops at <|endoftext|> or the first newline. Because the only newline in a target is the one that ends a
post-thinking answer (see formats.py), a student answering first stops right after its answer and never writes
the rationale, unless explain=True (then only <|endoftext|> stops it).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch

from .answers import ANSWER_MARK, REASON_MARK, is_correct, parse_output
from .batches import pad_left, pad_right, perception_inputs, question_inputs
from .formats import encode, format_prompt
from .perception import soft_prompt


# The first words of each format's target (formats.py format_target): a forced mode starts the student's output
# with its marker, and the student continues from there.
MODE_MARKS = {"pre": REASON_MARK, "post": ANSWER_MARK}


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
                   soft_prompt_on=True):
    """Continue the prompt of every raw question string (greedy with temperature=0). Returns one dict per
    question, in input order: {text, new_tokens, p_post, ms}; p_post is the perception's probability of answering
    first (None without a perception), ms the wall time of the question's batch divided by its size.

    force: None (the student chooses), "pre" or "post" (every question), "classifier" (the perception's
    classifier picks: post where p_post > 0.5, as hard routing does), or a list with one of those per question.
    A forced question's prompt is followed by its mode's marker ("Reasoning:" / "Answer:"), as if the student
    had written it; "text" starts with that marker (so parse_output reads the forced mode) and "new_tokens"
    counts its tokens (so forced and free costs compare), and the marker comes out of the budget.
    soft_prompt_on=False: the perception still gives p_post, but its soft prompt is not passed to the student."""
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
                if not soft_prompt_on:
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
                     explain=False, ctx=None, force=None, soft_prompt_on=True):
    """Greedy answers for every example. Returns one record per example (same order):
    {id, group, text, mode, correct, new_tokens, p_post}. mode is read from the first generated tokens
    ("pre" if the student starts with its reasoning, "post" if with the answer, None if neither); with a forced
    mode (force, soft_prompt_on: see generate_texts) it is the forced one."""
    outs = generate_texts(student, tok, [ex.question for ex in examples], device, batch_size, max_new_tokens,
                          perception=perception, explain=explain, ctx=ctx, force=force,
                          soft_prompt_on=soft_prompt_on)
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
        if r["group"]:
            parts = r["group"].split("/")
            for k in range(1, len(parts) + 1):
                groups["/".join(parts[:k])].append(r)
    out["by_group"] = {g: _stats(rs) for g, rs in sorted(groups.items())}
    return out


def format_table(results: dict) -> str:
    """A plain-text table: one row per group (and overall), one block of columns per mechanism: accuracy, the
    share of questions answered first (post%) and generated tokens per question."""
    mechs = list(results)
    groups = sorted({g for r in results.values() for g in r["by_group"]})
    w = 19  # "  0.995  49%  29.5"
    head1 = f"{'':<14}" + "".join(f"{m:>{w}}" for m in mechs)
    head2 = f"{'group':<14}" + f"{'acc  post%   tok':>{w}}" * len(mechs)
    lines = [head1, head2, "-" * len(head2)]

    def row(name, stats):
        cells = ""
        for m in mechs:
            s = stats(m)
            cells += f"{s['accuracy']:>7.3f}{100 * s['post_fraction']:>5.0f}%{s['avg_new_tokens']:>6.1f}" \
                if s else " " * w
        return f"{name:<14}" + cells

    for g in groups:
        lines.append(row(g, lambda m: results[m]["by_group"].get(g)))
    lines.append(row("ALL", lambda m: results[m]))
    lines.append(f"{'ms/question':<14}" + "".join(f"{results[m]['ms_per_question']:>{w}.2f}" for m in mechs))
    return "\n".join(lines)


@torch.no_grad()
def answer_first_confidence(student, tok, examples, device, batch_size=256, ctx=None) -> list[float]:
    """For each example, the probability that `student` answers first with exactly the gold answer:
    p("Answer: <gold>\\n" | prompt), read off one teacher-forced forward pass (no sampling). Greedy decoding is
    right whenever this is above 0.5; how far above says how safe answering first is for this question. The
    k-fold labelling uses it to weigh the risk of answering first (labels.py, label_rule="confident_post")."""
    student.eval()
    newlines = set(tok.newline_ids)
    out = []
    for s in range(0, len(examples), batch_size):
        rows, spans = [], []
        for ex in examples[s:s + batch_size]:
            prompt, target = encode(tok, ex, "post")
            nl = next((i for i, t in enumerate(target) if t in newlines), len(target) - 1)
            seq = prompt + target[:nl + 1]  # the prompt, the marker, the answer and the newline that ends it
            rows.append(seq[:-1])
            spans.append((len(prompt) - 1, len(seq) - 1, seq[1:]))  # positions predicting target[:nl + 1]
        x = pad_right(rows, 0, device)  # (B, T); causal attention never looks at the right padding
        with ctx if ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            logits, _ = student(x)
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T, V)
        for i, (a, b, nxt) in enumerate(spans):
            ids = torch.tensor(nxt[a:b])
            out.append(float(logp[i, torch.arange(a, b), ids].sum().exp()))
    return out

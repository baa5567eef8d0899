"""Adaptive-thinking labels from k-fold cross-validation.

Split the training set into k folds (fold_ids). For each fold, a pre-thinking and a post-thinking student are
trained on the other k-1 folds (training.py) and answer the held-out fold (held_out_evidence): which of them is
right, and how sure the post student is of the gold answer. Each training question then gets a label from that
evidence (label): the perception module learns to predict the label from the question alone.

The paper says only that labels come from which mechanism gets the held-out question right; the rules below
(which mode wins when both are right, what "right" must mean for answering first, what to do when neither is
right) are our choices (TrainConfig.label_rule / post_confidence / label_default / label_source).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch

from .batches import pad_right
from .evaluate import answer_records, generate_answers, generate_texts
from .formats import encode, group_levels

RULES = ("confident_post", "prefer_post", "prefer_pre", "pass_rate")


def fold_ids(n: int, k: int, seed: int) -> list[int]:
    """Fold index (0..k-1) of each of n examples: a seeded shuffle dealt round-robin, so folds differ in size
    by at most one and every group is spread over every fold."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = [0] * n
    for rank, i in enumerate(perm.tolist()):
        folds[i] = rank % k
    return folds


def held_out_evidence(student, tok, held_out, mode: str, device, batch_size=256, max_new_tokens=96, ctx=None,
                      samples=0, temperature=1.0, seed=0):
    """What a fold student trained in `mode` shows about the questions it never saw: {"correct": [bool, ...],
    "p_gold": [float, ...] for a post student (answer_first_confidence), else None}; with samples > 0 also
    "pass_rate": the fraction of `samples` answers sampled at `temperature` that are right (AdaptThink labels
    from 16 samples a question), drawn from a torch.Generator seeded with `seed`, so they repeat exactly; and
    the "samples" and "temperature" they come from."""
    records = generate_answers(student, tok, held_out, device, batch_size, max_new_tokens, ctx=ctx)
    p_gold = answer_first_confidence(student, tok, held_out, device, batch_size, ctx=ctx) if mode == "post" else None
    out = {"correct": [r["correct"] for r in records], "p_gold": p_gold}
    if samples:
        gen = torch.Generator(device=device).manual_seed(seed)
        right = np.zeros(len(held_out))
        for _ in range(samples):
            outs = generate_texts(student, tok, [ex.question for ex in held_out], device, batch_size,
                                  max_new_tokens, ctx=ctx, temperature=temperature, generator=gen)
            right += [r["correct"] for r in answer_records(held_out, outs)]
        out.update(pass_rate=(right / samples).tolist(), samples=samples, temperature=temperature)
    return out


@torch.no_grad()
def answer_first_confidence(student, tok, examples, device, batch_size=256, ctx=None) -> list[float]:
    """For each example, the probability that `student` answers first with exactly the gold answer:
    p("Answer: <gold>\\n" | prompt), read off one teacher-forced forward pass (no sampling). Greedy decoding is
    right whenever this is above 0.5; how far above says how safe answering first is for this question. The
    k-fold labelling uses it to weigh the risk of answering first (label_rule="confident_post")."""
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


def label(pre_ok: bool, post_ok: bool, rule: str = "confident_post", default: str = "pre",
          p_gold: float | None = None, min_conf: float = 0.9, rates: tuple | None = None, delta: float = 0.0) -> str:
    """The mode a training question should be answered in, from the held-out students' evidence.

    prefer_post: answering first is cheaper (it stops right after the answer), so when both are right, or only
    post is, answer first; think first only when pre alone is right. prefer_pre is the mirror image.
    confident_post (default): like prefer_post, but when pre is right too, answering first must also be *safe*:
    the post student's probability of the gold answer (p_gold, see answer_first_confidence) must reach min_conf
    (TrainConfig.post_confidence, a threshold; p_gold is the measurement). A greedy answer that is right with probability 0.55 is a coin flip the ATM student would
    have to win again; a question where thinking first is reliably right should think first. Cost decides only
    between two safe options; risk decides otherwise.
    pass_rate: from rates = (pre's, post's pass rate over sampled answers, held_out_evidence): answer first when
    post's >= pre's - delta. AdaptThink's margin: delta is how much accuracy answering first may cost (0: only
    where it is as good; larger: fewer thinking answers).
    When both fail, `default`: the question is hard either way and the label says how we would rather spend tokens
    (pass_rate: when no sampled answer of either is right)."""
    if rule not in RULES:
        raise ValueError(f"unknown label rule {rule!r}: choose one of {RULES}")
    if rule == "pass_rate":
        if rates is None:
            raise ValueError("label_rule 'pass_rate' needs the fold students' pass rates (label_samples > 0)")
        pre_rate, post_rate = rates
        if pre_rate == 0 and post_rate == 0:
            return default
        return "post" if post_rate >= pre_rate - delta else "pre"
    if rule == "confident_post":
        if p_gold is None:
            raise ValueError("label_rule 'confident_post' needs the post student's p(gold answer) (p_gold)")
        if post_ok and (p_gold >= min_conf or not pre_ok):
            return "post"
        if pre_ok:
            return "pre"
        return default
    first, second = ("post", "pre") if rule == "prefer_post" else ("pre", "post")
    ok = {"pre": pre_ok, "post": post_ok}
    if ok[first]:
        return first
    if ok[second]:
        return second
    return default


def shuffled_labels(labels: list[str], seed: int) -> list[str]:
    """The same labels in a random order: the "random labels" ablation keeps the post rate, loses the evidence."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [labels[i] for i in perm.tolist()]


def evidence_counts(groups: list[str], pre_ok: list[bool], post_ok: list[bool], labels: list[str]) -> dict:
    """Per group (and "ALL"): how many questions only pre / only post / both / neither got right, and how many
    labels say post. "neither" is exactly the number of labels that came from label_default."""
    out = defaultdict(Counter)
    for g, a, b, lab in zip(groups, pre_ok, post_ok, labels):
        kind = "both" if a and b else "pre_only" if a else "post_only" if b else "neither"
        for key in {*group_levels(g), "ALL"}:
            out[key][kind] += 1
            out[key]["n"] += 1
            out[key]["label_post"] += lab == "post"
    keys = ("n", "pre_only", "post_only", "both", "neither", "label_post")
    return {g: {k: c[k] for k in keys} for g, c in sorted(out.items())}

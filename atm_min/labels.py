"""Adaptive-thinking labels from k-fold cross-validation.

Split the training set into k folds (fold_ids). For each fold, a pre-thinking and a post-thinking student are
trained on the other k-1 folds (training.py) and answer the held-out fold (held_out_evidence): which of them is
right, and how sure the post student is of the gold answer. Each training question then gets a label from that
evidence (label): the perception module learns to predict the label from the question alone.

The paper says only that labels come from which mechanism gets the held-out question right; the rule below
(which mode wins when both are right, what "right" must mean for answering first, what to do when neither is
right) is our choice (TrainConfig.post_confidence, label_default); atm_min/variants/ has other rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch

from .batches import pad_right
from .evaluate import Answering, generate_answers
from .formats import encode, group_levels


def fold_ids(n: int, k: int, seed: int) -> list[int]:
    """Fold index (0..k-1) of each of n examples: a seeded shuffle dealt round-robin, so folds differ in size
    by at most one and every group is spread over every fold."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = [0] * n
    for rank, i in enumerate(perm.tolist()):
        folds[i] = rank % k
    return folds


def held_out_evidence(student, tok, held_out, mode: str, cfg, runtime) -> dict:
    """What a fold student trained in `mode` shows about the questions it never saw: {"correct": [bool, ...],
    "p_gold": [float, ...] for a post student (answer_first_confidence), else None}. cfg: eval_batch_size,
    max_new_tokens; runtime: device, ctx (as training.train's)."""
    device, batch_size = runtime.device, cfg.eval_batch_size
    how = Answering(device, batch_size, cfg.max_new_tokens, ctx=runtime.ctx)
    records = generate_answers(student, tok, held_out, how)
    p_gold = answer_first_confidence(student, tok, held_out, device, batch_size, runtime.ctx) if mode == "post" \
        else None
    return {"correct": [r["correct"] for r in records], "p_gold": p_gold}


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


def label(pre_ok: bool, post_ok: bool, p_gold: float, post_confidence: float = 0.9, default: str = "pre") -> str:
    """The mode a training question should be answered in, from the held-out students' evidence.

    Answering first is cheaper (it stops right after the answer), so it wins when only post is right, or when
    both are and answering first is also safe: the post student's probability of the gold answer (p_gold, see
    answer_first_confidence) reaches post_confidence. A greedy answer right with probability 0.55 is a coin flip
    the ATM student would have to win again. Cost decides only between two safe options; risk decides otherwise.
    When both fail, `default`: the question is hard either way, and the label says how we would rather spend."""
    if post_ok and (p_gold >= post_confidence or not pre_ok):
        return "post"
    if pre_ok:
        return "pre"
    return default


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

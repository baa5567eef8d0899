"""The core, with the student's own first token as the decider instead of the perception module
(--decider=mode_token; Thinkless's decoupled loss, as we read it).

Every target starts with its mode's marker, so a student's first generated token already is its decision: the
first token of "Reasoning:" (think first) or of "Answer:" (answer first). No perception module: the student
alone, trained on the k-fold labels' formats, with that one token's loss weighted apart (--mode_token_weight),
and at test time the mode chosen greedily or by a threshold (--mode_threshold).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..batches import pad_left
from ..evaluate import Answering, generate_answers
from ..formats import ANSWER_MARK, REASON_MARK, format_prompt
from ..learner import Learner
from ..model import GPT


def mode_token_ids(tok) -> tuple[int, int]:
    """(think, answer): the ids of the first token of each mode's marker, "R" and "A" in bytes, "Reason" and
    "Answer" in GPT-2 BPE. Our choice over new special tokens (<think>, <answer>, as Thinkless adds): no new ids,
    so the byte tokenizer keeps its 257, a pretrained GPT-2 its embedding table, and the targets of every
    decider are the same text."""
    think, answer = tok.encode(REASON_MARK)[0], tok.encode(ANSWER_MARK)[0]
    if think == answer:
        raise ValueError(f"{tok.name}: the markers {REASON_MARK!r} and {ANSWER_MARK!r} start with the same token")
    return think, answer


def mode_token_loss(student: GPT, x, y, weight: float):
    """The student's loss with its mode token apart. Each row's first target token (the first y != -1) says
    think or answer first. In a plain mean over ~40 target tokens that one decision weighs 1/40; here it is
    averaged on its own: loss = mean CE of the other target tokens + weight * mean CE of the mode tokens.
    Returns (loss, the rest's loss, the mode tokens' loss)."""
    logits, _ = student(x)  # (B, T, V)
    ce = F.cross_entropy(logits.float().transpose(1, 2), y, ignore_index=-1, reduction="none")  # (B, T); 0 at -1
    target = y != -1  # (B, T)
    is_mode = torch.zeros_like(target)
    is_mode[torch.arange(y.size(0)), target.int().argmax(dim=1)] = True  # each row's first target position
    rest = target & ~is_mode
    mode_loss = ce[is_mode].mean()
    rest_loss = ce[rest].sum() / rest.sum().clamp(min=1)
    return rest_loss + weight * mode_loss, rest_loss, mode_loss


class ModeTokenLearner(Learner):
    """The student alone (no perception), its loss mode_token_loss."""

    def __init__(self, student: GPT, mode_token_weight: float):
        super().__init__(student, None)
        self.mode_token_weight = mode_token_weight

    def forward(self, x, y, q_ids, q_mask, features, post):
        return mode_token_loss(self.student, x, y, self.mode_token_weight)


@torch.no_grad()
def first_token_p_post(student, tok, questions, device, batch_size=256, ctx=None) -> list[float]:
    """For each raw question, p(answer token) / (p(answer token) + p(think token)) at the student's first
    generated position (mode_token_ids), from one forward pass over the prompt."""
    student.eval()
    think, answer = mode_token_ids(tok)
    out = []
    for s in range(0, len(questions), batch_size):
        idx, pad_mask = pad_left([tok.encode(format_prompt(q)) for q in questions[s:s + batch_size]], tok.eot_id,
                                 device)
        with ctx if ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            logits, _ = student(idx, pad_mask=pad_mask)  # (B, T, V); the last column predicts the first token
        out.extend(torch.softmax(logits[:, -1, [think, answer]].float(), dim=-1)[:, 1].tolist())
    return out


def mode_token_answers(student, tok, examples, device, batch_size=256, max_new_tokens=96, threshold=0.0,
                       ctx=None):
    """The student writes its mode token itself (threshold 0: greedily, like any token), or the mode is forced to
    "post" where first_token_p_post >= threshold, else "pre". Records as generate_answers', p_post =
    first_token_p_post."""
    p = first_token_p_post(student, tok, [ex.question for ex in examples], device, batch_size, ctx=ctx)
    force = None if threshold == 0 else ["post" if x >= threshold else "pre" for x in p]
    how = Answering(device, batch_size, max_new_tokens, ctx=ctx)
    records = generate_answers(student, tok, examples, how, force=force)
    return [{**r, "p_post": x} for r, x in zip(records, p)]

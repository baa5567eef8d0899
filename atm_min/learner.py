"""The thing that is trained: a GPT student plus, for adaptive thinking, the perception module.

training.py optimises a Learner; the machinery saves its state dict as the checkpoint's "learner", and sample.py
and the plot script rebuild one from that checkpoint (atm_min/machinery/checkpoint.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import GPT
from .perception import Perception, Router, soft_prompt


class Learner(nn.Module):
    """Student + optional perception in one module, so DDP syncs both and one forward gives the loss.
    The other deciders (TrainConfig.decider): "mode_token", a student alone whose first target token (its mode
    token) has a loss of its own, weighted by mode_token_weight; "router", a Router alone (student None)."""

    def __init__(self, student: GPT | None, perception: Perception | None, routing: str = "soft",
                 mode_token_weight: float | None = None):
        super().__init__()
        self.student, self.perception, self.mode_token_weight = student, perception, mode_token_weight
        # routing="soft": the soft prompt steers the student (the paper). "hard" is an ablation (our choice): the
        # perception only learns to classify, the student never sees a soft prompt, and at test time the
        # classifier picks the mode (evaluate.generate_texts, force="classifier").
        if routing not in ("soft", "hard"):
            raise ValueError(f"routing must be 'soft' or 'hard', got {routing!r}")
        self.routing = routing

    def forward(self, x, y, q_ids, q_mask, features, post, aux_weight: float = 0.0):
        prefix = None
        aux = torch.zeros((), device=x.device)
        if self.student is None:  # the router: only its classifier learns, from the k-fold labels
            _, post_logit = soft_prompt(self.perception, None, q_ids, q_mask, features)
            aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)
            return aux, torch.zeros_like(aux), aux
        if self.mode_token_weight is not None:
            return mode_token_loss(self.student, x, y, self.mode_token_weight)
        if self.perception is not None:
            prefix, post_logit = soft_prompt(self.perception, self.student, q_ids, q_mask, features)
            aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)  # learn the k-fold label
            if self.routing == "hard":
                prefix = None
        _, lm_loss = self.student(x, y, prefix_embeds=prefix)
        return lm_loss + aux_weight * aux, lm_loss, aux


def mode_token_loss(student: GPT, x, y, weight: float):
    """The student's loss with its mode token apart (Thinkless's decoupled loss, as we read it). Every target
    starts with its mode's marker, so each row's first target token (the first y != -1) says think or answer
    first. In a plain mean over ~40 target tokens that one decision weighs 1/40; here it is averaged on its own:
    loss = mean CE of the other target tokens + weight * mean CE of the mode tokens.
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


def build_learner(cfg, student: GPT | None, atm: bool, vocab_size: int = 0) -> Learner:
    """The student plus, for ATM, a fresh perception module sized by cfg (n_prefix, perc_*), routed as
    cfg.routing says; or, for ATM with another decider (cfg.decider), the student alone ("mode_token") or a
    Router alone, over a vocabulary of vocab_size ("router": student is None)."""
    decider = getattr(cfg, "decider", "soft_prompt") if atm else "soft_prompt"
    if atm and decider == "router":
        return Learner(None, Router(vocab_size, cfg.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads,
                                    cfg.perc_input))
    if atm and decider == "mode_token":
        return Learner(student, None, mode_token_weight=cfg.mode_token_weight)
    perception = Perception(student.config.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads,
                            cfg.perc_input, getattr(cfg, "soft_prompt", "free")) if atm else None
    return Learner(student, perception, routing=getattr(cfg, "routing", "soft"))

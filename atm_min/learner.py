"""The thing that is trained: a GPT student plus, for adaptive thinking, the perception module.

training.py optimises a Learner; the machinery saves its state dict as the checkpoint's "learner", and sample.py
and the plot script rebuild one from that checkpoint (atm_min/machinery/checkpoint.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import GPT
from .perception import Perception, perceive


class Learner(nn.Module):
    """Student + optional perception in one module, so DDP syncs both and one forward gives the loss."""

    def __init__(self, student: GPT, perception: Perception | None = None):
        super().__init__()
        self.student, self.perception = student, perception

    def forward(self, x, y, q_ids, q_mask, features, post, aux_weight: float = 0.0):
        """Returns (loss to minimise, the student's language-model loss, the perception's label loss)."""
        if self.perception is None:  # a baseline or a k-fold student: the student alone
            _, lm_loss = self.student(x, y)
            return lm_loss, lm_loss, torch.zeros_like(lm_loss)
        prefix, post_logit = perceive(self.perception, self.student, q_ids, q_mask, features)
        aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)  # learn the k-fold label
        _, lm_loss = self.student(x, y, prefix_embeds=prefix)
        return lm_loss + aux_weight * aux, lm_loss, aux


def build_learner(cfg, student: GPT, atm: bool) -> Learner:
    """The student plus, for ATM, a fresh perception module sized by cfg (n_prefix, perc_layers, perc_heads)."""
    perception = Perception(student.config.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads) if atm else None
    return Learner(student, perception)

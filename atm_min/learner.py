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
    """Student + optional perception in one module, so DDP syncs both and one forward gives the loss.
    aux_weight: the weight of the perception's classification loss (the setting TrainConfig.aux_weight, which
    decides its default); needed with a perception."""

    def __init__(self, student: GPT, perception: Perception | None = None, aux_weight: float | None = None):
        super().__init__()
        if perception is not None and aux_weight is None:
            raise ValueError("a Learner with a perception needs aux_weight (TrainConfig.aux_weight: 1.0 by default)")
        self.student, self.perception, self.aux_weight = student, perception, aux_weight

    def forward(self, x, y, q_ids, q_mask, features, post):
        """x, y (B, T): inputs and targets; q_ids, q_mask, features: the perception's inputs (batches.collate);
        post (B,): each example's k-fold label, 1.0 = answer first. Returns (loss to minimise, the student's
        language-model loss, the perception's label loss)."""
        if self.perception is None:  # a baseline or a k-fold student: the student alone
            _, lm_loss = self.student(x, y)
            return lm_loss, lm_loss, torch.zeros_like(lm_loss)
        prefix, post_logit = perceive(self.perception, self.student, q_ids, q_mask, features)
        aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)  # learn the k-fold label
        _, lm_loss = self.student(x, y, prefix_embeds=prefix)
        return lm_loss + self.aux_weight * aux, lm_loss, aux

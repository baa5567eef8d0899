"""The thing that is trained: a GPT student plus, for adaptive thinking, the perception module.

training.py optimises a Learner; the machinery saves its state dict as the checkpoint's "learner", and sample.py
and the plot script rebuild one from that checkpoint (atm_min/machinery/checkpoint.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import GPT
from .perception import Perception, soft_prompt


class Learner(nn.Module):
    """Student + optional perception in one module, so DDP syncs both and one forward gives the loss."""

    def __init__(self, student: GPT, perception: Perception | None, routing: str = "soft"):
        super().__init__()
        self.student, self.perception = student, perception
        # routing="soft": the soft prompt steers the student (the paper). "hard" is an ablation (our choice): the
        # perception only learns to classify, the student never sees a soft prompt, and at test time the
        # classifier picks the mode (evaluate.generate_texts, force="classifier").
        if routing not in ("soft", "hard"):
            raise ValueError(f"routing must be 'soft' or 'hard', got {routing!r}")
        self.routing = routing

    def forward(self, x, y, q_ids, q_mask, features, post, aux_weight: float = 0.0):
        prefix = None
        aux = torch.zeros((), device=x.device)
        if self.perception is not None:
            prefix, post_logit = soft_prompt(self.perception, self.student, q_ids, q_mask, features)
            aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)  # learn the k-fold label
            if self.routing == "hard":
                prefix = None
        _, lm_loss = self.student(x, y, prefix_embeds=prefix)
        return lm_loss + aux_weight * aux, lm_loss, aux


def build_learner(cfg, student: GPT, atm: bool) -> Learner:
    """The student plus, for ATM, a fresh perception module sized by cfg (n_prefix, perc_*), routed as
    cfg.routing says."""
    perception = Perception(student.config.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads,
                            cfg.perc_input, getattr(cfg, "soft_prompt", "free")) if atm else None
    return Learner(student, perception, routing=getattr(cfg, "routing", "soft"))

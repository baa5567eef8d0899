"""The core, with a soft prompt that carries only the decision (--soft_prompt, our choice of ablation).

In the paper's design the soft prompt is any function of the question ("free": the P query outputs, projected).
"gated": a mix of two learned prompts, one per mode, weighted by p(answer first), so the student cannot read
anything else about the question from it; the student's loss still trains the classifier through the weight.
"label": the same mix, but the weight is the classifier's alone (trained on the k-fold labels only; the
student's loss does not reach it).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..perception import Perception


class GatedPrompt(Perception):
    """prompt = (1 - w) * think-first prompt + w * answer-first prompt, w = p(answer first)."""
    prompt, detach_weight = "gated", False

    def __init__(self, n_embd: int, n_prefix: int = 4, n_layer: int = 1, n_head: int = 4):
        super().__init__(n_embd, n_prefix, n_layer, n_head)
        del self.out_proj  # no projection: the prompt is one of two learned ones, or a mix
        self.mode_prompts = nn.Parameter(torch.randn(2, n_prefix, n_embd) * 0.02)  # row 0: think, 1: answer first

    def forward(self, q_emb, q_mask, features, return_att=False):
        x, atts = self.read(q_emb, q_mask, features)  # (B, P, C)
        post_logit = self.mode_head(x.mean(dim=1)).squeeze(-1)  # (B,)
        w = torch.sigmoid(post_logit.detach() if self.detach_weight else post_logit)[:, None, None]  # (B, 1, 1)
        prefix = (1 - w) * self.mode_prompts[0] + w * self.mode_prompts[1]  # (B, P, C)
        return (prefix, post_logit, atts) if return_att else (prefix, post_logit)


class LabelWeightedPrompt(GatedPrompt):
    """The gated mix, its weight trained by the k-fold labels alone (--soft_prompt=label)."""
    prompt, detach_weight = "label", True


KINDS = {"free": Perception, "gated": GatedPrompt, "label": LabelWeightedPrompt}  # --soft_prompt -> class

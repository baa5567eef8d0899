"""The core, with a soft prompt that carries only the decision (--soft_prompt, our choice of ablation).

In the paper's design the soft prompt is any function of the question ("free": the P query outputs, projected).
"gated": a mix of two learned prompts, one per mode, weighted by p(answer first), so the student cannot read
anything else about the question from it; the student's loss still trains the classifier through the weight.
"label": the same mix, but the weight is the classifier's alone (trained on the k-fold labels only; the
student's loss does not reach it). NoPrompt: no soft prompt at all, only the classifier (the router's).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class GatedPrompt:
    """Mixed in before Perception: prompt = (1 - w) * think-first prompt + w * answer-first prompt."""
    prompt, detach_weight = "gated", False

    def make_prompt_head(self, n_prefix: int, n_embd: int):
        self.mode_prompts = nn.Parameter(torch.randn(2, n_prefix, n_embd) * 0.02)  # row 0: think, 1: answer first

    def write_prompt(self, x, post_logit):
        logit = post_logit.detach() if self.detach_weight else post_logit
        w = torch.sigmoid(logit)[:, None, None]  # (B, 1, 1)
        return (1 - w) * self.mode_prompts[0] + w * self.mode_prompts[1]  # (B, P, C)


class LabelPrompt(GatedPrompt):
    """The gated mix, its weight trained by the k-fold labels alone."""
    prompt, detach_weight = "label", True


class NoPrompt:
    """Mixed in before Perception: the classifier alone, no soft prompt (prefix None)."""
    prompt = "none"

    def make_prompt_head(self, n_prefix: int, n_embd: int):
        pass

    def write_prompt(self, x, post_logit):
        return None


KINDS = {"free": (), "gated": (GatedPrompt,), "label": (LabelPrompt,)}  # --soft_prompt -> mixins

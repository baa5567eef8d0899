"""The core, with the perception's inputs cut (--perc_input, an ablation of ours): its queries read only the
simple features ("features") or only the question's tokens ("tokens"), not both as in the paper's design.

Nothing else changes: the same module, the same keys and values; the other kind of key is masked out.
"""

from __future__ import annotations

import torch


class FeaturesOnly:
    """Mixed in before Perception: the queries read the feature "token" alone."""
    inputs = "features"

    def key_mask(self, q_mask):
        return torch.cat([torch.ones_like(q_mask[:, :1]), torch.zeros_like(q_mask)], dim=1)  # (B, 1+T)


class TokensOnly:
    """Mixed in before Perception: the queries read the question tokens alone."""
    inputs = "tokens"

    def key_mask(self, q_mask):
        return torch.cat([torch.zeros_like(q_mask[:, :1]), q_mask], dim=1)  # (B, 1+T)


INPUTS = {"both": (), "features": (FeaturesOnly,), "tokens": (TokensOnly,)}  # --perc_input -> mixins

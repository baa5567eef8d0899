"""The core, with the perception's inputs cut (--perc_input, an ablation of ours): its queries read only the
simple features ("features") or only the question's tokens ("tokens"), not both as in the paper's design.

Nothing else changes: the same module, the same keys and values; the other kind of key is masked out, by a
forward pre-hook on each block's cross-attention (PyTorch's own hook: the core's code is left as it is).
"""

from __future__ import annotations


def hide_keys(hidden: slice):
    """A pre-hook for CrossAttention.forward(q_in, kv_in, key_mask): the keys at `hidden` masked out.
    key_mask (B, 1+T): key 0 is the feature "token", keys 1.. the question tokens."""
    def hook(attn, args):
        q_in, kv_in, key_mask = args
        key_mask = key_mask.clone()
        key_mask[:, hidden] = False
        return q_in, kv_in, key_mask
    return hook


HIDDEN = {"features": slice(1, None), "tokens": slice(0, 1)}  # what each setting hides: the tokens, the features


def read_only(perception, inputs: str):
    """perception (any Perception), its queries restricted to `inputs`: "features", "tokens" or "both" (the
    paper's, unchanged). Returns perception, marked with what it reads (perception.inputs)."""
    for block in perception.blocks if inputs != "both" else []:
        block.attn.register_forward_pre_hook(hide_keys(HIDDEN[inputs]))
    perception.inputs = inputs
    return perception

"""The thing that is trained: a GPT student plus, for adaptive thinking, the perception module.

train.py optimises a Learner and saves its state dict as the checkpoint's "learner"; sample.py and the plot
script rebuild one from that checkpoint. Keeping the class here (not in a script) lets every script share it
without importing another script.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TrainConfig
from .errors import CheckpointError
from .model import GPT, GPTConfig
from .perception import Perception, soft_prompt


class Learner(nn.Module):
    """Student + optional perception in one module, so DDP syncs both and one forward gives the loss."""

    def __init__(self, student: GPT, perception: Perception | None, steer: bool = True):
        super().__init__()
        self.student, self.perception = student, perception
        # steer=False is the "hard routing" ablation (TrainConfig.routing="hard"): the perception only learns to
        # classify, the student never sees a soft prompt, and at test time the classifier picks the mode.
        self.steer = steer

    def forward(self, x, y, q_ids, q_mask, features, post, aux_weight: float = 0.0):
        prefix = None
        aux = torch.zeros((), device=x.device)
        if self.perception is not None:
            prefix, post_logit = soft_prompt(self.perception, self.student, q_ids, q_mask, features)
            aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)  # learn the k-fold label
            if not self.steer:
                prefix = None
        _, lm_loss = self.student(x, y, prefix_embeds=prefix)
        return lm_loss + aux_weight * aux, lm_loss, aux


def build_student(cfg, vocab_size: int) -> GPT:
    """A fresh student for TrainConfig cfg: from scratch, or GPT-2 weights (cfg.init_from)."""
    if cfg.init_from == "scratch":
        return GPT(GPTConfig(block_size=cfg.block_size, vocab_size=vocab_size, n_layer=cfg.n_layer,
                             n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                             attn_impl=cfg.attn_impl))
    # Pretrained GPT-2: its own shapes; our block_size may be shorter (the position table is cropped).
    return GPT.from_pretrained(cfg.init_from, dropout=cfg.dropout, attn_impl=cfg.attn_impl,
                               block_size=cfg.block_size)


def build_learner(cfg, student: GPT, atm: bool) -> Learner:
    """The student plus, for ATM, a fresh perception module sized by cfg (n_prefix, perc_*), routed as
    cfg.routing says."""
    perception = Perception(student.config.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads,
                            cfg.perc_input, getattr(cfg, "soft_prompt", "free")) if atm else None
    return Learner(student, perception, steer=getattr(cfg, "routing", "soft") == "soft")


def load_learner_state(learner: Learner, state: dict, path: str) -> None:
    """learner.load_state_dict(state). A checkpoint of another shape (other sizes, tokenizer or mechanism) is a
    CheckpointError naming the file and the first mismatch, not torch's page-long list of them."""
    try:
        learner.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        raise _mismatch(path, e) from e


def saved_config(ck: dict) -> SimpleNamespace:
    """The settings checkpoint dict ck was trained with: its saved config over TrainConfig's defaults. A setting
    newer than the checkpoint gets its default, and every new setting's default is the behaviour from before it
    existed (e.g. soft_prompt="free"), so an older checkpoint is rebuilt as the model it was."""
    saved = ck.get("config")
    return SimpleNamespace(**{**TrainConfig().__dict__, **(saved if isinstance(saved, dict) else {})})


def learner_from_checkpoint(ck: dict, cfg, path: str = "the checkpoint") -> Learner:
    """The Learner saved in checkpoint dict ck (train.py's save()); cfg gives the perception's sizes (normally
    saved_config(ck)). Raises CheckpointError when the checkpoint does not match this code's model."""
    try:
        learner = build_learner(cfg, GPT(GPTConfig(**ck["model_args"])), atm=ck["atm"])
    except (TypeError, ValueError, KeyError, AssertionError) as e:  # unknown model_args, sizes that do not divide
        raise _mismatch(path, e) from e
    load_learner_state(learner, ck["learner"], path)
    return learner


def _mismatch(path: str, e: Exception) -> CheckpointError:
    # torch's message starts "Error(s) in loading state_dict for Learner:" and then lists every tensor.
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Error(s) in loading")]
    detail = lines[0] if lines else type(e).__name__
    if len(detail) > 200:  # "Missing key(s) in state_dict: ..." lists every key
        detail = detail[:200].rsplit(" ", 1)[0] + " ..."
    return CheckpointError(f"{path} does not match the model it is loaded into ({detail}): it was saved with "
                           f"other settings (sizes, tokenizer, mechanism) or by other code. Use the settings it "
                           f"was trained with, or train afresh in another --out_dir")

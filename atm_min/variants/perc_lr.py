"""The core, with the perception module at a learning rate of its own (--perc_lr_mult, our choice: the paper is
silent). The perception starts from random weights beside a pretrained student, and the schedule's lr is sized
for the student; the perception's parameters get AdamW groups of their own (the core's decay rule), each with
an "lr_mult" that training.train multiplies the schedule's lr by.
"""

from __future__ import annotations

from ..training import make_optimizer


def perc_lr_optimizer(cfg, learner, device: str):
    """training.make_optimizer's AdamW over the student, plus the perception's groups at cfg.perc_lr_mult x lr."""
    first = learner.student if learner.student is not None else learner.perception  # a router: no student
    optimizer = make_optimizer(cfg, first, device)
    if learner.student is not None:
        for group in make_optimizer(cfg, learner.perception, device).param_groups:
            optimizer.add_param_group(group)
    for group in optimizer.param_groups[-2:]:  # the perception's: its matrices, and the rest
        group["lr_mult"] = cfg.perc_lr_mult
    return optimizer

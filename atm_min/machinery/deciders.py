"""Machinery: the test-set answers of issue 15's other deciders (TrainConfig.decider), for train.py's ATM job.
The lesson is in the teaching path: the mode token in formats.py (mode_token_ids), learner.py (mode_token_loss)
and evaluate.py (first_token_p_post, mode_token_answers); the router in perception.py (Router) and evaluate.py
(routed_answers). Here they are only called, with the run's settings."""

from __future__ import annotations

import os

from ..evaluate import generate_answers, mode_token_answers, routed_answers, timed_answers
from ..formats import MODES
from .runs import finished_student


def decider_answers(cfg, rt, tok, student, perception, test):
    """(records, ms per question, forced) of the ATM job with cfg.decider "mode_token" or "router". forced: every
    question answered in each mode, the ends of the threshold curve (the student forced to start with a mode's
    marker; a router's two specialists), each record with the decider's p(answer first)."""
    args = (tok, test, rt.device, cfg.eval_batch_size, cfg.max_new_tokens)
    if cfg.decider == "mode_token":
        records, ms = timed_answers(student, *args, cfg.mode_threshold, rt.ctx, answer=mode_token_answers)
        forced = {m: generate_answers(student, *args, ctx=rt.ctx, force=m) for m in MODES}
    else:  # the router (perception) in front of the run's pre and post baselines, trained before it (Job.after)
        experts = {m: finished_student(os.path.join(cfg.out_dir, f"baseline_{m}.pt"), rt.device) for m in MODES}
        records, ms = timed_answers(perception, experts, *args, rt.ctx, answer=routed_answers)
        forced = {m: generate_answers(experts[m], *args, ctx=rt.ctx) for m in MODES}
    forced = {m: [{**r, "p_post": a["p_post"]} for r, a in zip(rs, records)] for m, rs in forced.items()}
    return records, ms, forced

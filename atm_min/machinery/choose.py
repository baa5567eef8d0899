"""Machinery: which code a run's settings pick, the core's (the paper) or a variant's (atm_min/variants/).

The core never asks which variant is on; this file is the one place that does. Each function reads the
settings and hands back plain objects and functions; the callers (train.py, sample.py, the checkpoint loader,
the comparison tables) call them without knowing which design they run.
"""

from __future__ import annotations

import os

from ..evaluate import generate_answers, generate_texts, post_probabilities, timed_answers
from ..formats import MODES
from ..labels import held_out_evidence, label
from ..learner import Learner
from ..perception import Perception
from ..variants import hard_routing, label_rules, mode_token, perception_inputs, prompt_kinds, router
from ..variants.random_labels import shuffled_labels
from ..variants.sampled_evidence import pass_rates


def perception_class(cfg):
    """The core's Perception with the variants' mixins of cfg.routing, cfg.soft_prompt and cfg.perc_input (each
    overrides one method: write_prompt, make_prompt_head or key_mask); the default settings: Perception itself."""
    mixins = (*(() if cfg.routing == "soft" else (hard_routing.HardRouting,)),
              *prompt_kinds.KINDS[cfg.soft_prompt], *perception_inputs.INPUTS[cfg.perc_input])
    return type("Perception", (*mixins, Perception), {}) if mixins else Perception


def build_learner(cfg, student, atm: bool, vocab_size: int = 0) -> Learner:
    """The core's Learner (student + perception for ATM) or, for ATM with another cfg.decider, the student alone
    with its mode token ("mode_token") or a Router alone over a vocabulary of vocab_size ("router", student None)."""
    _ = cfg.routing  # read for every learner: the resume rules (runs.model_keys) count it for a baseline too
    if not atm:
        return Learner(student, None)
    if cfg.decider == "router":
        cls = type("Router", (*perception_inputs.INPUTS[cfg.perc_input], router.Router), {})
        return router.RouterLearner(cls(vocab_size, cfg.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads))
    if cfg.decider == "mode_token":
        return mode_token.ModeTokenLearner(student, cfg.mode_token_weight)
    return Learner(student, perception_class(cfg)(student.config.n_embd, cfg.n_prefix, cfg.perc_layers,
                                                  cfg.perc_heads))


def is_hard(perception) -> bool:
    """Was this perception trained with routing="hard" (no soft prompt: the classifier picks the mode)?"""
    return getattr(perception, "routing", "soft") == "hard"


def texts_function(perception):
    """generate_texts, or for a hard-routing perception the variant where force=None means the classifier's pick."""
    return hard_routing.hard_routed_texts if is_hard(perception) else generate_texts


def answers_function(perception):
    return hard_routing.hard_routed_answers if is_hard(perception) else generate_answers


def evidence(cfg, student, tok, held_out, mode: str, device, seed: int, ctx=None) -> dict:
    """A fold student's evidence on its held-out questions (labels.held_out_evidence), with pass rates over
    cfg.label_samples sampled answers when that is > 0 (variants/sampled_evidence.py)."""
    out = held_out_evidence(student, tok, held_out, mode, device, cfg.eval_batch_size, cfg.max_new_tokens, ctx=ctx)
    if cfg.label_samples:
        out.update(pass_rates(student, tok, held_out, device, cfg.label_samples, cfg.label_temperature, seed,
                              cfg.eval_batch_size, cfg.max_new_tokens, ctx))
    return out


def labeller(cfg):
    """cfg.label_rule as a function of one question's evidence row {pre_ok, post_ok, p_gold, pre_rate,
    post_rate} -> "pre" or "post"."""
    rules = {
        "confident_post": lambda r: label(r["pre_ok"], r["post_ok"], r["p_gold"], cfg.post_confidence,
                                          cfg.label_default),
        "prefer_post": lambda r: label_rules.prefer("post", r["pre_ok"], r["post_ok"], cfg.label_default),
        "prefer_pre": lambda r: label_rules.prefer("pre", r["pre_ok"], r["post_ok"], cfg.label_default),
        "pass_rate": lambda r: label_rules.pass_rate(r["pre_rate"], r["post_rate"], cfg.label_delta,
                                                     cfg.label_default),
    }
    return rules[cfg.label_rule]


def label_source(cfg, labels: list[str]) -> list[str]:
    """The labels the ATM student trains on: the k-fold ones, or shuffled (label_source="random")."""
    return shuffled_labels(labels, cfg.seed) if cfg.label_source == "random" else labels


def train_p_post(cfg, student, perception, tok, examples, device) -> list[float]:
    """The decider's p(answer first) on training questions (for the agreement with the labels)."""
    if cfg.decider == "mode_token":
        return mode_token.first_token_p_post(student, tok, [ex.question for ex in examples], device)
    return post_probabilities(student, perception, tok, examples, device)


def test_answers(cfg, student, perception, tok, test, device, ctx=None):
    """The ATM job's test-set answers as its decider gives them: (records, ms per question, forced), forced being
    every question answered in each mode (the threshold curve's ends), each record with the decider's p_post."""
    args = (tok, test, device, cfg.eval_batch_size, cfg.max_new_tokens)
    if cfg.decider == "mode_token":
        records, ms = timed_answers(student, *args, cfg.mode_threshold, ctx, answer=mode_token.mode_token_answers)
        forced = {m: generate_answers(student, *args, ctx=ctx, force=m) for m in MODES}
    elif cfg.decider == "router":
        from .runs import finished_student  # runs.py builds learners through this file: import it late
        # the router's specialists: the run's pre and post baselines, trained before it (Job.after)
        experts = {m: finished_student(os.path.join(cfg.out_dir, f"baseline_{m}.pt"), device) for m in MODES}
        records, ms = timed_answers(perception, experts, *args, ctx, answer=router.routed_answers)
        forced = {m: generate_answers(experts[m], *args, ctx=ctx) for m in MODES}
    else:
        answer = answers_function(perception)
        records, ms = timed_answers(student, *args, perception=perception, explain=cfg.explain, ctx=ctx,
                                    answer=answer)
        forced = {m: answer(student, *args, perception=perception, force=m, explain=cfg.explain, ctx=ctx)
                  for m in MODES}
        return records, ms, forced
    forced = {m: [{**r, "p_post": a["p_post"]} for r, a in zip(rs, records)] for m, rs in forced.items()}
    return records, ms, forced

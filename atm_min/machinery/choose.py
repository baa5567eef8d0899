"""Machinery: which code a run's settings pick, the core's (the paper) or a variant's (atm_min/variants/).

The core never asks which variant is on; this file is the one place that does, once, where an object is built:
build_learner builds the module a run trains (learner_from_checkpoint rebuilds the one a checkpoint saved), and
design(cfg) hands train.py the paper's steps, each the core's function or a variant's with the same contract in
its place. The callers (train.py, sample.py, the comparison tables) call what they get without knowing which
design they run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..evaluate import Answering, generate_answers, generate_texts, post_probabilities
from ..formats import MODES
from ..labels import held_out_evidence, label
from ..learner import Learner
from ..students import student_from_args
from ..variants import hard_routing, label_rules, mode_token, perc_input, prompt_kinds, router
from ..training import make_optimizer
from ..variants.perc_lr import perc_lr_optimizer
from ..variants.random_labels import shuffled_labels
from ..variants.task_labels import task_labels
from ..variants.sampled_evidence import pass_rates
from .checkpoint import load_checkpoint, load_learner_state, mismatch, saved_config


def build_perception(cfg, n_embd: int):
    """The perception module of cfg: the core's Perception, or the class of cfg.soft_prompt (prompt_kinds.py),
    reading cfg.perc_input's inputs (perc_input.py), with no soft prompt for routing="hard" (hard_routing.py)."""
    perception = prompt_kinds.KINDS[cfg.soft_prompt](n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads)
    if cfg.routing == "hard":
        hard_routing.hard_routed(perception)
    return perc_input.read_only(perception, cfg.perc_input)


def build_learner(cfg, student, atm: bool, vocab_size: int = 0) -> Learner:
    """The core's Learner (student + perception for ATM) or, for ATM with another cfg.decider, the student alone
    with its mode token ("mode_token") or a Router alone over a vocabulary of vocab_size ("router", student None)."""
    _ = cfg.routing  # read for every learner: the resume rules (runs.model_keys) count it for a baseline too
    if not atm:
        return Learner(student)
    if cfg.decider == "router":
        return router.RouterLearner(perc_input.read_only(
            router.Router(vocab_size, cfg.n_embd, cfg.n_prefix, cfg.perc_layers, cfg.perc_heads), cfg.perc_input))
    if cfg.decider == "mode_token":
        return mode_token.ModeTokenLearner(student, cfg.mode_token_weight)
    return Learner(student, build_perception(cfg, student.config.n_embd), cfg.aux_weight)


def learner_from_checkpoint(ck: dict, cfg, path: str = "the checkpoint") -> Learner:
    """The Learner saved in checkpoint dict ck (runs.py StudentRun.save); cfg gives the perception's sizes (normally
    saved_config(ck)). Raises CheckpointError when the checkpoint does not match this code's model."""
    try:
        router = ck["atm"] and getattr(cfg, "decider", "soft_prompt") == "router"  # a Router alone, no student
        student = None if router else student_from_args(ck["model_args"])  # GPT-2 or Llama (its "arch")
        learner = build_learner(cfg, student, atm=ck["atm"], vocab_size=ck["model_args"].get("vocab_size", 0))
    except (TypeError, ValueError, KeyError, AssertionError) as e:  # unknown model_args, sizes that do not divide
        raise mismatch(path, e) from e
    load_learner_state(learner, ck["learner"], path)
    return learner


def finished_student(path: str, device):
    """The student saved in a finished run's checkpoint (a router's specialists: the baselines it routes to)."""
    ck = load_checkpoint(path, map_location=device)
    return learner_from_checkpoint(ck, saved_config(ck), path).student.to(device)


def optimizer(cfg, learner, device: str):
    """The core's AdamW (training.make_optimizer); with a perception and cfg.perc_lr_mult other than 1, the
    perception's parameters in groups of their own at that multiple of the lr (perc_lr.py)."""
    if learner.perception is not None and cfg.perc_lr_mult != 1.0:
        return perc_lr_optimizer(cfg, learner, device)
    return make_optimizer(cfg, learner, device)


def is_hard(perception) -> bool:
    """Was this perception trained with routing="hard" (no soft prompt: the classifier picks the mode)?"""
    return getattr(perception, "routing", "soft") == "hard"


def texts_function(perception):
    """generate_texts, or for a hard-routing perception the variant where force=None means the classifier's pick."""
    return hard_routing.hard_routed_texts if is_hard(perception) else generate_texts


def answers_function(perception):
    return hard_routing.hard_routed_answers if is_hard(perception) else generate_answers


def labeller(cfg) -> Callable:
    """cfg.label_rule as a function of one question's evidence row {pre_ok, post_ok, p_gold, pre_rate,
    post_rate} -> "pre" or "post"; "confident_post" is the core's labels.label."""
    rules = {
        "confident_post": lambda r: label(r["pre_ok"], r["post_ok"], r["p_gold"], cfg.post_confidence,
                                          cfg.label_default),
        "prefer_post": lambda r: label_rules.prefer("post", r["pre_ok"], r["post_ok"], cfg.label_default),
        "prefer_pre": lambda r: label_rules.prefer("pre", r["pre_ok"], r["post_ok"], cfg.label_default),
        "pass_rate": lambda r: label_rules.pass_rate(r["pre_rate"], r["post_rate"], cfg.label_delta,
                                                     cfg.label_default),
    }
    return rules[cfg.label_rule]


@dataclass(frozen=True)
class Design:
    """The paper's steps as a run's settings chose them: each the core's function or a variant's in its place.

    held_out_evidence(student, tok, held_out, mode, cfg, runtime) -> a fold student's evidence (labels.py);
    label(row) -> "pre" or "post": one question's label from its evidence row (labels.label with the settings);
    training_labels(labels, rows, groups) -> the labels the ATM student trains on: the k-fold ones, or a
        variant's from them, the evidence rows and the questions' groups (random_labels.py, task_labels.py);
    generate_answers(learner, tok, examples, cfg, runtime, force=None) -> the ATM student's answer records,
        each with the decider's p_post (evaluate.generate_answers with the perception);
    p_post(learner, tok, examples, runtime) -> the decider's p(answer first) of each question;
    specialists: the compared students the ATM student needs finished first (a router's pre and post)."""
    held_out_evidence: Callable
    label: Callable
    training_labels: Callable
    generate_answers: Callable
    p_post: Callable
    specialists: tuple = ()


def design(cfg) -> Design:
    """The Design of cfg: the core's steps where the settings are the paper's, a variant's where one is chosen."""
    answers, p_post, specialists = {"soft_prompt": (atm_answers, perception_p_post, ()),
                                    "mode_token": (mode_token_answers, mode_token_p_post, ()),
                                    "router": (routed_answers, perception_p_post, ("pre", "post"))}[cfg.decider]
    return Design(held_out_evidence=sampled_evidence if cfg.label_samples else held_out_evidence,
                  label=labeller(cfg),
                  training_labels=training_labels(cfg),
                  generate_answers=answers, p_post=p_post, specialists=specialists)


def training_labels(cfg) -> Callable:
    """cfg.label_source as a function (k-fold labels, evidence rows, groups) -> the labels the ATM student trains
    on: "kfold" the labels themselves, "random" shuffled, "task" each question's task's better mode."""
    return {"kfold": lambda labels, rows, groups: labels,
            "random": lambda labels, rows, groups: shuffled_labels(labels, cfg.seed),
            "task": lambda labels, rows, groups: task_labels(groups, rows)}[cfg.label_source]


def sampled_evidence(student, tok, held_out, mode: str, cfg, runtime) -> dict:
    """held_out_evidence plus pass rates over cfg.label_samples sampled answers (variants/sampled_evidence.py),
    drawn with cfg.seed (train.py hands a fold student's settings with its own seed)."""
    return {**held_out_evidence(student, tok, held_out, mode, cfg, runtime),
            **pass_rates(student, tok, held_out, runtime.device, cfg.label_samples, cfg.label_temperature, cfg.seed,
                         cfg.eval_batch_size, cfg.max_new_tokens, runtime.ctx)}


# The ATM student's answers as its decider gives them, force=None; or every question forced into one mode (the
# threshold curve's ends, variants/threshold_curve.py), each record with the decider's p_post all the same.

def answering(cfg, runtime) -> Answering:
    """How a run answers test questions: its device and autocast, cfg's eval batch, budget and explain."""
    return Answering(runtime.device, cfg.eval_batch_size, cfg.max_new_tokens, explain=cfg.explain, ctx=runtime.ctx)


def atm_answers(learner, tok, examples, cfg, runtime, force=None):
    answer = answers_function(learner.perception)  # generate_answers, or its hard-routing variant
    return answer(learner.student, tok, examples, answering(cfg, runtime), perception=learner.perception, force=force)


def mode_token_answers(learner, tok, examples, cfg, runtime, force=None):
    args = (learner.student, tok, examples, runtime.device, cfg.eval_batch_size, cfg.max_new_tokens)
    if force is None:
        return mode_token.mode_token_answers(*args, cfg.mode_threshold, runtime.ctx)
    p = mode_token_p_post(learner, tok, examples, runtime, cfg.eval_batch_size, runtime.ctx)
    forced = generate_answers(learner.student, tok, examples, answering(cfg, runtime), force=force)
    return [{**r, "p_post": x} for r, x in zip(forced, p)]


def routed_answers(learner, tok, examples, cfg, runtime, force=None):
    # the router's specialists: the run's pre and post baselines, trained before it (Design.specialists)
    experts = {m: finished_student(os.path.join(cfg.out_dir, f"baseline_{m}.pt"), runtime.device) for m in MODES}
    args = (tok, examples, runtime.device, cfg.eval_batch_size, cfg.max_new_tokens)
    if force is None:
        return router.routed_answers(learner.perception, experts, *args, runtime.ctx)
    p = perception_p_post(learner, tok, examples, runtime)
    forced = generate_answers(experts[force], tok, examples, answering(cfg, runtime))
    return [{**r, "p_post": x} for r, x in zip(forced, p)]


def perception_p_post(learner, tok, examples, runtime) -> list[float]:
    return post_probabilities(learner.student, learner.perception, tok, examples, runtime.device)


def mode_token_p_post(learner, tok, examples, runtime, batch_size=256, ctx=None) -> list[float]:
    return mode_token.first_token_p_post(learner.student, tok, [ex.question for ex in examples], runtime.device,
                                         batch_size, ctx=ctx)

"""The core, with hard routing instead of the soft prompt (--routing=hard, an ablation of ours): the perception
module only learns to classify; the student never sees a soft prompt, and at test time the classifier picks each
question's mode (answer first where p(answer first) > 0.5) and the student is started with that mode's marker.
"""

from __future__ import annotations

import torch

from ..evaluate import Answering, answer_records, generate_texts, length_batches, perceive_questions


def _drop_prompt(perception, args, out):
    return (None, *out[1:])  # (prefix, post_logit[, atts]) -> (None, post_logit[, atts])


def hard_routed(perception):
    """perception (any Perception) handing the student no soft prompt: its forward returns prefix None, by a
    forward hook (PyTorch's own: the core's code is left as it is). Marked perception.routing = "hard"."""
    perception.register_forward_hook(_drop_prompt)
    perception.routing = "hard"
    return perception


@torch.no_grad()
def classifier_modes(student, perception, tok, questions, device, batch_size=256, ctx=None) -> list[str]:
    """The classifier's mode of each question ("post" where p(answer first) > 0.5, else "pre"), computed in the
    batches generate_texts uses, so the p it decides on is exactly the p_post it reports."""
    perception.eval()
    modes = [None] * len(questions)
    for rows in length_batches(questions, batch_size):
        with ctx if ctx is not None else torch.autocast(device_type="cpu", enabled=False):
            _, p = perceive_questions(perception, student, tok, [questions[i] for i in rows], device)
        for i, x in zip(rows, p):
            modes[i] = "post" if x > 0.5 else "pre"
    return modes


def hard_routed_texts(student, tok, questions, how: Answering, perception=None, force=None):
    """generate_texts, where force None means "the classifier picks"."""
    if force is None:
        force = classifier_modes(student, perception, tok, questions, how.device, how.batch_size, how.ctx)
    return generate_texts(student, tok, questions, how, perception=perception, force=force)


def hard_routed_answers(student, tok, examples, how: Answering, perception=None, force=None):
    """generate_answers with hard routing: records as generate_answers'."""
    outs = hard_routed_texts(student, tok, [ex.question for ex in examples], how, perception, force)
    return answer_records(examples, outs)

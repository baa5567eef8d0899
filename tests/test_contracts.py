"""The training loop's contract with gradient accumulation: grad_accum micro-batches of B sequences give the
gradients of one batch of B * grad_accum sequences (each micro-batch's mean loss divided by grad_accum), with and
without the perception module. AdamW hides a scale error (its step is invariant to the gradients' scale), so only
the gradients themselves show it."""

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

from atm_min.formats import Example
from atm_min.batches import encode_items
from atm_min.learner import Learner
from atm_min.model import GPT, GPTConfig
from atm_min.perception import Perception
from atm_min.tokenizer import byte_tokenizer
from atm_min.training import Steps, train
from atm_min.machinery.runtime import Runtime

TOK = byte_tokenizer()


class GradientRecorder:
    """An optimiser that only records the gradients it is asked to step with."""

    def __init__(self, params):
        self.params, self.param_groups, self.steps = list(params), [{}], []

    def step(self):
        self.steps.append([p.grad.clone() for p in self.params])

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def examples(n=8):
    # every example the same number of tokens: each micro-batch's mean then weighs its tokens as the big batch does
    return [Example(f"e{i}", f"Is {10 + i} odd?", f"It ends in {i}.", "yes" if i % 2 else "yup", "text")
            for i in range(n)]


def gradients(batch_size, grad_accum, perception: bool, steps=2):
    torch.manual_seed(0)
    student = GPT(GPTConfig(block_size=96, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16))
    learner = Learner(student, Perception(16, n_prefix=2, n_layer=1, n_head=2), aux_weight=0.5) if perception \
        else Learner(student)
    items = encode_items(TOK, examples(), ["pre", "post"] * 4)
    assert len({len(it.x) for it in items}) == 1 and len({sum(t != -1 for t in it.y) for it in items}) == 1
    cfg = SimpleNamespace(batch_size=batch_size, grad_accum=grad_accum, length_batches=False, aux_weight=0.5,
                          grad_clip=0.0, lr=1e-3, min_lr=1e-4, warmup_iters=1)
    opt = GradientRecorder(learner.parameters())
    train(learner, opt, items, cfg, Runtime("cpu", nullcontext(), None, 0, 1), Steps(steps, seed=3))
    return opt.steps


@pytest.mark.parametrize("perception", [False, True])
@pytest.mark.parametrize("accum", [2, 4])
def test_accumulated_gradients_equal_one_large_batch(perception, accum):
    one = gradients(8, 1, perception)
    many = gradients(8 // accum, accum, perception)
    assert len(one) == len(many) == 2
    for step_one, step_many in zip(one, many):
        for g1, g2 in zip(step_one, step_many):
            torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-6)

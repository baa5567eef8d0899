"""Training and generation batches: masks, padding layout, and the deterministic (seed, step) data order."""

import numpy as np
import pytest
import torch

from atm_min.batches import (TrainItem, batch_indices, collate, encode_items, length_order, micro_batch, pad_left,
                             perception_inputs, question_inputs)
from atm_min.machinery.data import Example
from atm_min.formats import encode, format_prompt
from atm_min.perception import N_FEATURES
from atm_min.tokenizer import byte_tokenizer

TOK = byte_tokenizer()


def ex(i, question="What is 2+3?", rationale="2+3=5.", answer="5"):
    return Example(id=f"e{i}", question=question, rationale=rationale, answer=answer, answer_type="number")


EXAMPLES = [ex(0), ex(1, "Number 2 in 4 7 1?", "In order: 4, 7, 1. Number 2 is 7.", "7"),
            ex(2, "Hi?", "Short.", "1")]


# ------------------------------------------------------------------------------------------------- collate

def test_encode_items_modes_and_post_flag():
    items = encode_items(TOK, EXAMPLES, ["pre", "post", "pre"])
    assert [it.post for it in items] == [0, 1, 0]
    for item, e, mode in zip(items, EXAMPLES, ["pre", "post", "pre"]):
        prompt, target = encode(TOK, e, mode)
        assert item.x == (prompt + target)[:-1]  # the model never reads the final <|endoftext|>
        assert item.y[-1] == TOK.eot_id  # but learns to write it
        assert item.q_ids == TOK.encode(e.question)  # the perception reads the bare question, not the template
        assert len(item.features) == N_FEATURES
    with pytest.raises(ValueError, match="shorter"):  # one mode per example, no silent truncation
        encode_items(TOK, EXAMPLES, ["pre"])


def test_collate_masks_prompt_and_padding():
    items = encode_items(TOK, EXAMPLES, ["pre", "post", "post"])
    b = collate(items, "cpu")
    B, T = b["x"].shape
    assert (B, T) == (3, max(len(it.x) for it in items)) and b["y"].shape == (B, T)
    for i, (item, e) in enumerate(zip(items, EXAMPLES)):
        n_prompt = len(TOK.encode(format_prompt(e.question)))
        n = len(item.x)
        y = b["y"][i]
        # No loss on the prompt: the first n_prompt - 1 targets are prompt tokens...
        assert (y[:n_prompt - 1] == -1).all()
        # ...the first target that counts is the first target token, and every target token counts...
        assert (y[n_prompt - 1:n] != -1).all()
        # ...and padding carries no loss either.
        assert (y[n:] == -1).all()
        assert b["x"][i, :n].tolist() == item.x and (b["x"][i, n:] == 0).all()
    assert b["post"].tolist() == [0.0, 1.0, 1.0] and b["post"].dtype == torch.float32
    q_len = [len(it.q_ids) for it in items]
    assert b["q_ids"].shape == (3, max(q_len)) and b["features"].shape == (3, N_FEATURES)
    assert b["q_mask"].sum(1).tolist() == q_len and b["q_mask"].dtype == torch.bool
    for i, n in enumerate(q_len):  # right-padded question: real tokens first
        assert b["q_mask"][i, :n].all() and not b["q_mask"][i, n:].any()


def test_perception_inputs_from_raw_questions():
    rows, feats = zip(*(question_inputs(TOK, q) for q in ["a  b\nc", "xy"]))
    assert rows[0] == TOK.encode("a b c")  # whitespace-normalised, as in training
    q_ids, q_mask, f = perception_inputs(rows, feats, "cpu")
    assert q_ids.shape == q_mask.shape == (2, 5) and f.shape == (2, N_FEATURES)
    assert q_mask.tolist()[1] == [True, True, False, False, False]


def test_pad_left_layout():
    rows = [[5, 6, 7], [8], [1, 2]]
    idx, mask = pad_left(rows, 99, "cpu")
    assert idx.tolist() == [[5, 6, 7], [99, 99, 8], [99, 1, 2]]  # every prompt's last token in the last column
    assert mask.tolist() == [[True, True, True], [False, False, True], [False, True, True]]
    assert idx.dtype == torch.long and mask.dtype == torch.bool


# ------------------------------------------------------------------------------------------------- data order

def test_batch_indices_deterministic_from_seed_and_step():
    assert batch_indices(50, 3, 7, 8) == batch_indices(50, 3, 7, 8)
    assert batch_indices(50, 3, 7, 8) != batch_indices(50, 4, 7, 8)  # the seed matters
    assert batch_indices(50, 3, 7, 8) != batch_indices(50, 3, 8, 8)  # so does the step
    assert all(0 <= i < 50 for i in batch_indices(50, 3, 123, 8))


@pytest.mark.parametrize("n,size", [(40, 8), (37, 8), (10, 16), (5, 3)])
def test_epochs_are_permutations(n, size):
    """Concatenated batches = one permutation of range(n) per epoch: every example once per epoch, even when the
    batch size does not divide n (a batch then spans two epochs) or exceeds it."""
    steps = 4 * n // size + 3
    stream = [i for it in range(steps) for i in batch_indices(n, 11, it, size)]
    assert len(stream) == steps * size
    for e in range(len(stream) // n):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
    assert stream[:n] != list(range(n))  # actually shuffled
    assert stream[:n] != stream[n:2 * n]  # a fresh permutation each epoch


def _lengths(n):  # lengths with ties and no order of their own: 40 .. 199
    return [40 + (i * 37) % 160 for i in range(n)]


@pytest.mark.parametrize("n,size", [(40, 8), (37, 8), (10, 16), (5, 3), (61, 6)])
def test_length_batches_keep_epochs_permutations_and_resume(n, size):
    """length_batches: every example once per epoch (a batch may span two epochs, as in the default order), batch
    it a function of (seed, it) alone, and a different order per seed and per epoch."""
    lengths = _lengths(n)
    steps = 4 * n // size + 3
    stream = [i for it in range(steps) for i in batch_indices(n, 11, it, size, lengths)]
    for e in range(len(stream) // n):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
    assert batch_indices(n, 11, 3, size, lengths) == stream[3 * size:4 * size]  # resumed: only the step
    if n >= 2 * size:  # (with fewer, an epoch is one or two batches, sorted by length whatever the seed)
        assert stream[:n] != stream[n:2 * n] and stream != [i for it in range(steps)
                                                               for i in batch_indices(n, 12, it, size, lengths)]


def test_length_batches_group_similar_lengths():
    """Whole batches inside an epoch hold consecutive lengths of the sorted epoch (here distinct lengths 40 ..
    199 by 1, batch 8: a spread of at most 7 per whole batch), dealt out in a shuffled order; the default order
    mixes them."""
    n, size, lengths = 160, 8, _lengths(160)
    assert sorted(lengths) == list(range(40, 200))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b)
              for b in (batch_indices(n, 0, it, size, lengths) for it in range(n // size))]
    assert max(spread) == 7
    default = [max(lengths[i] for i in b) - min(lengths[i] for i in b)
               for b in (batch_indices(n, 0, it, size) for it in range(n // size))]
    assert min(default) > 7
    firsts = [lengths[batch_indices(n, 0, it, size, lengths)[0]] for it in range(n // size)]
    assert firsts != sorted(firsts)  # not shortest first: the batches come in a random order
    order = length_order(lengths, 0, 1, size)  # epoch 1 starts on a batch boundary too (160 = 20 x 8)
    assert sorted(order) == list(range(n)) and order == [i for it in range(20, 40)
                                                          for i in batch_indices(n, 0, it, size, lengths)]


def test_resumed_order_needs_only_the_step():
    """Batch it is the same slice of the same stream whether or not earlier batches were drawn in this process."""
    stream = [i for it in range(10) for i in batch_indices(30, 0, it, 7)]
    assert batch_indices(30, 0, 6, 7) == stream[42:49]


def test_micro_batch_one_process_accum2_equals_two_processes_accum1():
    indices = batch_indices(100, 5, 3, 16)  # global batch of 16 = batch_size 8 x (accum x world) 2
    one_proc = [micro_batch(indices, m, rank=0, world=1, batch_size=8) for m in range(2)]
    two_procs = [micro_batch(indices, 0, rank=r, world=2, batch_size=8) for r in range(2)]
    assert one_proc == two_procs
    assert one_proc[0] + one_proc[1] == indices  # disjoint chunks that cover the global batch


def test_micro_batch_chunks_cover_the_global_batch():
    world, accum, bs = 2, 3, 4
    indices = batch_indices(1000, 0, 0, bs * world * accum)
    seen = [micro_batch(indices, m, r, world, bs) for m in range(accum) for r in range(world)]
    assert all(len(c) == bs for c in seen)
    assert sorted(i for c in seen for i in c) == sorted(indices)
    # Same chunks as one process with accum * world micro-steps, in micro-step-major order.
    assert seen == [micro_batch(indices, k, 0, 1, bs) for k in range(world * accum)]

"""From examples to tensors: training batches (right-padded, prompt masked) and prompt batches (left-padded,
for batched generation), plus the perception module's inputs, and the deterministic data order.

The data order is a pure function of (seed, iteration), so a resumed run needs only the iteration number to
see exactly the batches the uninterrupted run would have seen, and each DDP rank can pick its own share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .formats import encode, make_xy, normalize_ws
from .perception import question_features


@dataclass
class TrainItem:
    x: list[int]          # input ids: prompt + target, minus the last token
    y: list[int]          # next-token targets, -1 on prompt positions
    q_ids: list[int]      # the bare question's ids: what the perception module reads
    features: list[float]
    post: int             # 1 if this example is formatted answer-first (post), else 0


def question_inputs(tok, question: str):
    return tok.encode(normalize_ws(question)), question_features(normalize_ws(question))


def encode_items(tok, examples, modes) -> list[TrainItem]:
    """One TrainItem per example, formatted in modes[i] ("pre" or "post")."""
    items = []
    for ex, mode in zip(examples, modes, strict=True):
        x, y = make_xy(*encode(tok, ex, mode))
        q_ids, feats = question_inputs(tok, ex.question)
        items.append(TrainItem(x, y, q_ids, feats, int(mode == "post")))
    return items


def pad_right(rows, value, device):
    T = max(len(r) for r in rows)
    out = torch.full((len(rows), T), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out.to(device)


def pad_left(rows, value, device):
    """Left-padding keeps every prompt's last token in the last column, where generation continues."""
    T = max(len(r) for r in rows)
    out = torch.full((len(rows), T), value, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, T - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, T - len(r):] = True
    return out.to(device), mask.to(device)


def perception_inputs(q_rows, feat_rows, device):
    """(q_ids (B, Tq), q_mask (B, Tq), features (B, F)); q_ids right-padded with 0 and masked."""
    q_ids = pad_right(q_rows, 0, device)
    q_mask = pad_right([[1] * len(r) for r in q_rows], 0, device).bool()
    return q_ids, q_mask, torch.tensor(feat_rows, dtype=torch.float32, device=device)


def collate(items: list[TrainItem], device) -> dict:
    """Right-pad a micro-batch. Padding positions get target -1, so they carry no loss."""
    q_ids, q_mask, feats = perception_inputs([it.q_ids for it in items], [it.features for it in items], device)
    return dict(
        x=pad_right([it.x for it in items], 0, device),            # (B, T)
        y=pad_right([it.y for it in items], -1, device),           # (B, T)
        q_ids=q_ids, q_mask=q_mask, features=feats,                # (B, Tq), (B, Tq), (B, F)
        post=torch.tensor([it.post for it in items], dtype=torch.float32, device=device),  # (B,)
    )


def batch_indices(n: int, seed: int, it: int, size: int, lengths: list[int] | None = None) -> list[int]:
    """Example indices of global batch number `it`: consecutive slices of a fresh permutation per epoch, each
    drawn from (seed, epoch) alone; with lengths (one per example), length_order's permutation instead."""
    start = it * size
    out = []
    while len(out) < size:
        epoch, offset = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n) if lengths is None else \
            np.array(length_order(lengths, seed, epoch, size), dtype=np.int64)
        out.extend(perm[offset:offset + size - len(out)].tolist())
    return out


def length_order(lengths: list[int], seed: int, epoch: int, size: int) -> list[int]:
    """An epoch whose global batches hold examples of similar length (little padding): its permutation sorted by
    length (ties keep their random order), cut where batches start, the whole batches dealt out in an order drawn
    from (seed, epoch). The batch that spans two epochs gets the longest of one, the shortest of the next."""
    n = len(lengths)
    by_len = sorted(np.random.default_rng([seed, epoch]).permutation(n).tolist(), key=lengths.__getitem__)
    head = -epoch * n % size  # positions of this epoch in the batch the previous epoch began
    body = [by_len[s:s + size] for s in range(head, n, size)]
    tail = body.pop() if body and len(body[-1]) < size else []
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(body)).tolist()
    return by_len[:head] + [i for k in order for i in body[k]] + tail


def micro_batch(indices: list[int], micro_step: int, rank: int, world: int, batch_size: int) -> list[int]:
    """The share of one rank at one gradient-accumulation step. Chunk (micro_step * world + rank) of the
    global batch: one process with grad_accum=2 sees the same chunks as two processes with grad_accum=1."""
    k = micro_step * world + rank
    return indices[k * batch_size:(k + 1) * batch_size]

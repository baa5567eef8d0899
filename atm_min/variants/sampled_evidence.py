"""The core, with sampled evidence beside the greedy one (--label_samples=N, for --label_rule=pass_rate): each fold
student also answers every held-out question N times at --label_temperature, and the evidence adds the fraction of
right answers (AdaptThink labels from 16 samples a question).
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluate import Answering, answer_records, generate_texts


def pass_rates(student, tok, held_out, device, samples: int, temperature: float, seed: int, batch_size=256,
               max_new_tokens=96, ctx=None) -> dict:
    """{"pass_rate": [fraction of right sampled answers per question], "samples", "temperature"}. The answers are
    drawn from a torch.Generator seeded with `seed`, so they repeat exactly."""
    gen = torch.Generator(device=device).manual_seed(seed)
    right = np.zeros(len(held_out))
    for _ in range(samples):
        sample = dict(temperature=temperature, generator=gen)
        how = Answering(device, batch_size, max_new_tokens, ctx=ctx, sample=sample)
        outs = generate_texts(student, tok, [ex.question for ex in held_out], how)
        right += [r["correct"] for r in answer_records(held_out, outs)]
    return dict(pass_rate=(right / samples).tolist(), samples=samples, temperature=temperature)

"""The core, with a router instead of one adaptive student (--decider=router, our name): a small classifier over
the question sends it to one of two students, the pre and the post baseline, each answering in its own mode.

The router is the perception module without a soft prompt, trained on the same k-fold labels; having no
student of its own, it reads the question through its own token embeddings.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import Answering, generate_answers, post_probabilities
from ..formats import MODES
from ..learner import Learner
from ..perception import Perception, perceive


class Router(Perception):
    """The perception's classifier alone: no soft prompt (prefix None), its own token embeddings."""
    prompt = "none"

    def __init__(self, vocab_size: int, n_embd: int, n_prefix: int = 4, n_layer: int = 1, n_head: int = 4):
        super().__init__(n_embd, n_prefix, n_layer, n_head)
        del self.out_proj  # it writes no soft prompt
        self.wte = nn.Embedding(vocab_size, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)

    def embed(self, student, q_ids):
        return self.wte(q_ids)  # its own table, trained with it

    def forward(self, q_emb, q_mask, features, return_att=False):
        x, atts = self.read(q_emb, q_mask, features)  # (B, P, C)
        post_logit = self.mode_head(x.mean(dim=1)).squeeze(-1)  # (B,)
        return (None, post_logit, atts) if return_att else (None, post_logit)


class RouterLearner(Learner):
    """A Router alone (student None): only its classifier learns, from the k-fold labels."""

    def __init__(self, router: Router):
        super().__init__(None, router, aux_weight=1.0)  # its loss is the classifier's alone

    def forward(self, x, y, q_ids, q_mask, features, post):
        _, post_logit = perceive(self.perception, None, q_ids, q_mask, features)
        aux = F.binary_cross_entropy_with_logits(post_logit.float(), post)
        return aux, torch.zeros_like(aux), aux


def routed_answers(router, specialists: dict, tok, examples, device, batch_size=256, max_new_tokens=96, ctx=None):
    """The router's classifier sends each question to specialists["post"] (the post baseline) where p(answer
    first) > 0.5, else to specialists["pre"]; each answers its share in its own mode. Records as
    generate_answers', in input order, p_post the router's."""
    p = post_probabilities(None, router, tok, examples, device)
    records = [None] * len(examples)
    for mode in MODES:
        rows = [i for i, x in enumerate(p) if (x > 0.5) == (mode == "post")]
        if rows:
            outs = generate_answers(specialists[mode], tok, [examples[i] for i in rows],
                                    Answering(device, batch_size, max_new_tokens, ctx=ctx))
            for i, r in zip(rows, outs):
                records[i] = {**r, "p_post": p[i]}
    return records

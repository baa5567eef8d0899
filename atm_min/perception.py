"""The perception module of adaptive thinking: it reads the question and writes a soft prompt.

    question tokens --wte--> (B, T, C) ----------------------+
    simple features (word count, ...) --Linear--> (B, 1, C) -+--> keys/values (B, T+1, C)
    P learnable query vectors (P, C) --cross-attention + MLP (x n_layer)--> (B, P, C)
        --> soft prompt (B, P, C), passed to the GPT student as prefix_embeds: it steers the student to
            think first (pre) or answer first (post)
        --> mean over P --> one logit: the probability of answering first, trained on the k-fold labels

The paper describes the module only at this level; the rest is our choice: the sizes (TrainConfig n_prefix,
perc_layers, perc_heads), the weight of the classification loss (TrainConfig aux_weight), and, written here, the
feature set and its scale (question_features) and the soft prompt's initial size (out_proj's init).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

N_FEATURES = 3


def question_features(question: str) -> list[float]:
    """Cheap surface cues of difficulty: word count, character count and how many numbers appear.
    log1p keeps them in a small range whatever the dataset (a 3-word question and a 300-word one)."""
    words = question.split()
    n_numbers = sum(any(ch.isdigit() for ch in w) for w in words)
    return [math.log1p(len(words)) / 5, math.log1p(len(question)) / 5, math.log1p(n_numbers) / 5]


class CrossAttention(nn.Module):
    """Multi-head attention from P query vectors to a padded sequence, written out in full."""

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.q_proj = nn.Linear(n_embd, n_embd)
        self.kv_proj = nn.Linear(n_embd, 2 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, q_in, kv_in, key_mask):
        # q_in (B, P, C) queries; kv_in (B, S, C) question; key_mask (B, S) bool, False = padding
        B, P, C = q_in.shape
        S = kv_in.size(1)
        hs = C // self.n_head
        q = self.q_proj(q_in).view(B, P, self.n_head, hs).transpose(1, 2)  # (B, nh, P, hs)
        k, v = self.kv_proj(kv_in).split(C, dim=2)
        k = k.view(B, S, self.n_head, hs).transpose(1, 2)  # (B, nh, S, hs)
        v = v.view(B, S, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, P, S)
        att = att.masked_fill(~key_mask[:, None, None, :], float("-inf"))  # never attend to padding
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, P, C)  # (B, P, C)
        return self.c_proj(y), att  # att (B, nh, P, S): each query's weights over the keys, sum 1


class PerceptionBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_q = nn.LayerNorm(n_embd)
        self.ln_kv = nn.LayerNorm(n_embd)
        self.attn = CrossAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x, kv, key_mask):
        a, att = self.attn(self.ln_q(x), self.ln_kv(kv), key_mask)
        x = x + a  # residual around cross-attention
        x = x + self.mlp(self.ln_2(x))  # residual around the MLP
        return x, att


class Perception(nn.Module):
    def __init__(self, n_embd: int, n_prefix: int = 4, n_layer: int = 1, n_head: int = 4):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_prefix, n_embd) * 0.02)  # the P learnable query tokens
        self.feat_proj = nn.Linear(N_FEATURES, n_embd)  # features become one extra key/value "token"
        self.blocks = nn.ModuleList([PerceptionBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        # GPT-2's init (std 0.02, zero bias) does NOT make the prompt small: after ln_f a query's output has norm
        # ~sqrt(C), so a soft-prompt vector starts ~sqrt(C) times as long as a token embedding (5.7x at C = 32,
        # docs/walkthrough.md). Loud from the start, our choice: the student cannot ignore it while it learns.
        self.out_proj = nn.Linear(n_embd, n_embd)  # the queries' outputs -> the soft prompt
        nn.init.normal_(self.out_proj.weight, std=0.02)
        nn.init.zeros_(self.out_proj.bias)
        self.mode_head = nn.Linear(n_embd, 1)  # logit of "answer first" (post-thinking)

    def embed(self, student, q_ids):
        """The question's token embeddings, read through the student's own table (`get_input_embeddings`), so the
        perception sees the student's vocabulary. Detached: the classification loss on (noisy) k-fold labels
        must not pull the student's vocabulary around; the student's own loss still trains the perception
        through the soft prompt."""
        return student.get_input_embeddings()(q_ids).detach()  # (B, T, C)

    def read(self, q_emb, q_mask, features):
        """The P queries read the question: x (B, P, C), and each block's attention weights (see forward)."""
        features = features.to(q_emb.dtype)  # the features arrive as float32 whatever the model's dtype
        kv = torch.cat([self.feat_proj(features)[:, None, :], q_emb], dim=1)  # (B, 1+T, C)
        kv_mask = torch.cat([torch.ones_like(q_mask[:, :1]), q_mask], dim=1)  # (B, 1+T): the features, real tokens
        x = self.queries.expand(q_emb.size(0), -1, -1)  # (B, P, C)
        atts = []
        for block in self.blocks:
            x, att = block(x, kv, kv_mask)
            atts.append(att)
        return self.ln_f(x), atts

    def forward(self, q_emb, q_mask, features, return_att=False):
        """q_emb (B, T, C): the student's token embeddings of the question (not the template);
        q_mask (B, T) bool, False at padding; features (B, N_FEATURES).
        Returns prefix (B, P, C) for the student and post_logit (B,); with return_att=True also a list with one
        (B, n_head, P, 1+T) tensor per block: each query's attention weights, key 0 = the feature "token",
        keys 1.. = the question tokens (each row sums to 1; masked keys get 0)."""
        x, atts = self.read(q_emb, q_mask, features)  # (B, P, C)
        post_logit = self.mode_head(x.mean(dim=1)).squeeze(-1)  # (B,)
        prefix = self.out_proj(x)  # (B, P, C): any function of the question
        return (prefix, post_logit, atts) if return_att else (prefix, post_logit)


def perceive(perception: Perception, student, q_ids, q_mask, features, return_att=False):
    """Run the perception on a batch of questions: (soft prompt (B, P, C), logit of answering first (B,))."""
    q_emb = perception.embed(student, q_ids)
    return perception(q_emb, q_mask, features, return_att=return_att)

"""The perception module of adaptive thinking: it reads the question and writes a soft prompt.

    question tokens --wte--> (B, T, C) ----------------------+
    simple features (word count, ...) --Linear--> (B, 1, C) -+--> keys/values (B, T+1, C)
    P learnable query vectors (P, C) --cross-attention + MLP (x n_layer)--> (B, P, C)
        --> soft prompt (B, P, C), passed to the GPT student as prefix_embeds: it steers the student to
            think first (pre) or answer first (post)
        --> mean over P --> one logit: the probability of answering first, trained on the k-fold labels

The paper describes the module only at this level; the sizes, the feature set, the output scale and the
auxiliary classification loss are our choices (all in TrainConfig).
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

    def forward(self, q_in, kv_in, key_mask, return_att=False):
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
        y = self.c_proj(y)
        return (y, att) if return_att else y  # att (B, nh, P, S): each query's weights over the keys, sum 1


class PerceptionBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_q = nn.LayerNorm(n_embd)
        self.ln_kv = nn.LayerNorm(n_embd)
        self.attn = CrossAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x, kv, key_mask, return_att=False):
        a, att = self.attn(self.ln_q(x), self.ln_kv(kv), key_mask, return_att=True)
        x = x + a  # residual around cross-attention
        x = x + self.mlp(self.ln_2(x))  # residual around the MLP
        return (x, att) if return_att else x


PERCEPTION_INPUTS = ("both", "features", "tokens")


PROMPT_KINDS = ("free", "gated", "label", "none")


class Perception(nn.Module):
    def __init__(self, n_embd: int, n_prefix: int = 4, n_layer: int = 1, n_head: int = 4, inputs: str = "both",
                 prompt: str = "free"):
        super().__init__()
        # inputs: what the queries may attend to -- "both" (question tokens + the feature "token"), "features"
        # (the feature token only) or "tokens" (the question tokens only). The last two are ablations (our choice).
        if inputs not in PERCEPTION_INPUTS:
            raise ValueError(f"unknown perception inputs {inputs!r}: choose one of {PERCEPTION_INPUTS}")
        # prompt: what the soft prompt may carry (our choice). "free": any function of the question -- the P
        # query outputs, projected. "gated": only the decision -- a mix of two learned prompts, one per mode,
        # weighted by p(answer first), so the student cannot read anything else about the question from it; the
        # student's loss still trains the classifier through the weight. "label": the same mix, but the weight
        # is the classifier's alone (trained on the k-fold labels only; the student's loss does not reach it).
        # "none": no soft prompt at all, only the classifier (the router, below).
        if prompt not in PROMPT_KINDS:
            raise ValueError(f"unknown soft prompt kind {prompt!r}: choose one of {PROMPT_KINDS}")
        self.inputs, self.prompt = inputs, prompt
        self.queries = nn.Parameter(torch.randn(n_prefix, n_embd) * 0.02)  # the P learnable query tokens
        self.feat_proj = nn.Linear(N_FEATURES, n_embd)  # features become one extra key/value "token"
        self.blocks = nn.ModuleList([PerceptionBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        # The soft prompt enters the student beside its token embeddings (std ~0.02 at init for GPT-2 style
        # weights), so it starts small: a prefix of norm ~sqrt(C) would drown the question at first.
        if prompt == "free":
            self.out_proj = nn.Linear(n_embd, n_embd)
            nn.init.normal_(self.out_proj.weight, std=0.02)
            nn.init.zeros_(self.out_proj.bias)
        elif prompt != "none":  # row 0: the think-first prompt, row 1: the answer-first prompt
            self.mode_prompts = nn.Parameter(torch.randn(2, n_prefix, n_embd) * 0.02)
        self.mode_head = nn.Linear(n_embd, 1)  # logit of "answer first" (post-thinking)

    def forward(self, q_emb, q_mask, features, return_att=False):
        """q_emb (B, T, C): the student's token embeddings of the question (not the template);
        q_mask (B, T) bool, False at padding; features (B, N_FEATURES).
        Returns prefix (B, P, C) for the student and post_logit (B,); with return_att=True also a list with one
        (B, n_head, P, 1+T) tensor per block: each query's attention weights, key 0 = the feature "token",
        keys 1.. = the question tokens (each row sums to 1; masked keys get 0)."""
        B = q_emb.size(0)
        features = features.to(q_emb.dtype)  # the features arrive as float32 whatever the model's dtype
        kv = torch.cat([self.feat_proj(features)[:, None, :], q_emb], dim=1)  # (B, 1+T, C)
        feat_mask = torch.full((B, 1), self.inputs != "tokens", dtype=torch.bool, device=q_mask.device)
        tok_mask = q_mask & (self.inputs != "features")  # an ablation hides one kind of input from the queries
        kv_mask = torch.cat([feat_mask, tok_mask], dim=1)  # (B, 1+T)
        x = self.queries.expand(B, -1, -1)  # (B, P, C)
        atts = []
        for block in self.blocks:
            x, att = block(x, kv, kv_mask, return_att=True)
            atts.append(att)
        x = self.ln_f(x)
        post_logit = self.mode_head(x.mean(dim=1)).squeeze(-1)  # (B,)
        if self.prompt == "none":
            prefix = None
        elif self.prompt == "free":
            prefix = self.out_proj(x)  # (B, P, C)
        else:  # "gated": the student's loss reaches the classifier through the mixing weight; "label": it does not
            w = torch.sigmoid(post_logit if self.prompt == "gated" else post_logit.detach())[:, None, None]  # (B,1,1)
            prefix = (1 - w) * self.mode_prompts[0] + w * self.mode_prompts[1]  # (B, P, C)
        return (prefix, post_logit, atts) if return_att else (prefix, post_logit)


class Router(Perception):
    """The decider "router" (our name): a small classifier over the question, in front of two students, the pre
    and the post baseline (evaluate.routed_answers). It is the perception module without a soft prompt, trained
    on the same k-fold labels; having no student of its own, it reads the question through its own embeddings."""

    def __init__(self, vocab_size: int, n_embd: int, n_prefix: int = 4, n_layer: int = 1, n_head: int = 4,
                 inputs: str = "both"):
        super().__init__(n_embd, n_prefix, n_layer, n_head, inputs, prompt="none")
        self.wte = nn.Embedding(vocab_size, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)


def soft_prompt(perception: Perception, student, q_ids, q_mask, features, return_att=False):
    """Run the perception on a batch of questions. It reads the question through the student's own token
    embedding table (`get_input_embeddings`), so it sees the same vocabulary the student does. The embeddings are detached: the
    perception's classification loss on (noisy) k-fold labels must not pull the student's vocabulary around;
    the student's own loss still trains the perception through the soft prompt. A Router reads (and trains)
    its own embeddings, and its prefix is None."""
    if isinstance(perception, Router):
        return perception(perception.wte(q_ids), q_mask, features, return_att=return_att)
    q_emb = student.get_input_embeddings()(q_ids).detach()  # (B, Tq, C)
    return perception(q_emb, q_mask, features, return_att=return_att)

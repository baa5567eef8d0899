"""Look inside one decision: a question followed through every stage, with the numbers each stage produces.

    python sample.py --trace --question "Is 74 even?"

trace_question() computes everything (tests read its numbers); format_trace() prints it, one stage per block,
each headed by the file and function that does the work:

    prompt        the text the student continues, and its token ids and pieces
    features      what the perception reads: the bare question's tokens and three surface features
    attention     each perception query's attention over the feature "token" and the question tokens
    soft prompt   the P vectors handed to the student, next to the student's own token-embedding norms
    p(answer first)  the perception's classifier
    first words   the student's probability of starting with the pre marker vs the post marker, with and
                  without the soft prompt: what the soft prompt does to the decision, in numbers
    generation    greedy decoding with the KV cache, each token with its probability and the runner-up
    answer        the generated text read back into (mode, answer, rationale)

Students without a perception (pre/post baselines) skip the perception's stages.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .. import engine
from ..answers import parse_output
from ..batches import perception_inputs, question_inputs
from ..formats import MODE_MARKS, format_prompt, normalize_ws
from ..perception import perceive

STAGES = {  # stage -> where it happens (printed in each stage's header)
    "prompt": "atm_min/formats.py format_prompt, {tok_file} {tok_cls}.encode",  # the tokenizer's own code
    "features": "atm_min/batches.py question_inputs, atm_min/perception.py question_features",
    "attention": "atm_min/perception.py CrossAttention.forward (Perception.forward(..., return_att=True))",
    "soft prompt": "atm_min/perception.py Perception.forward (out_proj), perceive",
    "p(answer first)": "atm_min/perception.py Perception.forward (mode_head)",
    "first words": "{file} {cls}.forward",  # the student's own file and class: GPT, or the Llama student
    "generation": "atm_min/engine.py generate (KV cache, {cls}.hidden_states), then {cls}.forward for each "
                  "token's probability",
    "answer": "atm_min/answers.py parse_output",
}
PERCEPTION_STAGES = ("features", "attention", "soft prompt", "p(answer first)")
FEATURE_NAMES = ("log1p(words)/5", "log1p(chars)/5", "log1p(numbers)/5")  # perception.question_features
SHADES = " .:-=+*#%@"  # heat-strip levels, weakest to strongest


def piece(tok, i: int) -> str:
    """The text of one token id (the stop token by its name). A byte of a multi-byte character shows as U+FFFD."""
    if i == tok.eot_id:  # the stop token as its tokenizer names it (GPT-2's <|endoftext|>, SmolLM2's <|im_end|>)
        backend = getattr(tok, "backend", None)  # a Hugging Face tokenizer (machinery/hf_tokenizer.py)
        return backend.id_to_token(i) if backend is not None else "<|endoftext|>"
    return tok.enc.decode_single_token_bytes(i).decode("utf-8", errors="replace")


def _source(obj) -> str:
    """The repo file that defines obj's class (atm_min/model.py for GPT): what the stage headers name."""
    return type(obj).__module__.replace(".", "/") + ".py"


def _show(text: str) -> str:
    """One printable cell per character: a newline or tab would break the aligned rows."""
    return text.replace("\n", "\u23ce").replace("\t", "\u21e5")


@torch.no_grad()
def _marker_probs(student, prompt_ids, prefix, mark_ids, device):
    """(p(first marker token), p(whole marker)) after the prompt: the marker teacher-forced, one forward."""
    seq = torch.tensor([prompt_ids + mark_ids], device=device)  # (1, T + M)
    logits, _ = student(seq[:, :-1], prefix_embeds=prefix)  # (1, T + M - 1, V)
    logp = F.log_softmax(logits[0, len(prompt_ids) - 1:].float(), dim=-1)  # (M, V): the positions that predict it
    lp = logp[torch.arange(len(mark_ids)), torch.tensor(mark_ids, device=device)]  # (M,)
    return lp[0].exp().item(), lp.sum().exp().item()


@torch.no_grad()
def _generate(student, tok, prompt_ids, prefix, mode, max_new_tokens, explain, device):
    """Greedy generation (after the mode's marker when forced) and, per token, its probability and the
    runner-up. The probabilities come from one forward over the finished sequence: the same numbers greedy
    decoding saw, because the KV cache changes how they are computed, not what they are."""
    forced = tok.encode(MODE_MARKS[mode]) if mode else []
    stop_ids = [tok.eot_id] if explain else [tok.eot_id] + tok.newline_ids
    idx = torch.tensor([prompt_ids + forced], device=device)
    t0 = time.perf_counter()
    out = engine.generate(student, idx, engine.GenSettings(max(0, max_new_tokens - len(forced)), stop_ids=stop_ids),
                          prefix_embeds=prefix)[0]
    ms = 1000 * (time.perf_counter() - t0)
    new = forced + out
    tokens = []
    if new:
        seq = torch.tensor([prompt_ids + new], device=device)
        logits, _ = student(seq[:, :-1], prefix_embeds=prefix)
        probs = F.softmax(logits[0, len(prompt_ids) - 1:].float(), dim=-1)  # (len(new), V)
        for j, t in enumerate(new):
            top_p, top_i = probs[j].topk(2)
            other = top_i[1] if top_i[0].item() == t else top_i[0]  # the likeliest token that was not chosen
            tokens.append(dict(id=t, piece=piece(tok, t), p=probs[j, t].item(), forced=j < len(forced),
                               other=piece(tok, other.item()), p_other=probs[j, other].item()))
    text = tok.decode(new)
    mode_read, answer, rationale = parse_output(text)
    return dict(mode=mode, tokens=tokens, text=text, new_tokens=len(new), ms=ms, read_mode=mode_read,
                answer=answer, rationale=rationale)


@torch.no_grad()
def trace_question(student, perception, tok, question: str, device="cpu", modes=(None,), max_new_tokens=96,
                   explain=False, routing="soft") -> dict:
    """Every stage's numbers for one question. modes: the generations to run, None = the student's own choice,
    "pre"/"post" = forced (see evaluate.generate_texts). routing="hard": a student trained with routing="hard",
    which never saw a soft prompt: its own choice is the perception's classifier's, forced with the marker.
    Returns a dict (format_trace prints it)."""
    student.eval()
    prompt = format_prompt(question)
    prompt_ids = tok.encode(prompt)
    t = dict(question=normalize_ws(question), prompt=prompt, prompt_ids=prompt_ids,
             prompt_pieces=[piece(tok, i) for i in prompt_ids], perception=perception is not None,
             tokenizer=tok.name, routing=routing,
             file=_source(student), cls=type(student).__name__, tok_file=_source(tok), tok_cls=type(tok).__name__)
    wte = student.get_input_embeddings().weight.float()
    vocab_norms = wte.norm(dim=-1)  # (V,)
    t["wte_norm_median"] = vocab_norms.median().item()
    t["prompt_wte_norm_mean"] = vocab_norms[torch.tensor(prompt_ids, device=vocab_norms.device)].mean().item()
    prefix = None
    if perception is not None:
        perception.eval()
        q_ids, feats = question_inputs(tok, question)
        prefix, logit, atts = perceive(perception, student, *perception_inputs([q_ids], [feats], device),
                                       return_att=True)
        t.update(q_ids=q_ids, q_pieces=[piece(tok, i) for i in q_ids], features=feats,
                 att=[a[0].float().cpu() for a in atts],  # per block (n_head, P, 1+T), key 0 = the features
                 prefix_norms=[] if prefix is None else prefix[0].float().norm(dim=-1).tolist(), p_post=torch.sigmoid(logit.float()).item(),
                 inputs=getattr(perception, "inputs", "both"), n_queries=perception.queries.size(0))
    # The student's first words, teacher-forced: how likely is each format's marker right after the prompt?
    t["marks"] = {}
    prefixes = {"with": prefix, "without": None} if prefix is not None else {"without": None}
    for name, pre in prefixes.items():
        t["marks"][name] = {}
        for mode, mark in MODE_MARKS.items():
            ids = tok.encode(mark)
            fits = (0 if pre is None else pre.size(1)) + len(prompt_ids) + len(ids) - 1 <= student.config.block_size
            t["marks"][name][mode] = _marker_probs(student, prompt_ids, pre, ids, device) if fits else None
    if routing == "hard":  # the classifier's choice, made before the student writes anything
        modes = [("post" if t["p_post"] > 0.5 else "pre") if m is None else m for m in modes]
    t["generations"] = [_generate(student, tok, prompt_ids, prefix, m, max_new_tokens, explain, device)
                        for m in modes]
    return t


# ------------------------------------------------------------------------------------------------------ printing

def _header(n: int, stage: str, t: dict) -> str:
    """t: trace_question's dict, which names the student's and the tokenizer's file and class."""
    return f"\n== {n}. {stage}  [{STAGES[stage].format(**t)}]"


def _strip(weights, widths) -> str:
    """A text heat strip: one shade per key, repeated over the key's printed width; scaled to the row's
    largest weight, so the strip shows where a query looks (the numbers beside it say how much)."""
    top = max(max(weights), 1e-12)
    return "".join(SHADES[min(len(SHADES) - 1, round(w / top * (len(SHADES) - 1)))] * n
                   for w, n in zip(weights, widths))


def format_trace(t: dict) -> str:
    lines = [f"trace of: {t['question']}"]
    n = 0

    def stage(name):
        nonlocal n
        n += 1
        lines.append(_header(n, name, t))

    stage("prompt")
    lines.append(f"  text:   {t['prompt']!r}")
    lines.append(f"  tokens: {len(t['prompt_ids'])} ({t['tokenizer']} tokenizer)")
    lines.append("  ids:    " + " ".join(str(i) for i in t["prompt_ids"]))
    lines.append("  pieces: " + "|".join(_show(p) for p in t["prompt_pieces"]))

    if t["perception"]:
        stage("features")
        lines.append(f"  question tokens the perception reads (no template): {len(t['q_ids'])}")
        lines.append("  " + ", ".join(f"{name} = {v:.3f}" for name, v in zip(FEATURE_NAMES, t["features"])))

        stage("attention")
        hidden = {"features": "  (inputs='features': the question tokens are hidden from the queries)",
                  "tokens": "  (inputs='tokens': the feature token is hidden from the queries)"}.get(t["inputs"])
        if hidden:
            lines.append(hidden)
        widths = [len(_show(p)) for p in t["q_pieces"]]
        for b, att in enumerate(t["att"]):
            mean = att.mean(dim=0)  # (P, 1+T): the heads' average; each row still sums to 1
            lines.append(f"  block {b}, mean over {att.size(0)} heads; feat = the feature \"token\", "
                         f"then the question's tokens (shade: weight / the row's largest)")
            lines.append(f"{'':<11}{'feat':>5}  {''.join(_show(p) for p in t['q_pieces'])}")
            for p, row in enumerate(mean.tolist()):
                feat, toks = row[0], row[1:]
                best = sorted(range(len(toks)), key=lambda i: -toks[i])[:3]
                tops = ", ".join(f"{_show(t['q_pieces'][i])!r}@{i} {toks[i]:.2f}" for i in best)
                lines.append(f"  query {p:<3}{feat:>5.2f}  {_strip(toks, widths)}  top: {tops}")

        stage("soft prompt")
        norms = ", ".join(f"{x:.2f}" for x in t["prefix_norms"])
        lines.append(f"  {len(t['prefix_norms'])} vectors placed before the prompt; their norms: {norms}" if norms
                     else "  none: this perception writes no soft prompt (routing='hard'), it only classifies")
        lines.append(f"  token embeddings (rows of get_input_embeddings()) for scale: median over the vocabulary "
                     f"{t['wte_norm_median']:.2f}, mean over this prompt {t['prompt_wte_norm_mean']:.2f}")

        stage("p(answer first)")
        p = t["p_post"]
        lines.append(f"  sigmoid(mode_head(mean of the {t['n_queries']} query outputs)) = {p:.3f}: "
                     f"the perception expects the student to {'answer first' if p > 0.5 else 'think first'}")
        if t["routing"] == "hard":
            lines.append("  routing='hard': the student never saw the soft prompt; this classifier picks the mode "
                         "and the student is started with that mode's marker")

    stage("first words")
    lines.append("  probability that the student's output starts with each format's marker (teacher-forced):")
    cols = list(t["marks"])
    names = {"with": "with soft prompt", "without": "without soft prompt" if t["perception"] else "student"}
    lines.append(f"  {'':<18}" + "".join(f"{names[c]:>26}" for c in cols))
    for mode, mark in MODE_MARKS.items():
        cells = ""
        for c in cols:
            v = t["marks"][c][mode]
            cells += f"{'(no room)':>26}" if v is None else f"{v[1]:>12.4f} (1st tok {v[0]:.3f})"
        lines.append(f"  {mode:<4} {mark!r:<13}" + cells)
    if "with" in t["marks"] and all(t["marks"][c][m] for c in cols for m in MODE_MARKS):
        odds = {c: t["marks"][c]["post"][1] / max(t["marks"][c]["pre"][1], 1e-30) for c in cols}
        lines.append(f"  post/pre odds: {odds['with']:.3g} with the soft prompt, {odds['without']:.3g} without")

    stage("generation")
    for g in t["generations"]:
        how = "the student's own choice" if g["mode"] is None else \
            f"forced {g['mode']}: the prompt is followed by {MODE_MARKS[g['mode']]!r}"
        lines.append(f"  [{how}] greedy, {g['new_tokens']} tokens, {g['ms']:.1f} ms")
        lines.append(f"  {'step':>5} {'id':>6}  {'token':<14} {'p':>6}   runner-up")
        for j, k in enumerate(g["tokens"]):
            note = "  (forced)" if k["forced"] else ("  <- unsure" if k["p"] < 0.5 else "")
            lines.append(f"  {j:>5} {k['id']:>6}  {k['piece']!r:<14} {k['p']:>6.3f}   "
                         f"{k['other']!r} {k['p_other']:.3f}{note}")

    stage("answer")
    mode_names = {"pre": "think first (pre)", "post": "answer first (post)", None: "neither format"}
    for g in t["generations"]:
        lines.append(f"  [{'own choice' if g['mode'] is None else 'forced ' + g['mode']}] "
                     f"text: {g['text']!r}")
        lines.append(f"    mode: {mode_names[g['read_mode']]}; answer: "
                     f"{g['answer'] if g['answer'] is not None else '(none)'}; rationale: {g['rationale'] or '(none)'}")
    return "\n".join(lines)


def attention_maps(student, perception, tok, questions, device="cpu"):
    """[(question pieces, p(answer first), (P, 1+T) attention of the last block averaged over heads)]."""
    out = []
    with torch.no_grad():
        for q in questions:
            q_ids, feats = question_inputs(tok, q)
            _, logit, atts = perceive(perception, student, *perception_inputs([q_ids], [feats], device),
                                      return_att=True)
            out.append(([piece(tok, i) for i in q_ids], torch.sigmoid(logit.float()).item(),
                        atts[-1][0].float().mean(dim=0).cpu().numpy()))
    return out

"""Evaluation: the summary numbers, the table, and batched generation on a tiny random student."""

import pytest
import torch
from types import SimpleNamespace

from atm_min.machinery.tables import format_table
from atm_min.variants.hard_routing import classifier_modes, hard_routed_texts
from tiny import variant_perception
from atm_min import engine
from atm_min.engine import GenSettings
from atm_min.evaluate import (Answering, agreement, generate_answers, generate_texts, oracle_summary,
                              random_routing_summary, summarize, timed_answers)
from atm_min.labels import held_out_evidence
from atm_min.machinery.data import Example
from atm_min.model import GPT, GPTConfig
from atm_min.perception import Perception
from atm_min.tokenizer import byte_tokenizer

TOK = byte_tokenizer()




def rec(group, correct, mode, new_tokens):
    return dict(id=f"r{id(object())}", group=group, text="", mode=mode, correct=correct, new_tokens=new_tokens,
                p_post=None)


RECORDS = [
    rec("multistep/3", True, "pre", 30),
    rec("multistep/3", False, "post", 10),
    rec("multistep/5", True, "pre", 50),
    rec("direct/4", True, "post", 6),
    rec(None, False, None, 20),  # no group: counted overall only
]


def test_summarize_numbers():
    s = summarize(RECORDS, 12.5)
    assert s["n"] == 5 and s["accuracy"] == pytest.approx(3 / 5)
    assert s["post_fraction"] == pytest.approx(2 / 5)
    assert s["avg_new_tokens"] == pytest.approx((30 + 10 + 50 + 6 + 20) / 5)
    assert s["ms_per_question"] == 12.5
    g = s["by_group"]
    # both levels of detail: "multistep/3" is also counted under "multistep"
    assert set(g) == {"multistep", "multistep/3", "multistep/5", "direct", "direct/4"}
    assert g["multistep"] == dict(accuracy=pytest.approx(2 / 3), n=3, post_fraction=pytest.approx(1 / 3),
                                  avg_new_tokens=pytest.approx(30.0))
    assert g["multistep/3"] == dict(accuracy=0.5, n=2, post_fraction=0.5, avg_new_tokens=20.0)
    assert g["direct/4"] == g["direct"] == dict(accuracy=1.0, n=1, post_fraction=1.0, avg_new_tokens=6.0)
    assert "ms_per_question" not in g["multistep"]  # time is measured per run, not per group


def test_oracle_and_random_rows_and_agreement_numbers():
    """The table's reference rows from the pre and post students' records of the same questions, worked out by
    hand: the oracle takes the cheaper right answer of the two (the cheaper answer when neither is right); the
    random router, the expected values when each question is answered first with probability 0.25."""
    pre = [rec("multistep/2", True, "pre", 30), rec("multistep/2", False, "pre", 40),
           rec("direct/2", True, "pre", 20), rec("direct/2", False, "pre", 25)]
    post = [rec("multistep/2", True, "post", 5), rec("multistep/2", True, "post", 8),
            rec("direct/2", False, "post", 4), rec("direct/2", False, "post", 30)]
    o = oracle_summary(pre, post)  # both right: post (5); only post: post (8); only pre: pre (20); neither: pre (25)
    assert (o["accuracy"], o["post_fraction"], o["avg_new_tokens"]) == (3 / 4, 2 / 4, (5 + 8 + 20 + 25) / 4)
    assert o["ms_per_question"] == 0.0 and o["n"] == 4
    assert o["by_group"]["multistep"]["accuracy"] == 1.0 and o["by_group"]["direct"]["avg_new_tokens"] == 22.5
    r = random_routing_summary(pre, post, 0.25)
    assert r["accuracy"] == pytest.approx((1 + 0.25 + 0.75 + 0) / 4)
    assert r["avg_new_tokens"] == pytest.approx((23.75 + 32 + 16 + 26.25) / 4)  # 0.25 * post + 0.75 * pre
    assert r["by_group"]["direct"]["accuracy"] == pytest.approx(0.375) and r["ms_per_question"] == 0.0
    assert r["post_fraction"] == 0.25 and all(g["post_fraction"] == 0.25 for g in r["by_group"].values())
    with pytest.raises(ValueError, match="shorter"):  # the two lists must be records of the same questions
        oracle_summary(pre, post[:3])
    # agreement: p(answer first) > 0.5 against "post" (0.5 itself counts as thinking first)
    assert agreement([0.9, 0.2, 0.6, 0.5], ["post", "pre", "pre", "pre"]) == 0.75


def test_format_table_contains_each_mechanism_and_group():
    results = {"pre": summarize(RECORDS, 10.0), "post": summarize(RECORDS[:2], 3.0), "atm": summarize(RECORDS, 7.0)}
    table = format_table(results)
    head, sub = table.splitlines()[:2]
    assert head.split() == ["pre", "post", "atm"]  # one block of columns per mechanism, in order
    assert sub.split() == ["group"] + ["acc", "post%", "tok"] * 3
    lines = {ln.split()[0]: ln for ln in table.splitlines()[3:]}
    assert {"multistep", "multistep/3", "direct/4", "ALL", "ms/question"} <= set(lines)
    assert "0.600" in lines["ALL"] and "0.500" in lines["ALL"]  # pre/atm overall, post overall
    assert "10.00" in lines["ms/question"] and "3.00" in lines["ms/question"]
    # post has no direct/4 record: its cells stay blank instead of failing
    assert len(lines["direct/4"].split()) == 1 + 2 * 3


# ------------------------------------------------------------------------------------------------ generation

def tiny_student(seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=96, vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=32))
    with torch.no_grad():  # sharper logits than GPT-2's init: greedy choices are clear-cut, not near-ties
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    return model.eval()


QUESTIONS = ["Start at 3, apply i d i: result?", "Number 2 in 4 7 1?", "Hi?", "What is 12 + 30 in total?"]
EXAMPLES = [Example(id=f"q{i}", question=q, rationale="r", answer=str(i), answer_type="number", group=f"g/{i}")
            for i, q in enumerate(QUESTIONS)]


def test_generate_answers_one_record_per_example_in_order():
    model = tiny_student()
    recs = generate_answers(model, TOK, EXAMPLES, Answering("cpu", 3, 12))
    assert [r["id"] for r in recs] == [e.id for e in EXAMPLES]
    assert [r["group"] for r in recs] == [e.group for e in EXAMPLES]
    for r in recs:
        assert set(r) == {"id", "group", "text", "mode", "correct", "new_tokens", "p_post"}
        assert 1 <= r["new_tokens"] <= 12 and r["p_post"] is None and isinstance(r["correct"], bool)
    # Batching and sorting by length do not change what each question gets (greedy, padding masked).
    alone = [generate_answers(model, TOK, [e], Answering("cpu", max_new_tokens=12))[0] for e in EXAMPLES]
    assert [r["text"] for r in recs] == [a["text"] for a in alone]


def newline_student():
    """A student that always writes a newline."""
    model = tiny_student()
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()  # the final hidden state is ln_f's bias, whatever the input ...
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()  # ... and only the newline's output row is not orthogonal to it
        model.lm_head.weight[TOK.newline_ids[0]] = 1.0
    return model


def test_generate_answers_stops_at_newline_unless_explain():
    # A student that always writes a newline: without explain generation ends at once, with it only
    # <|endoftext|> stops it (here: never, so it runs to the budget).
    model = newline_student()
    recs = generate_answers(model, TOK, EXAMPLES[:2], Answering("cpu", max_new_tokens=10))
    assert [r["text"] for r in recs] == ["\n", "\n"] and [r["new_tokens"] for r in recs] == [1, 1]
    recs = generate_answers(model, TOK, EXAMPLES[:2], Answering("cpu", max_new_tokens=10, explain=True))
    assert [r["text"] for r in recs] == ["\n" * 10] * 2


def test_post_fold_evidence_stops_at_the_newline_after_its_answer(monkeypatch):
    """A post fold student's evidence (labels.held_out_evidence) generates as the post baseline does, without
    explain: the first newline, the one after "Answer: X", ends it; no rationale is written. Here a student that
    writes only newlines generates 1 token per question of a budget of 10. p_gold is teacher-forced, no generation."""
    model = newline_student()
    outs = []
    real = engine.generate
    monkeypatch.setattr(engine, "generate", lambda *a, **k: outs.append(real(*a, **k)) or outs[-1])
    cfg, runtime = SimpleNamespace(eval_batch_size=8, max_new_tokens=10), SimpleNamespace(device="cpu", ctx=None)
    ev = held_out_evidence(model, TOK, EXAMPLES[:3], "post", cfg, runtime)
    assert [len(o) for out in outs for o in out] == [1, 1, 1] and len(ev["p_gold"]) == 3


def test_generate_answers_reads_mode_and_scores(monkeypatch):
    """Force a student to write a fixed text ("Answer: 1\\n..."): mode post, right only where gold is 1."""
    model = tiny_student()
    script = TOK.encode("Answer: 1\n")

    def fake_generate(student, idx, settings, *a, **kw):
        return [list(script) for _ in range(idx.size(0))]

    monkeypatch.setattr(engine, "generate", fake_generate)
    recs = generate_answers(model, TOK, EXAMPLES, Answering("cpu"))
    assert [r["mode"] for r in recs] == ["post"] * 4
    assert [r["correct"] for r in recs] == [False, True, False, False]  # gold answers are "0", "1", "2", "3"
    s = summarize(recs, 1.0)
    assert s["accuracy"] == 0.25 and s["post_fraction"] == 1.0


def test_generate_with_perception_and_raw_questions():
    model = tiny_student()
    torch.manual_seed(1)
    perc = Perception(32, n_prefix=2, n_layer=1, n_head=2)
    recs, ms = timed_answers(model, TOK, EXAMPLES, Answering("cpu", 2, 8), perception=perc)
    assert ms > 0 and all(0 < r["p_post"] < 1 for r in recs)
    outs = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 2, 8), perception=perc)
    assert [o["text"] for o in outs] == [r["text"] for r in recs]  # the same helper underneath
    assert [o["p_post"] for o in outs] == pytest.approx([r["p_post"] for r in recs])
    assert all(o["ms"] > 0 for o in outs)


def test_sampling_reaches_the_model_and_is_seeded():
    """temperature, top_k and the generator get to the student's sampler: the same seed gives the same texts,
    another seed others, sampling is not greedy decoding, and top_k=1 is (whatever the temperature)."""
    model = tiny_student()

    def texts(seed=None, **kw):
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        sample = dict(generator=gen, **kw) if kw else None
        return [o["text"] for o in generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 8, sample=sample))]

    greedy = texts()
    assert texts(0, temperature=1.0, top_k=5) == texts(0, temperature=1.0, top_k=5)
    assert texts(0, temperature=1.0, top_k=5) != texts(1, temperature=1.0, top_k=5)
    assert texts(0, temperature=1.0, top_k=5) != greedy
    assert texts(0, temperature=1.0, top_k=1) == greedy == texts(1, temperature=5.0, top_k=1)


# ------------------------------------------------------------------------------------------------ forced modes

def test_mode_marks_are_the_first_tokens_of_each_target():
    """A forced mode feeds the student the ids its training target starts with (prompt and target are
    tokenised apart, so the marker's ids are a prefix of the target's)."""
    from atm_min.formats import MODE_MARKS
    from atm_min.formats import encode
    ex = EXAMPLES[0]
    for mode, mark in MODE_MARKS.items():
        _, target = encode(TOK, ex, mode)
        assert target[:len(TOK.encode(mark))] == TOK.encode(mark)


def test_forced_modes_start_with_the_marker_and_count_it():
    model = tiny_student()
    free = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 12))
    for mode, mark in (("pre", "Reasoning:"), ("post", "Answer:")):
        outs = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 12), force=mode)
        recs = generate_answers(model, TOK, EXAMPLES, Answering("cpu", 4, 12), force=mode)
        for o, r in zip(outs, recs):
            assert o["text"].startswith(mark) and r["mode"] == mode and r["text"] == o["text"]
            # the marker's tokens count, and come out of the same budget as a free generation's
            assert len(mark) < o["new_tokens"] <= 12
        # the continuation is what the student writes after the marker (the same as writing it itself)
        for q, o in zip(QUESTIONS, outs):
            idx = torch.tensor([TOK.encode(f"Q: {q}\n" + mark)])
            cont = engine.generate(model, idx, GenSettings(12 - len(mark), stop_ids=[TOK.eot_id] + TOK.newline_ids))
            assert o["text"] == mark + TOK.decode(cont[0])
    assert not any(o["text"].startswith(("Reasoning:", "Answer:")) for o in free)  # a random student: neither


def test_forced_modes_per_question_in_one_batch():
    """One mode per question (the lead's hard routing): a mixed batch gives what each question gets alone."""
    model = tiny_student()
    torch.manual_seed(1)
    perc = Perception(32, n_prefix=2, n_layer=1, n_head=2)
    force = ["pre", None, "post", "pre"]
    mixed = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 14), perception=perc, force=force)
    for q, f, o in zip(QUESTIONS, force, mixed):
        [alone] = generate_texts(model, TOK, [q], Answering("cpu", 1, 14), perception=perc, force=f)
        assert o["text"] == alone["text"] and o["new_tokens"] == alone["new_tokens"]
        assert o["p_post"] == pytest.approx(alone["p_post"])
    with pytest.raises(ValueError, match="one per question"):
        generate_texts(model, TOK, QUESTIONS, Answering("cpu"), force=["pre"])
    with pytest.raises(ValueError, match="force must be"):
        generate_texts(model, TOK, QUESTIONS, Answering("cpu"), force="both")


def test_hard_routing_keeps_p_post_but_not_the_prefix():
    model = tiny_student()
    torch.manual_seed(1)
    perc = Perception(32, n_prefix=2, n_layer=1, n_head=2)
    torch.manual_seed(1)
    hard = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, routing="hard")
    with torch.no_grad():
        perc.out_proj.weight.normal_(0, 1.0)  # a soft prompt strong enough to change what the student writes
    hard.load_state_dict(perc.state_dict())  # the same weights: hard routing only drops the prefix
    on = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 12), perception=perc)
    off = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 12), perception=hard)
    bare = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 12))
    assert [o["text"] for o in off] == [b["text"] for b in bare]  # no prefix: the plain student
    assert [o["text"] for o in on] != [b["text"] for b in bare]
    assert [o["p_post"] for o in off] == pytest.approx([o["p_post"] for o in on])


def test_hard_routing_starts_each_question_in_the_classifiers_mode():
    """Hard routing: each question is started with the marker of the mode the perception's classifier picks,
    the same as forcing that list of modes by hand; p == 0.5 exactly is "think first" (answer first needs > 0.5)."""
    model = tiny_student()
    torch.manual_seed(3)
    perc = variant_perception(32, n_prefix=2, n_layer=1, n_head=2, routing="hard")
    with torch.no_grad():
        perc.mode_head.weight.normal_(0, 2.0)  # spread p_post so that both modes occur
    outs = hard_routed_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 14), perception=perc)
    picked = ["post" if o["p_post"] > 0.5 else "pre" for o in outs]
    assert set(picked) == {"pre", "post"}
    assert classifier_modes(model, perc, TOK, QUESTIONS, "cpu", 4) == picked
    by_hand = generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 14), perception=perc, force=picked)
    assert [o["text"] for o in outs] == [o["text"] for o in by_hand]
    assert all(o["text"].startswith("Answer:" if m == "post" else "Reasoning:") for o, m in zip(outs, picked))
    with torch.no_grad():  # the boundary: a classifier that says exactly 0.5 thinks first
        perc.mode_head.weight.zero_()
        perc.mode_head.bias.zero_()
    assert classifier_modes(model, perc, TOK, QUESTIONS, "cpu", 4) == ["pre"] * len(QUESTIONS)
    perc.mode_head.bias.data.fill_(1e-6)
    assert classifier_modes(model, perc, TOK, QUESTIONS, "cpu", 4) == ["post"] * len(QUESTIONS)


def test_greedy_evaluation_drops_finished_rows_and_sampling_does_not(monkeypatch):
    """Dropping stopped rows keeps greedy tokens (tests/test_engine.py) but would change sampled draws (fewer
    rows draw): generate_texts turns it on for greedy decoding only."""
    model, seen, real = tiny_student(), [], engine.generate

    def spy(student, idx, settings, *a, **kw):
        seen.append(settings.drop_finished)
        return real(student, idx, settings, *a, **kw)

    monkeypatch.setattr(engine, "generate", spy)
    generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 8))
    generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 8, sample=dict(temperature=0.0)))
    generate_texts(model, TOK, QUESTIONS, Answering("cpu", 4, 8, sample=dict(temperature=1.0)))
    assert seen == [True, True, False]

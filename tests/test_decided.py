"""The rule for the traps (machinery/decided.py): the per-group numbers on the questions the training data
decide, the traps they leave open beside them, per mechanism; nothing set apart when the training data hold traps."""

from atm_min.evaluate import oracle_summary, random_routing_summary, summarize
from atm_min.formats import Example
from atm_min.machinery.decided import add_decided_and_traps, open_questions
from atm_min.machinery.tables import format_decided


def ex(i, q, group):
    return Example(id=str(i), question=q, rationale="r", answer="yes", answer_type="yesno", group=group)


TEST = [ex(0, "Is 74 even?", "direct/2"), ex(1, "Is 34 even?", "direct/2"), ex(2, "Is 75 odd?", "direct/2"),
        ex(3, "Start at 5, apply i: result?", "multistep/1")]  # only the first is a trap


def rec(e, mode, correct, tokens):
    return dict(id=e.id, group=e.group, mode=mode, correct=correct, new_tokens=tokens, p_post=None)


def test_a_trap_is_open_only_when_no_training_question_is_one():
    assert open_questions([ex(9, "Is 32 even?", "direct/2")], TEST) == [True, False, False, False]
    assert open_questions([ex(9, "Is 72 even?", "direct/2")], TEST) == [False] * 4  # the data decide the rule


def test_decided_and_traps_per_mechanism_and_reference_row():
    pre = [rec(e, "pre", i != 0, 40) for i, e in enumerate(TEST)]  # falls into the trap only
    post = [rec(e, "post", i != 3, 10) for i, e in enumerate(TEST)]  # misses the chain only
    results = {"pre": summarize(pre, 1.0), "post": summarize(post, 1.0)}
    atm = post[:3] + pre[3:]  # answers 3 of 4 first
    results["atm"] = summarize(atm, 1.0)
    results["oracle"] = oracle_summary(pre, post)
    results["random"] = random_routing_summary(pre, post, results["atm"]["post_fraction"])
    before = {m: dict(r) for m, r in results.items()}
    add_decided_and_traps(results, {"pre": pre, "post": post, "atm": atm}, [True, False, False, False])
    for m in before:  # what was there is untouched: only the two keys are added
        assert {k: v for k, v in results[m].items() if k not in ("decided", "traps")} == before[m]
    assert results["pre"]["decided"]["accuracy"] == 1.0 and results["pre"]["decided"]["n"] == 3
    assert results["pre"]["traps"] == dict(accuracy=0.0, n=1, post_fraction=0.0, avg_new_tokens=40.0)
    assert results["post"]["decided"]["accuracy"] == 2 / 3 and results["post"]["traps"]["accuracy"] == 1.0
    assert results["post"]["decided"]["by_group"]["direct"]["accuracy"] == 1.0  # the decided parity questions
    assert results["oracle"]["traps"]["accuracy"] == 1.0 and results["oracle"]["decided"]["accuracy"] == 1.0
    assert results["random"]["traps"]["accuracy"] == 0.75  # answers first at atm's rate, 3/4
    table = format_decided(results)
    assert "on the 1 traps they leave open" in table
    assert table.splitlines()[-1].split() == ["traps", "1", "0.000", "1.000", "1.000", "1.000", "0.750"]
    assert table.splitlines()[3].split()[:3] == ["direct,", "decided", "2"]


def test_nothing_is_added_without_open_traps():
    recs = [rec(e, "pre", True, 40) for e in TEST]
    results = {"pre": summarize(recs, 1.0)}
    add_decided_and_traps(results, {"pre": recs}, [False] * 4)
    assert "decided" not in results["pre"] and format_decided(results) == ""

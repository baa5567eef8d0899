"""Machinery: the questions the training data decide, and the traps they leave open (the rule: a mechanism is
judged on what its training data decide, the traps beside). The per-group targets are measured on the test
questions the training data decide; the traps -- parity questions whose first digit is 5-9 and of the other
parity than the last (data/synth.py is_trap), kept out of the training data by the only-correct filter -- are
reported beside them, per mechanism. train.py adds both to
results.json ("decided" and "traps" under each mechanism) and prints them after the results table."""

from __future__ import annotations

from ..evaluate import oracle_summary, random_routing_summary, summarize


def open_questions(train, test) -> list[bool]:
    """Per test question: a trap the training data leave open? Only when no training question is a trap (the
    filter removed them all, as with the suite's slip_rate=1): where some traps reach the training data (e.g.
    --slip_rate=0.8, or data without the slip), the data decide the rule and nothing is set apart."""
    from data.synth import is_trap  # the suite defines its traps (no torch, no third-party import)
    if any(is_trap(ex.question) for ex in train):
        return [False] * len(test)
    return [is_trap(ex.question) for ex in test]


def _split(records, is_open):
    return ([r for r, o in zip(records, is_open, strict=True) if not o],
            [r for r, o in zip(records, is_open, strict=True) if o])


def _without(stats: dict, *keys) -> dict:
    return {k: v for k, v in stats.items() if k not in keys}


def _summary(records) -> dict:
    return _without(summarize(records, 0.0), "ms_per_question")  # a subset has no time of its own


def add_decided_and_traps(results: dict, records: dict[str, list[dict]], is_open: list[bool]) -> None:
    """results[m]["decided"] (summary of the questions the training data decide: accuracy, n, post_fraction,
    avg_new_tokens, by_group) and results[m]["traps"] (the same less by_group) for every mechanism with test
    records, and for the oracle and random rows when results has them. Nothing is added without open traps."""
    if not any(is_open):
        return
    for mech, recs in records.items():
        decided, traps = _split(recs, is_open)
        results[mech]["decided"] = _summary(decided)
        results[mech]["traps"] = _without(_summary(traps), "by_group")
    if "oracle" in results and "pre" in records and "post" in records:
        (pre_d, pre_t), (post_d, post_t) = _split(records["pre"], is_open), _split(records["post"], is_open)
        rate = results["atm"]["post_fraction"]
        for name, make in (("oracle", oracle_summary), ("random", lambda a, b: random_routing_summary(a, b, rate))):
            results[name]["decided"] = _without(make(pre_d, post_d), "ms_per_question")
            results[name]["traps"] = _without(make(pre_t, post_t), "ms_per_question", "by_group")

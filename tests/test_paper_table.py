"""tools/paper_table.py: the paper-shaped tables of a finished run hold the run's own numbers (results.json), its
answer-format counts are the predictions' (no "Answer:" at all), and a run without results is one error line."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("paper_table", ROOT / "tools" / "paper_table.py")
paper_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_table)


def _rows(text: str, table: int) -> dict:
    """{task: cells} of table number `table` (0, 1, 2) of the tool's output."""
    lines = text.strip().split("\n\n")[table].splitlines()[2:]
    return {cells[1]: cells[2:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}


def test_tables_hold_the_runs_numbers(tiny_run, capsys):
    paper_table.main([str(tiny_run.out), "--max_new_tokens", "999"])
    out = capsys.readouterr().out
    results = json.loads((tiny_run.out / "results.json").read_text())
    acc = _rows(out, 0)
    tasks = sorted(g for g in results["pre"]["by_group"] if "/" not in g)
    assert list(acc) == ["ALL"] + tasks  # a run with several groups: one row each
    for task, cells in acc.items():
        for who, cell in zip(paper_table.NAMES, cells[1:]):
            s = results[who] if task == "ALL" else results[who]["by_group"][task]
            assert cell == f"{s['accuracy']:.3f}"
    preds = [json.loads(line) for line in (tiny_run.out / "predictions_pre.jsonl").read_text().splitlines()]
    no_answer = sum("Answer:" not in r["text"] for r in preds)
    assert _rows(out, 1)["ALL"][1].startswith(f"{no_answer} (0 cut)")  # nothing reaches 999 tokens
    c = results["atm"]["label_counts"]["ALL"]
    assert _rows(out, 2)["ALL"][0] == f"{c['pre_only']} / {c['post_only']} / {c['both']} / {c['neither']}"
    stats = {row[1]: row[2:] for row in _table(out, "| run | task | n (accuracy")}  # from the per-question outcomes
    for task, cells in stats.items():
        for who, cell in zip(paper_table.STUDENTS, cells[1:]):
            s = results[who] if task == "ALL" else results[who]["by_group"][task]
            assert cell.startswith(f"{s['accuracy']:.3f} (")  # the same accuracy as results.json's, and its interval
    better = _table(out, "| run | task | training k-fold")[0]
    assert better[2] == f"{c['pre_only'] + c['both']} / {c['post_only'] + c['both']} of {c['n']}"
    data = next(a.split("=", 1)[1] for a in tiny_run.argv if a.startswith("--data_dir="))
    assert out.strip().endswith(f"{Path(data) / 'test.jsonl'}.")  # the gold answers: the run's recorded data_dir


def test_a_run_without_results_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match="^error: .*results.json not found"):
        paper_table.main([str(tmp_path)])


def test_a_run_without_baselines_has_its_atm_row(tmp_path, capsys):
    """--baselines=false (e.g. a label rule tried on reused evidence): only ATM's numbers, the rest '-'."""
    from atm_min.evaluate import summarize
    rows = [dict(id=str(i), group=g, text="Answer: yes\n", correct=i % 2 == 0, mode="post", new_tokens=4, p_post=0.9)
            for i, g in enumerate(["a", "a", "b", "b"])]
    (tmp_path / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
    (tmp_path / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paper_table.main([str(tmp_path)])
    text = capsys.readouterr().out
    acc = _rows(text, 0)
    assert list(acc) == ["ALL", "a", "b"] and acc["ALL"][0] == "4" and acc["ALL"][1] == "-"
    assert acc["ALL"][4] == "0.500" and acc["a"][-1] == "1.00"  # ATM's accuracy and answer-first share
    stats = {row[1]: row[2:] for row in _table(text, "| run | task | n (accuracy")}
    assert stats["ALL"][1] == "-" and stats["ALL"][4].startswith("0.500 (0.150-")  # Wilson 2/4: 0.150-0.850
    assert _table(text, "| run | task | ATM vs") == []  # nothing to pair ATM with
    assert _table(text, "| run | task | training k-fold")[0][2:] == ["-"] * 7  # no k-fold evidence either


def test_seeds_table_gives_mean_and_range(tmp_path, capsys):
    """--seeds: each accuracy's mean and lowest-highest over the runs, per task."""
    from atm_min.evaluate import summarize
    outs = []
    for k, right in enumerate([(1, 1, 0, 0), (1, 1, 1, 0)]):  # ATM right on 2 of 4, then 3 of 4
        rows = [dict(id=str(i), group=g, text="Answer: yes\n", correct=bool(c), mode="post", new_tokens=4, p_post=0.9)
                for i, (g, c) in enumerate(zip(["a", "a", "b", "b"], right))]
        out = tmp_path / f"s{k}"
        out.mkdir()
        (out / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
        (out / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        outs.append(str(out))
    paper_table.main(outs)
    assert "| task | runs |" not in capsys.readouterr().out  # without --seeds: no spread table, nothing pooled
    paper_table.main(["--seeds", *outs])
    lines = capsys.readouterr().out.strip().split("\n\n")[3].splitlines()[2:]  # this table has no run column
    spread = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}
    assert list(spread) == ["ALL", "a", "b"]
    assert spread["ALL"][0] == "2" and spread["ALL"][4] == "0.625 (0.500-0.750)"  # ATM: 2/4 and 3/4
    assert spread["a"][4] == "1.000 (1.000-1.000)" and spread["b"][4] == "0.250 (0.000-0.500)"
    assert spread["ALL"][1] == "-"  # no pre baseline in these runs
    rows = [dict(r, group="c") for r in map(json.loads, (tmp_path / "s1" / "predictions_atm.jsonl").open())]
    other = tmp_path / "other_task"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"atm": summarize(rows, 1.0)}))
    (other / "predictions_atm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match="^error: --seeds takes runs of one setup .*other_task: c$"):
        paper_table.main(["--seeds", outs[0], str(other)])  # another task's run is no seed of this one


# ------------------------------------------------------------------------------------------------- the statistics

GOLD = ["yes", "yes", "no", "no", "no", "no"]  # q0-q2 task a, q3-q5 task b
ANSWERS = dict(pre=["yes", "no", "no", "yes", "yes", "no"],    # right: 1 0 1 0 0 1 (3 of 6)
               post=["no"] * 6, answer=["no"] * 6,             # right: 0 0 1 1 1 1 (4 of 6)
               atm=["yes", "yes", "no", "no", "yes", "no"])    # right: 1 1 1 1 0 1 (5 of 6)
# The k-fold evidence on the training questions: pre ahead overall and on b, post on a (the test set disagrees
# overall: post is the better mode there, and the better mode must not be chosen on it).
COUNTS = dict(ALL=dict(n=11, pre_only=5, post_only=1, both=2, neither=3, label_post=1),   # pre 7, post 3
              a=dict(n=5, pre_only=0, post_only=1, both=1, neither=3, label_post=1),     # pre 1, post 2
              b=dict(n=6, pre_only=5, post_only=0, both=1, neither=0, label_post=0))     # pre 6, post 1


def fake_run(out: Path, data: Path | None, flip: int | None = None, command: str | None = None) -> Path:
    """A finished run of the six questions above (ATM's answer to question `flip` flipped: another seed);
    data/test.jsonl holds their gold answers, and the recorded command names data (or `command`)."""
    from atm_min.evaluate import oracle_summary, summarize
    out.mkdir(parents=True)
    recs = {}
    for who, answers in ANSWERS.items():
        answers = [("no" if a == "yes" else "yes") if who == "atm" and i == flip else a for i, a in enumerate(answers)]
        mode = lambda i: "pre" if who == "pre" or (who == "atm" and i % 2) else "post"  # noqa: E731
        recs[who] = [dict(id=f"q{i}", group="a/1" if i < 3 else "b", new_tokens=4, p_post=0.25 * (i % 4),
                          mode=mode(i), correct=a == GOLD[i], text=f"Reasoning: hmm. Answer: {a.title()}."
                          if mode(i) == "pre" else f"Answer: {a}\n") for i, a in enumerate(answers)]
        (out / f"predictions_{who}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[who]))
    results = {who: summarize(r, 1.0) for who, r in recs.items()}
    results["atm"]["label_counts"] = COUNTS
    results["oracle"] = oracle_summary(recs["pre"], recs["post"])
    results["run"] = {"command": command or ("python train.py" + (f" --data_dir={data}" if data else ""))}
    (out / "results.json").write_text(json.dumps(results))
    if data is not None and not data.exists():
        data.mkdir(parents=True)
        (data / "test.jsonl").write_text("".join(json.dumps(dict(
            id=f"q{i}", question=f"Question {i}?", rationale="r", answer=g, answer_type="yesno",
            group="a/1" if i < 3 else "b")) + "\n" for i, g in enumerate(GOLD)))
    return out


def _table(text: str, head: str) -> list[list[str]]:
    """The rows (lists of cells) of the output's table whose header starts with `head`; every table of the output
    checked whole on the way: each row has its header's number of cells."""
    for b in text.strip().split("\n\n"):
        if b.startswith("|"):
            assert len({ln.count("|") for ln in b.splitlines()}) == 1, b
    block = next(b for b in text.strip().split("\n\n") if b.startswith(head))
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in block.splitlines()[2:]]


def _stats_part(text: str) -> str:
    """The statistics tables: from the accuracy-with-interval table on, without the chain tables (they need the
    run folders) and the gold answers' note."""
    start = text.index("| run | task | n (accuracy, 95% Wilson interval) |")
    return text[start:].split("\n\nGold answers:")[0].split("\n\n| run | label source |")[0]


def test_statistics_of_a_hand_made_run(tmp_path, capsys):
    from atm_min.machinery import stats as S
    out = fake_run(tmp_path / "r", tmp_path / "data")
    paper_table.main([str(out)])
    text = capsys.readouterr().out
    acc = {row[1]: row[2:] for row in _table(text, "| run | task | n (accuracy")}
    assert list(acc) == ["ALL", "a", "b"]
    lo, hi = S.wilson_interval(5, 6)
    assert acc["ALL"][0] == "6" and acc["ALL"][4] == f"0.833 ({lo:.3f}-{hi:.3f})"  # ATM: 5 of 6
    assert acc["ALL"][5].startswith("0.833 (")  # oracle: pre or post right on all but q1
    assert acc["ALL"][6] == "0.833"  # 1 - (1 - 3/6)(1 - 4/6) = 1 - 1/6: here the observed oracle is no better
    assert acc["ALL"][7] == "0.667 (no)" and acc["a"][7] == "0.667 (yes)"  # the gold majority: 4 of 6; 2 of 3
    assert acc["ALL"][8] == "no 0.50 / no 1.00 / no 1.00 / no 0.50"  # own answers, parsed and normalised
    paired = {(row[1], row[2]): row[3:] for row in _table(text, "| run | task | ATM vs |")}
    # ATM vs pre: only ATM right on q1, q3 (b = 2), only pre on none: p = 2 * P(X <= 0), X ~ Bin(2, 1/2) = 0.5
    assert paired[("ALL", "pre")][:2] == ["2 / 0", "0.500"]
    # ATM vs post: b = 2 (q0, q1), c = 1 (q4): p = 2 * (1 + 3) / 8 > 1 -> 1
    d, lo, hi = S.paired_difference_interval(3, 2, 1, 0)
    assert paired[("ALL", "post")] == ["2 / 1", "1.000", f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})"]
    better = {row[1]: row[2:] for row in _table(text, "| run | task | training k-fold")}
    assert better["ALL"][:4] == ["7 / 3 of 11", "pre", "0.500", "0.833"]  # chosen on training evidence: pre
    assert better["a"][:5] == ["1 / 2 of 5", "post", "0.333", "1.000", "2 / 0"]
    assert better["b"][:2] == ["6 / 1 of 6", "pre"]
    assert text.strip().endswith(f"Gold answers: r: {tmp_path / 'data' / 'test.jsonl'}.")


def test_outcome_files_give_the_same_statistics(tmp_path, capsys):
    """--outcomes writes one file per run; --from-outcomes reads them back, and every statistic is the same,
    pooled over seeds too."""
    runs = [str(fake_run(tmp_path / f"s{k}", tmp_path / "data", flip=flip)) for k, flip in enumerate([None, 4])]
    paper_table.main(["--seeds", *runs, "--outcomes", str(tmp_path / "oc")])
    text = capsys.readouterr().out
    rows = (tmp_path / "oc" / "s0.tsv").read_text().splitlines()
    assert "# evidence\tALL\t11\t7\t3" in rows
    head = rows.index("\t".join(paper_table.O.COLUMNS))
    first = dict(zip(rows[head].split("\t"), rows[head + 1].split("\t")))
    assert first == dict(id="q0", task="a", group="a/1", gold="yes", pre_answer="yes", pre_right="1",
                         post_answer="no", post_right="0", answer_answer="no", answer_right="0", atm_answer="yes",
                         atm_right="1", atm_mode="post", atm_p_answer_first="0.0")
    paper_table.main(["--seeds", "--from-outcomes", str(tmp_path / "oc" / "s0.tsv"), str(tmp_path / "oc" / "s1.tsv")])
    again = capsys.readouterr().out
    assert again.strip() == _stats_part(text).strip()
    pooled = {row[0]: row[1:] for row in _table(text, "| task | runs | better single mode")}
    # ATM vs pre per seed: seed 0 b, c = 2, 0; seed 1 (q4 right too) 3, 0: pooled 5 / 0, p = 2 / 32
    assert pooled["ALL"][:2] == ["2", "pre, pre"] and pooled["ALL"][4:] == ["5 / 0", "0.062"]
    # per question the seeds' mean ATM - pre is 1 on q1 and q3, 0.5 on q4, else 0: a resample is <= 0 only when
    # it draws none of those three, (3/6)^6 = 1/64
    assert float(pooled["ALL"][3]) == pytest.approx(1 / 64, abs=0.005)
    assert pooled["ALL"][2].startswith("+0.417 (")  # the mean of 2/6 and 3/6


def test_a_default_synthetic_run_finds_its_gold_answers(tmp_path, capsys):
    """`python train.py --mechanism atm` records no data_dir: its test questions are out_dir/synth_<seed>."""
    out = fake_run(tmp_path / "out", tmp_path / "out" / "synth_0", command="python train.py --mechanism atm")
    paper_table.main([str(out), "--outcomes", str(tmp_path / "oc")])
    assert capsys.readouterr().out.strip().endswith(f"{out / 'synth_0' / 'test.jsonl'}.")
    assert "\tyes\t" in (tmp_path / "oc" / "out.tsv").read_text()
    out2 = fake_run(tmp_path / "moved", None, command="python train.py --data_dir=/nowhere")
    paper_table.main([str(out2), "--outcomes", str(tmp_path / "oc")])  # the data folder is gone: no gold
    assert "moved: not found (/nowhere/test.jsonl); give --data DIR" in capsys.readouterr().out
    paper_table.main([str(out2), "--data", str(out / "synth_0")])
    assert "| majority answer |" in capsys.readouterr().out


def test_bad_statistics_input_is_one_error_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tanswer\nq0\tyes\n")
    with pytest.raises(SystemExit, match="^error: .*bad.tsv line 1: not an outcome file's header"):
        paper_table.main(["--from-outcomes", str(bad)])
    with pytest.raises(SystemExit, match="^error: give finished runs' folders, or --from-outcomes"):
        paper_table.main([])
    with pytest.raises(SystemExit, match="^error: --data .*: no test.jsonl there"):
        paper_table.main([str(fake_run(tmp_path / "r0", None)), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="^error: .*not in the data folder's test.jsonl: give the run's own"):
        other = tmp_path / "other"
        other.mkdir()
        (other / "test.jsonl").write_text(json.dumps(dict(id="x", question="?", rationale="r", answer="no",
                                                          answer_type="yesno")) + "\n")
        paper_table.main([str(fake_run(tmp_path / "r", None)), "--data", str(other)])
    a = fake_run(tmp_path / "a", None)
    for who in ANSWERS:  # another test set: the same questions under other ids
        p = a / f"predictions_{who}.jsonl"
        p.write_text("".join(json.dumps(dict(r, id=r["id"] + "x")) + "\n" for r in map(json.loads, p.open())))
    with pytest.raises(SystemExit, match="^error: --seeds pools runs over the same test questions"):
        paper_table.main(["--seeds", str(tmp_path / "r"), str(a)])


# --------------------------------------------------------------------------------------- where the chain breaks

def test_chain_table_and_the_labels_kappa_between_seeds(tmp_path, capsys):
    """The chain table reads each run's label source (its recorded command), labels.json, the held-out score
    (results.json atm.holdout), the test oracle agreement and ATM's test p; --seeds adds Cohen's kappa of each
    pair of runs' labels on the training questions both labelled."""
    import statistics
    data = tmp_path / "data"
    a = fake_run(tmp_path / "s0", data, command=f"python train.py --data_dir={data} --label_source=task")
    b = fake_run(tmp_path / "s1", data, flip=4)
    results = json.loads((a / "results.json").read_text())
    results["atm"].update(test_oracle_agreement=0.625, holdout=dict(n=8, auc=0.875, agreement=0.75, p_min=0.2,
                                                                    p_max=0.9, p_std=0.25, auc_own=None,
                                                                    agreement_own=0.5))
    (a / "results.json").write_text(json.dumps(results))
    # t0-t3 in both runs: post post pre pre against post pre pre pre; t4 only in a, t5 only in b
    for out, labs in ((a, dict(t0="post", t1="post", t2="pre", t3="pre", t4="post")),
                      (b, dict(t0="post", t1="pre", t2="pre", t3="pre", t5="post"))):
        (out / "labels.json").write_text(json.dumps({q: dict(label=v, pre_ok=True, post_ok=False, p_gold=0.1)
                                                     for q, v in labs.items()}))
    paper_table.main(["--seeds", str(a), str(b)])
    text = capsys.readouterr().out
    chain = {row[0]: row[1:] for row in _table(text, "| run | label source |")}
    p = [0.25 * (i % 4) for i in range(6)]  # fake_run's ATM p_post of its six test questions
    assert chain["s0"] == ["task", "3 of 5", "8", "0.875", "0.750", "0.200 / 0.900 / 0.250", "0.625",
                           f"0.000 / 0.750 / {statistics.pstdev(p):.3f}"]
    assert chain["s1"][:7] == ["kfold", "2 of 5", "-", "-", "-", "-", "-"]  # no holdout, no oracle labels
    # kappa on t0-t3: p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; (3/4 - 1/2) / (1 - 1/2) = 0.5
    assert _table(text, "| run | run |") == [["s0", "s1", "4", "2 / 1", "0.500"]]
    paper_table.main([str(a), str(b)])
    assert "| run | run |" not in capsys.readouterr().out  # kappa only with --seeds


def test_a_run_on_another_runs_evidence_is_paired_with_that_runs_baselines(tmp_path, capsys):
    """--evidence_from with --baselines=false (the chain-break runs): the statistics pair ATM with the baselines
    of the run whose fold evidence it used, as if they were its own."""
    import shutil
    data = tmp_path / "data"
    base = fake_run(tmp_path / "base", data)
    chain = tmp_path / "chain"
    chain.mkdir()
    shutil.copy(base / "predictions_atm.jsonl", chain)
    results = json.loads((base / "results.json").read_text())
    results = {"atm": results["atm"], "run": {"command": f"python train.py --data_dir={data} --evidence_from={base}"
                                                         " --baselines=false --label_source=random"}}
    (chain / "results.json").write_text(json.dumps(results))
    paper_table.main([str(base), str(chain)])
    text = capsys.readouterr().out
    paired = _table(text, "| run | task | ATM vs")
    assert [r[1:] for r in paired if r[0] == "chain"] == [r[1:] for r in paired if r[0] == "base"] != []
    assert {row[0]: row[1] for row in _table(text, "| run | label source |")} == {"base": "kfold", "chain": "random"}

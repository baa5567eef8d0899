"""The k-fold evidence of a run so far, from its cached fold files -- for a run stopped (or still running) before
train.py prints its labels:

    python tools/fold_evidence.py --out_dir=out/ftcot-coin_flip --data_dir=data/coin_flip

For each fold student whose evidence is cached (out_dir/folds/fold<k>_<mode>.json): how many of its held-out
questions it got right, split by gold answer (a student that says "yes" to everything shows here). For the
questions both fold students of a fold have answered: who was right (pre only / post only / both / neither), the
post student's p(gold) and the labels the run's rule would give (atm_min/labels.py label, with the run's settings
passed here: --label_rule, --post_confidence, --label_default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from atm_min.machinery.choose import labeller  # noqa: E402
from atm_min.machinery.data import load_split  # noqa: E402
from atm_min.machinery.errors import ProjectError  # noqa: E402


def fold_evidence(out_dir: str, train, rule="confident_post", post_confidence=0.9, default="pre") -> dict:
    """{"students": [(name, right, n, {gold: (right, n)})], "counts": Counter, "labels": Counter, "p_gold": [...]}"""
    ok, p_gold, students = {"pre": {}, "post": {}}, {}, []
    folds = os.path.join(out_dir, "folds")
    names = sorted(f for f in os.listdir(folds) if f.endswith(".json")) if os.path.isdir(folds) else []
    for f in names:
        mode = f[:-5].split("_")[-1]
        with open(os.path.join(folds, f)) as fh:
            ev = json.load(fh)
        by_gold = {}
        for i, right in zip(ev["held_out"], ev["correct"]):
            ok[mode][i] = right
            r, n = by_gold.get(train[i].answer, (0, 0))
            by_gold[train[i].answer] = (r + right, n + 1)
            if mode == "post":
                p_gold[i] = ev["p_gold"][ev["held_out"].index(i)]
        students.append((f[:-5], sum(ev["correct"]), len(ev["correct"]), by_gold))
    counts, labels = Counter(), Counter()
    to_label = labeller(SimpleNamespace(label_rule=rule, post_confidence=post_confidence, label_default=default))
    both = sorted(set(ok["pre"]) & set(ok["post"]))
    for i in both:
        a, b = ok["pre"][i], ok["post"][i]
        counts["both" if a and b else "pre only" if a else "post only" if b else "neither"] += 1
        labels[to_label(dict(pre_ok=a, post_ok=b, p_gold=p_gold[i]))] += 1
    return {"students": students, "counts": counts, "labels": labels, "p_gold": [p_gold[i] for i in both]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--data_dir", required=True, help="the run's data folder (its train.jsonl)")
    p.add_argument("--max_train", type=int, default=0, help="the run's max_train, if it had one")
    p.add_argument("--label_rule", default="confident_post", choices=["confident_post", "prefer_post", "prefer_pre"])
    p.add_argument("--post_confidence", type=float, default=0.9)
    p.add_argument("--label_default", default="pre", choices=["pre", "post"])
    a = p.parse_args(argv)
    try:
        train = load_split(a.data_dir)[0]
        train = train[:a.max_train] if a.max_train else train
        ev = fold_evidence(a.out_dir, train, a.label_rule, a.post_confidence, a.label_default)
    except (ProjectError, OSError, KeyError, IndexError, ValueError) as e:
        sys.exit(f"error: {a.out_dir}: cannot read its fold evidence with {a.data_dir}: {e}")
    if not ev["students"]:
        sys.exit(f"error: no fold evidence in {os.path.join(a.out_dir, 'folds')} yet")
    for name, right, n, by_gold in ev["students"]:
        split = ", ".join(f"gold {g}: {r}/{k}" for g, (r, k) in sorted(by_gold.items(), key=lambda kv: -kv[1][1])[:4])
        print(f"{name}: right on {right}/{n} = {right / n:.3f} held-out questions ({split})")
    n = sum(ev["counts"].values())
    if n:
        c, pg = ev["counts"], ev["p_gold"]
        print(f"{n} questions with both fold students' evidence: pre only {c['pre only']}, post only "
              f"{c['post only']}, both {c['both']}, neither {c['neither']}; post's p(gold) >= {a.post_confidence}: "
              f"{sum(x >= a.post_confidence for x in pg)}, median {statistics.median(pg):.3f}; labels "
              f"({a.label_rule}): post {ev['labels']['post']}, pre {ev['labels']['pre']}")


if __name__ == "__main__":
    main()

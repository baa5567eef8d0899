"""Draw a training run: every student's loss, the accuracy / cost trade-off, where the perception sends each
question and what it looks at; and a report.md that a course can hand out.

    python plot.py out     # out/plots/{loss,tradeoff,curve,chain_length,p_post,p_gold,attention}.png, out/report.md

It reads what train.py left in the out_dir (results.json, log.jsonl, predictions_*.jsonl, ckpt.pt); a figure
whose input is missing (e.g. no perception in a pre-only run) is skipped with a note. The drawing code lives in
atm_min/machinery/report.py. matplotlib is needed here and nowhere else: pip install matplotlib.
"""

from __future__ import annotations

import os
import shlex
import sys
import time

from atm_min.machinery.errors import ArgumentParser, ProjectError  # standard library only: no torch before it is needed


class PlotError(ProjectError, RuntimeError):
    """Printed as one `error:` line."""


def attention_figure(out_dir: str, path: str, R):
    """(ckpt config or None, note or None): draw the perception's attention for a few test questions."""
    from atm_min.machinery.checkpoint import load_checkpoint, saved_config
    from atm_min.machinery.choose import learner_from_checkpoint
    from atm_min.machinery.data import load_examples, run_data_dir
    from atm_min.machinery.hf import get_tokenizer
    from atm_min.machinery.trace import attention_maps

    ckpt = os.path.join(out_dir, "ckpt.pt")
    if not os.path.isfile(ckpt):
        return None, "attention: no ckpt.pt in the out_dir"
    try:
        ck = load_checkpoint(ckpt, map_location="cpu")
    except ProjectError as e:
        return None, f"attention: {e}"
    config = ck.get("config") if isinstance(ck.get("config"), dict) else {}
    if not ck.get("atm"):
        return config, "attention: the main student has no perception (not an ATM run)"
    cfg = saved_config(ck)
    test = os.path.join(run_data_dir(cfg, out_dir), "test.jsonl")
    try:
        learner = learner_from_checkpoint(ck, cfg)
        tok = get_tokenizer(ck["tokenizer"], cfg.tokenizer_path or None)
        if not os.path.isfile(test):
            return config, f"attention: the run's test questions are gone ({test})"
        questions = [ex.question for ex in R.pick_questions(load_examples(test))]
    except (ProjectError, OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return config, f"attention: could not rebuild the ATM student ({first})"
    learner.eval()
    R.plot_attention(attention_maps(learner.student, learner.perception, tok, questions), path)
    return config, None


def p_gold_figure(out_dir: str, path: str, R, config: dict | None):
    """Draw the fold post students' p(gold answer) per group from labels.json; a note when it cannot."""
    from atm_min.machinery.checkpoint import saved_config
    from atm_min.machinery.data import load_examples, run_data_dir

    labels_path = os.path.join(out_dir, "labels.json")
    if not os.path.isfile(labels_path):
        return "p_gold: no labels.json in the out_dir (not an ATM run)"
    cfg = saved_config({"config": config})  # the run's settings over the defaults (post_confidence, data_dir)
    train = os.path.join(run_data_dir(cfg, out_dir), "train.jsonl")
    try:
        labels = R.read_json(labels_path)
        groups = {ex.id: ex.group or "(no group)" for ex in load_examples(train)} if os.path.isfile(train) else {}
    except ProjectError as e:
        return f"p_gold: {e}"
    rows = [(groups[i], e) for i, e in labels.items()
            if i in groups and isinstance(e, dict) and R._number(e.get("p_gold"))]
    if not rows:
        return f"p_gold: no training question of labels.json with a p_gold and a group in {train}"
    R.plot_p_gold(rows, cfg.post_confidence, path)
    return None


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])  # a bad command line: one `error:` line too
    p.add_argument("out_dir", nargs="?", default="out", help="the training run's folder (default: %(default)s)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        import matplotlib  # noqa: F401  (only checked here; atm_min/machinery/report.py imports it to draw)
    except ImportError:
        raise PlotError("plot.py needs matplotlib: pip install matplotlib") from None
    from atm_min.machinery import report as R

    out = args.out_dir
    results = R.read_results(out)  # DataError with one clear line when missing or broken
    mechs = R.mechanisms(results)
    plots = os.path.join(out, "plots")
    os.makedirs(plots, exist_ok=True)
    figures, notes = {}, []

    def path(name):
        return os.path.join(plots, f"{name}.png")

    log = os.path.join(out, "log.jsonl")
    curves, bad = R.read_log(log) if os.path.isfile(log) else ({}, 0)
    if curves:
        R.plot_losses(curves, path("loss"))
        figures["loss"] = path("loss")
    else:
        notes.append(f"loss: no training records in {log}")
    if bad:
        notes.append(f"log: {bad} unreadable line(s) in {log} skipped")

    R.plot_tradeoff(mechs, path("tradeoff"))
    figures["tradeoff"] = path("tradeoff")

    curve = mechs.get("atm", {}).get("tradeoff")
    if isinstance(curve, list) and curve:
        R.plot_curve(mechs, curve, path("curve"))
        figures["curve"] = path("curve")
    else:
        notes.append("curve: no atm.tradeoff in results.json (not an ATM run, or one from before the curve)")
    if len(R.chain_levels(mechs)) > 1:
        R.plot_chain_length(mechs, path("chain_length"))
        figures["chain_length"] = path("chain_length")
    else:
        notes.append("chain_length: no multistep/N groups in results.json (not the built-in suite)")

    preds = R.read_predictions(out, mechs)
    if any(r.get("p_post") is not None for recs in preds.values() for r in recs):
        R.plot_p_post(preds, path("p_post"))
        figures["p_post"] = path("p_post")
    else:
        notes.append("p_post: no predictions_*.jsonl with the perception's p(answer first) (no ATM student)")

    ck_config, note = attention_figure(out, path("attention"), R)
    note_gold = p_gold_figure(out, path("p_gold"), R, ck_config)
    if note_gold:
        notes.append(note_gold)
    else:
        figures["p_gold"] = path("p_gold")
    if note:
        notes.append(note)
    else:
        figures["attention"] = path("attention")

    for name in R.FIGURES:  # a figure not drawn this time must not linger from an earlier run
        if name not in figures and os.path.exists(path(name)):
            os.remove(path(name))
    report = R.write_report(out, f"python plot.py {shlex.quote(out)}", results, figures, notes, ck_config)
    for n in notes:
        print(f"note: {n}")
    print(f"wrote {len(figures)} figures to {plots} and {report} in {time.perf_counter() - t0:.1f} s")


def cli(argv=None) -> int:
    try:
        main(argv)
    except ProjectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())

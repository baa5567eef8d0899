"""What the figures of plot.py show (atm_min/machinery/report.py), read back from the matplotlib figures before they
are closed: one x-range in tradeoff.png, reference rows hollow, labels inside the figure, coinciding points
spread; the curve with every threshold; chain length 1-6; the 2-step chains in p_post.png; the label threshold in
p_gold.png; what loss.png plots. And report.md's text: '-' for the reference rows' time, the agreement numbers
explained, the curve's table, the table of decided questions and traps."""

import importlib.util

import pytest

from atm_min.evaluate import summarize
from atm_min.machinery import report as R
from atm_min.machinery.tables import format_decided, format_table

pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")


def records(mode, right, tokens):
    """A tiny test set: 2 parity questions, and one chain per length 1-6."""
    groups = ["direct/2", "direct/3"] + [f"multistep/{n}" for n in range(1, 7)]
    return [dict(id=f"q{i}", group=g, mode=mode, correct=right(g), new_tokens=tokens(g), p_post=None)
            for i, g in enumerate(groups)]


def steps(g):
    return int(g.split("/")[1]) if g.startswith("multistep") else 0


MECHS = {
    "pre": summarize(records("pre", lambda g: True, lambda g: 40 + 3 * steps(g)), 2.0),
    "post": summarize(records("post", lambda g: steps(g) < 3, lambda g: 10), 1.0),
    "answer": summarize(records("post", lambda g: steps(g) < 2, lambda g: 10), 1.0),
    "atm": summarize(records("x", lambda g: True, lambda g: 10 if steps(g) < 2 else 40 + 3 * steps(g)), 1.5),
}
MECHS["atm"]["by_group"]["multistep/1"]["post_fraction"] = 1.0
MECHS["oracle"] = {**MECHS["atm"], "ms_per_question": 0.0}
MECHS["random"] = {**MECHS["pre"], "ms_per_question": 0.0}


@pytest.fixture
def figures(monkeypatch):
    """Every figure a drawing function makes, kept open (plt.close is a no-op here); closed at the end."""
    plt = R._plt()
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plt.close(fig)


def inside(fig, artist):
    fig.canvas.draw()
    box, page = artist.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1


def test_tradeoff_shares_one_x_range_draws_references_hollow_and_spreads_coinciding_points(figures, tmp_path):
    R.plot_tradeoff(MECHS, str(tmp_path / "t.png"))
    fig = figures[0]
    axes = [ax for ax in fig.axes if ax.axison]
    assert len({ax.get_xlim() for ax in axes}) == 1  # one x-range in every panel
    for ax in axes:
        for coll in ax.collections:
            hollow = coll.get_facecolor().size == 0 or coll.get_facecolor()[0][3] == 0
            assert hollow == (coll.get_label() in ("oracle", "random")), coll.get_label()
    # direct/2: post and answer sit on the same point (10 tokens, right): drawn apart, not on top of each other
    ax = next(ax for ax in axes if ax.get_title().startswith("direct/2"))
    xs = {c.get_label(): tuple(c.get_offsets()[0]) for c in ax.collections}
    assert xs["post"] != xs["answer"] and abs(xs["post"][0] - xs["answer"][0]) < 5
    for text in fig.texts + [t for ax in axes for t in ax.texts]:
        assert inside(fig, text), text.get_text()  # no label clipped by the figure's edge
    legend = fig.legends[0]
    assert any("reference" in t.get_text() for t in legend.get_texts()) and inside(fig, legend)


def test_curve_figure_has_every_threshold_and_every_mechanism(figures, tmp_path):
    curve = [dict(threshold=t, accuracy=a, tokens=k, post_rate=r) for t, a, k, r in
             [(-1.0, 0.6, 10.0, 1.0), (0.0, 0.6, 10.0, 1.0), (0.5, 1.0, 30.0, 0.5), (1.0, 0.9, 50.0, 0.0)]]
    R.plot_curve(MECHS, curve, str(tmp_path / "c.png"))
    ax = figures[0].axes[0]
    line = ax.lines[0]
    assert list(line.get_xdata()) == [10.0, 10.0, 30.0, 50.0] and list(line.get_ydata()) == [0.6, 0.6, 1.0, 0.9]
    texts = [t.get_text() for t in ax.texts]
    assert "t <= 0" in texts and "t = 0.5" in texts and "t = 1" in texts  # coinciding thresholds share a label
    labels = [c.get_label() for c in ax.collections]
    assert {"pre", "post", "answer", "atm (own choice)", "oracle", "random"} <= set(labels)
    for t in ax.texts:
        assert inside(figures[0], t), t.get_text()


def test_curve_figure_names_each_point_with_its_own_name(figures, tmp_path):
    """The default run's shape: the oracle sits 6 tokens left of ATM's own choice, close but not on it. Its name
    must be written at its own marker, not merged into ATM's label (the earlier bug: "atm (own choice); oracle"
    beside ATM's point, the oracle's marker unnamed)."""
    at = {"pre": (62.6, 0.865), "post": (10.7, 0.735), "answer": (10.7, 0.595), "atm": (26.1, 0.998),
          "oracle": (20.1, 1.0), "random": (32.5, 0.83)}
    mechs = {n: {**MECHS[n], "avg_new_tokens": x, "accuracy": y} for n, (x, y) in at.items()}
    curve = [dict(threshold=t, accuracy=a, tokens=k, post_rate=r) for t, a, k, r in
             [(-1.0, 0.64, 17.6, 1.0), (0.5, 0.998, 26.1, 0.58), (1.0, 0.478, 61.9, 0.0)]]
    R.plot_curve(mechs, curve, str(tmp_path / "c.png"))
    ax = figures[0].axes[0]
    named = {}
    for t in ax.texts:
        for name in t.get_text().split("; "):
            named[name] = tuple(t.xy)
    assert named["oracle"] == at["oracle"] and named["atm (own choice)"] == at["atm"]
    for t in ax.texts:
        assert inside(figures[0], t), t.get_text()


def test_chain_length_plots_accuracy_and_answer_first_share_for_lengths_1_to_6(figures, tmp_path):
    assert R.chain_levels(MECHS) == [1, 2, 3, 4, 5, 6]
    R.plot_chain_length(MECHS, str(tmp_path / "l.png"))
    acc, first = figures[0].axes[:2]
    post = next(line for line in acc.lines if line.get_label() == "post")
    assert list(post.get_xdata()) == [1, 2, 3, 4, 5, 6] and list(post.get_ydata()) == [1, 1, 0, 0, 0, 0]
    atm = next(line for line in first.lines if line.get_label() == "atm")
    assert list(atm.get_ydata())[0] == 1.0
    assert next(line for line in acc.lines if line.get_label() == "oracle (reference)").get_linestyle() == "--"


def test_p_post_gives_the_two_step_chains_a_column_of_their_own(figures, tmp_path):
    recs = [dict(group=f"multistep/{n}", p_post=0.1 * n, correct=True) for n in (1, 2, 2, 10)] + \
        [dict(group="direct/2", p_post=0.99, correct=False)]
    R.plot_p_post({"atm": recs}, str(tmp_path / "p.png"))
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["direct/2", "multistep/1", "multistep/2",
                                                            "multistep/10"]
    assert "0/2" in [t.get_text() for t in ax.texts]  # multistep/2: none of its two above 0.5


def test_p_gold_marks_the_label_threshold_and_counts_sure_right_answers(figures, tmp_path):
    rows = [("multistep/2", dict(p_gold=p, post_ok=ok, pre_ok=True, label="post" if ok and p >= 0.9 else "pre"))
            for p, ok in ((0.95, True), (0.5, True), (0.4, True), (0.1, False))]
    R.plot_p_gold(rows, 0.9, str(tmp_path / "g.png"))
    ax = figures[0].axes[0]
    assert [list(line.get_xdata()) for line in ax.lines] == [[0.9, 0.9]]  # the dashed threshold
    assert ax.get_title() == "multistep/2: 3 of 4 right,\n1 sure (>= 0.9); 1 labelled post"


def test_loss_figure_says_it_plots_single_batches_every_log_interval(figures, tmp_path):
    curves = {"pre": {"step": [20, 40, 60], "loss": [3.0, 2.0, 2.5], "aux": [None] * 3}}
    R.plot_losses(curves, str(tmp_path / "loss.png"))
    ax = figures[0].axes[0]
    assert "one batch" in ax.get_title() and "every 20 steps" in ax.get_title()
    assert list(ax.lines[1].get_ydata()) == [3.0, 2.5, 2.5]  # the running mean


def test_reference_rows_generate_nothing_so_their_time_is_a_dash():
    last = format_table(MECHS).splitlines()[-1].split()
    assert last[0] == "ms/question" and last[1:] == ["2.00", "1.00", "1.00", "1.50", "-", "-"]


def test_report_explains_the_agreements_and_shows_the_curve_and_the_traps(tmp_path):
    atm = {**MECHS["atm"], "label_agreement": 0.99, "test_oracle_agreement": 0.95,
           "tradeoff": [dict(threshold=t, accuracy=0.5, tokens=20.0, post_rate=0.5) for t in (-1.0, 0.5, 1.0)]}
    results = {**MECHS, "atm": atm}
    for m in results.values():
        m["decided"] = {**summarize(records("pre", lambda g: True, lambda g: 1), 0.0)}
        m["traps"] = dict(accuracy=0.25, n=4, post_fraction=1.0, avg_new_tokens=10.0)
    text = R.write_report(str(tmp_path), "python plot.py x", results, {}, [], None)
    report = open(text).read()
    assert "agrees with the k-fold label" in report and "test-set oracle label" in report
    assert "| -1 | 0.500 | 20.0 | 50% |" in report and "| 1 | 0.500 | 20.0 | 50% |" in report
    assert format_decided(R.mechanisms(results)) in report
    assert "traps                 4" in format_decided(R.mechanisms(results))

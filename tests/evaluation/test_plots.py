"""Figures: each renders, and shows what a DC expert looks for (checked via the Artist API:
legend texts, colours, cut-off lines, shaded grey zone, tick labels that do not overlap)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from dc_mlops.evaluation import plots
from dc_mlops.evaluation.greyzone import LOW  # noqa: E402
from dc_mlops.evaluation.metrics import roc_table  # noqa: E402

CUT = {"t_good": 0.8, "t_bad": 2.5}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def scored() -> pd.DataFrame:
    """Two runs of 200 LS: good LS around 1, two failure blocks well above."""
    rng = np.random.default_rng(3)
    frames = []
    for run, scen, sub in ((315000, "dead_module", "TRACKER"), (315100, "hot_tower", "ECAL")):
        score = rng.lognormal(0.0, 0.35, 200)
        label = np.zeros(200, int)
        label[50:70] = 1
        score[50:70] *= 6
        frames.append(pd.DataFrame({
            "runId": run, "lumiId": np.arange(1, 201), "score": score, "label": label,
            "scenario": np.where(label == 1, scen, ""), "subsystem": np.where(label == 1, sub, ""),
            "era": "2018A" if run == 315000 else "2018B"}))
    return pd.concat(frames, ignore_index=True)


def _legend_texts(fig) -> list[str]:
    legends = [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends)
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def _no_overlap(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_text() and t.get_visible()]
    return all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _distance(c1, c2) -> float:
    return float(np.linalg.norm(np.subtract(to_rgb(c1), to_rgb(c2))))


@pytest.mark.parametrize("name, label", [
    ("qgTkPt_0", "qgTkPt q10"), ("qgTkPt_2", "qgTkPt q50"), ("qgTkPt_4", "qgTkPt q90"),
    ("qgTkPt_5", "qgTkPt mean"), ("qgTkPt_6", "qgTkPt RMS"), ("qgTkPt_b12", "qgTkPt bin 12"),
    ("hcal_depth_1_3", "hcal_depth_1 q70"), ("EventsPerLs", "EventsPerLs"), ("qgTkPt", "qgTkPt")])
def test_feature_label_spells_quantities(name, label):
    assert plots.feature_label(name) == label


def test_roc_gives_each_auc_and_a_true_chance_line():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(500), np.ones(50)].astype(int)
    perfect = roc_table(labels, np.r_[rng.random(500), 2 + rng.random(50)])
    random = roc_table(labels, rng.random(550))
    fig = plots.roc_plot({"perfect": perfect, "coin": random}, "ROC")
    texts = _legend_texts(fig)
    assert texts[0] == "perfect (AUC 1.000)"  # best first
    coin_auc = np.trapezoid(random["true_positive_rate"], random["false_positive_rate"])
    assert f"coin (AUC {coin_auc:.3f})" in texts
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    chance = [ln for ln in ax.get_lines() if ln.get_label().startswith("chance")]
    assert len(chance) == 1
    x, y = chance[0].get_data()
    np.testing.assert_allclose(y, x)  # y = x on a log axis is a curve, not a flat line
    assert x.min() < 0.01 and y.min() < 0.01
    fig.canvas.draw()
    assert _no_overlap(ax.get_xticklabels()) and _no_overlap(ax.get_yticklabels())
    assert any("%" in t.get_text() for t in ax.get_xticklabels())


def test_score_distribution_shows_classes_zone_and_cutoffs(scored):
    fig = plots.score_distribution(scored["score"], scored["label"], "scores", cutoffs=CUT,
                                   groups=scored["subsystem"].to_numpy())
    ax = fig.axes[0]
    texts = _legend_texts(fig)
    assert "good LS (360)" in texts
    assert "bad LS: ECAL (20)" in texts and "bad LS: TRACKER (20)" in texts
    assert "t_good = 0.8 (GOOD below)" in texts and "t_bad = 2.5 (BAD above)" in texts
    n_grey = int(((scored["score"] >= 0.8) & (scored["score"] <= 2.5)).sum())
    assert f"grey zone: {n_grey} LS to review" in texts
    # distinct colours: no bad subsystem drawn in (or near) the good LS's blue
    good_patch = [p for p in ax.patches if p.get_label() == "good LS (360)"][0]
    bad = [p for p in ax.patches if p.get_label().startswith("bad LS")]
    assert len(bad) == 2 and _distance(bad[0].get_edgecolor(), bad[1].get_edgecolor()) > 0.3
    assert all(_distance(p.get_edgecolor(), good_patch.get_facecolor()) > 0.35 for p in bad)
    # the grey zone is shaded exactly between the cut-offs
    spans = [p for p in ax.patches if isinstance(p, (Polygon, Rectangle))
             and not p.get_label().startswith(("good", "bad"))]
    xs = [np.asarray(p.get_xy())[:, 0] for p in spans if isinstance(p, Polygon)] + \
         [np.array([p.get_x(), p.get_x() + p.get_width()]) for p in spans
          if isinstance(p, Rectangle)]
    assert any(np.isclose(x.min(), 0.8) and np.isclose(x.max(), 2.5) for x in xs)
    cut_x = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_label().startswith("t_"))
    assert cut_x == [0.8, 2.5]
    fig.canvas.draw()
    assert _no_overlap(ax.get_xticklabels()) and _no_overlap(ax.get_yticklabels())


def test_score_distribution_keeps_a_narrow_bulk_readable_beside_outliers():
    rng = np.random.default_rng(1)
    scores = np.r_[200 + rng.normal(0, 10, 800), [850.0, 2500.0]]
    labels = np.r_[np.zeros(800), [1, 1]].astype(int)
    fig = plots.score_distribution(scores, labels, "narrow bulk", cutoffs={"t_good": 195,
                                                                           "t_bad": 230})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert hi < 2500  # the extreme LS sits in the last bin, not at the end of a long axis
    fig.canvas.draw()
    labels_shown = [t for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels_shown) >= 2 and _no_overlap(labels_shown)


def test_score_along_run_colours_decisions_and_keeps_the_legend_off_the_data(scored):
    run = scored[scored["runId"] == 315000]
    fig = plots.score_along_run(run, "run 315000", CUT)
    ax = fig.axes[0]
    texts = _legend_texts(fig)
    d = np.where(run["score"] < 0.8, "GOOD", np.where(run["score"] > 2.5, "BAD", "GREY"))
    assert f"GOOD (certified): {(d == 'GOOD').sum()}" in texts
    assert f"BAD (flagged): {(d == 'BAD').sum()}" in texts
    assert "truly bad: dead_module (20)" in texts
    assert any(t.startswith("t_bad = 2.5") for t in texts)
    colours = {c.get_label().split(" ")[0]: c.get_facecolor()[0] for c in ax.collections
               if c.get_label().startswith(("GOOD", "BAD", "grey"))}
    assert _distance(colours["GOOD"], plots.DECISION_COLORS["GOOD"]) < 1e-6
    assert _distance(colours["BAD"], plots.DECISION_COLORS["BAD"]) < 1e-6
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())  # hides neither t_bad nor LS 1


def test_drift_plot_has_a_box_per_window_against_the_calibration_band(scored):
    good = scored[scored["label"] == 0]
    calib = np.random.default_rng(2).lognormal(0.0, 0.35, 300)
    fig = plots.drift_plot(calib, good["score"], good["era"], "drift", CUT)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) == 2 and ticks[0].startswith("2018A\n180 LS")
    above = np.mean(good.loc[good["era"] == "2018A", "score"] > 2.5)
    assert f"{above:.1%} > t_bad" in ticks[0]
    texts = _legend_texts(fig)
    assert "calibration good LS, 5-95 % (300 LS)" in texts
    assert any(t.startswith("t_good") for t in texts) and any(t.startswith("t_bad") for t in texts)


def test_certify_plot_colours_each_ls_and_counts_in_the_title(scored):
    ls = scored[["runId", "lumiId", "score"]].copy()
    ls["decision"] = np.where(ls["score"] < 0.8, "GOOD", np.where(ls["score"] > 2.5, "BAD", "GREY"))
    ls.loc[ls.index[:5], "decision"] = LOW
    ls = ls.drop(index=ls.index[300:320])  # LS missing from the data stay white
    fig = plots.certify_plot(ls, "2018B certified")
    ax = fig.axes[0]
    counts = ls["decision"].value_counts()
    automation = (counts["GOOD"] + counts["BAD"]) / (counts["GOOD"] + counts["BAD"] + counts["GREY"])
    title = ax.get_title()
    assert f"{counts['GOOD']} GOOD, {counts['GREY']} grey, {counts['BAD']} BAD" in title
    assert f"automation {automation:.1%}" in title and "2 runs, 380 LS" in title
    image = ax.get_images()[0]
    rgba = image.to_rgba(image.get_array())
    bad = ls[ls["decision"] == "BAD"].iloc[0]
    row = 0 if bad["runId"] == 315000 else 1
    assert _distance(rgba[row, bad["lumiId"] - 1][:3], plots.DECISION_COLORS["BAD"]) < 1e-6
    assert np.ma.is_masked(image.get_array()[1, 300 - 200])  # a missing LS: no colour
    assert [t.get_text() for t in ax.get_yticklabels()] == ["315000", "315100"]


def test_data_report_spells_features_and_colours_eras(scored):
    rng = np.random.default_rng(4)
    frame = scored.copy()
    names = [f"qgTkPt_{k}" for k in range(7)] + [f"qpVtxN_{k}" for k in range(7)]
    X = rng.normal(size=(len(frame), len(names)))
    X[frame["label"].to_numpy() == 1, 4] += 4
    frame[names] = X
    fig = plots.data_report(frame, names, "report")
    xlabels = [a.get_xlabel() for a in fig.axes]
    assert "qgTkPt q90" in xlabels
    assert not any(lbl.endswith(tuple(f"_{k}" for k in range(7))) for lbl in xlabels)
    along = [a for a in fig.axes if a.get_xlabel().startswith("LS in data-taking order")][0]
    bands = [p for p in along.patches if isinstance(p, (Polygon, Rectangle))]
    assert len(bands) == 2 and _distance(bands[0].get_facecolor(), bands[1].get_facecolor()) > 0.2
    assert {t.get_text() for t in along.texts} == {"2018A", "2018B"}


def test_an_ls_against_its_reference_shows_shapes_band_and_departure():
    edges = np.linspace(0, 10, 11)
    rng = np.random.default_rng(0)
    ref = rng.dirichlet(np.full(10, 200.0), size=50)
    one = ref.mean(axis=0).copy()
    one[3] += 0.05
    one /= one.sum()
    with_ref = plots.HistogramPanel(
        "ZeroBias: qgTkPhi", edges, one, "run 1 LS 7", np.median(ref, axis=0),
        np.quantile(ref, 0.1, axis=0), np.quantile(ref, 0.9, axis=0), "48 % of the score")
    alone = plots.HistogramPanel("ZeroBias: qgTkEta", edges, one, "run 1 LS 7")
    fig = plots.histograms_vs_reference([with_ref, alone], "run 1 LS 7\nreference: 50 LS")
    shapes, residual, shapes2, residual2 = fig.axes
    assert shapes.get_title() == "ZeroBias: qgTkPhi\n48 % of the score"
    assert [t.get_text() for t in shapes.get_legend().get_texts()] == [
        "reference, 10-90 % per bin", "reference, median", "run 1 LS 7"]
    assert residual.get_xlabel() == "qgTkPhi" and "band half-widths" in residual.get_ylabel()
    low, high = residual.get_ylim()
    assert high >= 3 and low == -high  # the bin that departs is inside the axis
    assert [t.get_text() for t in shapes2.get_legend().get_texts()] == ["run 1 LS 7"]
    assert "no reference band" in residual2.texts[0].get_text()

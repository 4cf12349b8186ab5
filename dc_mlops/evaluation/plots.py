"""Figures a DC expert reads at a glance, without the code.

Conventions shared by every figure:

* decisions always have the same colours: GOOD green, grey zone grey, BAD red
  (:data:`DECISION_COLORS`); good LS (the truth) are blue, bad LS per subsystem take colours
  that are neither blue, green nor grey (:data:`SUBSYSTEM_COLORS`), so "bad beside good" is
  never "blue beside light blue";
* both cut-offs are drawn with their values, the grey zone between them is shaded;
* counts are in the legend, legends sit outside the data when points could hide under them;
* features are spelled as quantities (``qgTkPt q90``, ``qgTkPt mean``) by :func:`feature_label`;
* log axes only when the values span decades, with ticks that never overlap.

Every function returns a matplotlib Figure (the caller logs and closes it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from dc_mlops.data.features import N_SUMMARY, SUMMARY_QUANTILES
from dc_mlops.evaluation.greyzone import BAD, GOOD, GREY, LOW, decide

DECISION_COLORS = {GOOD: "#1a9850", GREY: "#a6a6a6", BAD: "#d73027"}
DECISION_NAMES = {GOOD: "GOOD (certified)", GREY: "grey zone (to review)", BAD: "BAD (flagged)"}
GOOD_LS_COLOR = "#3b6fb6"
#: bad LS per subsystem, the same in every figure: far from the good LS's blue, from the
#: decision colours and from each other (other names cycle through SUBSYSTEM_COLORS)
SUBSYSTEM_COLOR = {"TRACKER": "#d55e00", "PIXEL": "#7b3294", "MUON": "#000000",
                   "ECAL": "#e6ab02", "HCAL": "#e7298a", "JETMET": "#6b3e07",
                   "unknown": "#00b4b4"}
SUBSYSTEM_COLORS = tuple(SUBSYSTEM_COLOR.values())
SCENARIO_MARKERS = ("X", "D", "^", "s", "P", "v", "*", "h")
LOW_STATS_COLOR = "#c6dbef"
CUT_STYLE = {GOOD: dict(color=DECISION_COLORS[GOOD], ls="--", lw=1.4),
             BAD: dict(color=DECISION_COLORS[BAD], ls="--", lw=1.4)}


# ---- names ------------------------------------------------------------------------------
def feature_label(name: str) -> str:
    """A feature as a DC expert says it: ``qgTkPt_4`` -> ``qgTkPt q90``, ``qgTkPt_5`` ->
    ``qgTkPt mean``, ``qgTkPt_6`` -> ``qgTkPt RMS``, ``qgTkPt_b12`` -> ``qgTkPt bin 12``.

    Suffixes 0..4 are the 10/30/50/70/90 % quantiles of the 7-number summary; any other
    name is returned unchanged.
    """
    hist, sep, suffix = name.rpartition("_")
    if not sep:
        return name
    if suffix.isdigit() and int(suffix) < N_SUMMARY:
        k = int(suffix)
        if k < len(SUMMARY_QUANTILES):
            return f"{hist} q{round(100 * SUMMARY_QUANTILES[k]):d}"
        return f"{hist} {'mean' if k == len(SUMMARY_QUANTILES) else 'RMS'}"
    if suffix.startswith("b") and suffix[1:].isdigit():
        return f"{hist} bin {int(suffix[1:])}"
    return name


def subsystem_color(name: str, index: int = 0) -> str:
    """The colour of bad LS of ``name`` (fixed for the CMS subsystems)."""
    return SUBSYSTEM_COLOR.get(name, SUBSYSTEM_COLORS[index % len(SUBSYSTEM_COLORS)])


def _n(k: int) -> str:
    """4922 -> '4 922': counts a person reads without counting digits."""
    return f"{k:,}".replace(",", "\u2009")


def _fmt(x: float) -> str:
    return "inf" if not np.isfinite(x) else f"{x:.3g}"


# ---- axes helpers -----------------------------------------------------------------------
def _wants_log(values: np.ndarray) -> bool:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return len(v) > 0 and v.min() > 0 and v.max() / v.min() > 5


def _log_ticks(axis, lo: float | None = None, hi: float | None = None) -> None:
    """Log-axis ticks that never overlap: decades only (10^k) over a wide range; 1-2-5
    steps written as plain numbers when the axis spans less than two decades."""
    if lo is not None and hi is not None and 0 < lo < hi and np.log10(hi / lo) < 2:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
        axis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    else:
        axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 0.1, numticks=12))
    axis.set_minor_formatter(NullFormatter())


def _percent(axis, decimals: int = 0) -> None:
    def fmt(x, _pos):
        if x <= 0:
            return "0 %"
        d = max(decimals, int(np.ceil(-np.log10(100 * x)))) if x < 0.01 else decimals
        return f"{100 * x:.{d}f} %"
    axis.set_major_formatter(FuncFormatter(fmt))


def _decide(scores: np.ndarray, cutoffs: Mapping[str, float]) -> np.ndarray:
    """GOOD/GREY/BAD by the one rule in greyzone.decide."""
    return decide(scores, cutoffs["t_good"], cutoffs["t_bad"])


def _cutoff_lines(ax, cutoffs: Mapping[str, float] | None, vertical: bool) -> list:
    """Both cut-offs (with their values) and the grey zone between them shaded."""
    handles = []
    if not cutoffs:
        return handles
    t_good, t_bad = cutoffs.get("t_good", np.nan), cutoffs.get("t_bad", np.nan)
    span, line = (ax.axvspan, ax.axvline) if vertical else (ax.axhspan, ax.axhline)
    if np.isfinite(t_good) and np.isfinite(t_bad) and t_bad > t_good:
        span(t_good, t_bad, color=DECISION_COLORS[GREY], alpha=0.18, lw=0, zorder=0)
    for key, which, text in (("t_good", GOOD, "GOOD below"), ("t_bad", BAD, "BAD above")):
        value = cutoffs.get(key, np.nan)
        if np.isfinite(value):
            handles.append(line(value, **CUT_STYLE[which], zorder=4,
                                label=f"{key} = {_fmt(value)} ({text})"))
    return handles


# ---- ROC --------------------------------------------------------------------------------
def roc_plot(curves: Mapping[str, pd.DataFrame], title: str,
             aucs: Mapping[str, float] | None = None) -> plt.Figure:
    """ROC curves (one model or several), good LS flagged (log x) vs bad LS caught.

    ``curves`` maps a name to a table with ``false_positive_rate`` and ``true_positive_rate``
    (metrics.roc_table); the legend gives each curve's AUC (``aucs``, else the area under the
    table's curve). On the log x axis the chance line is the curve y = x.
    """
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    lowest = 1.0
    area = {name: (aucs or {}).get(name, _area(t)) for name, t in curves.items()}
    colors = dict(zip(curves, plt.cm.tab10.colors))  # a model keeps its colour
    for name in sorted(curves, key=lambda n: -np.nan_to_num(area[n], nan=-1)):  # best first
        t = curves[name]
        fpr = t["false_positive_rate"].to_numpy(np.float64)
        tpr = t["true_positive_rate"].to_numpy(np.float64)
        ax.plot(fpr, tpr, lw=1.8, color=colors[name], label=f"{name} (AUC {area[name]:.3f})")
        if (fpr > 0).any():
            lowest = min(lowest, fpr[fpr > 0].min())
    lo = float(np.clip(10 ** np.floor(np.log10(lowest)), 1e-5, 1e-2))
    x = np.logspace(np.log10(lo), 0, 200)
    ax.plot(x, x, ls=":", color="0.35", lw=1.2, label="chance (AUC 0.500)")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(0, 1.01)
    _log_ticks(ax.xaxis)
    _percent(ax.xaxis)
    _percent(ax.yaxis)
    ax.set_xlabel("good LS flagged (false positive rate, log scale)")
    ax.set_ylabel("bad LS caught (true positive rate)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="upper left", fontsize=9, title="higher and further left is better",
              title_fontsize=8)
    return fig


def _area(t: pd.DataFrame) -> float:
    fpr = t["false_positive_rate"].to_numpy(np.float64)
    tpr = t["true_positive_rate"].to_numpy(np.float64)
    return float(np.trapezoid(tpr, fpr)) if len(fpr) > 1 else float("nan")


# ---- decision values --------------------------------------------------------------------
def score_distribution(scores: np.ndarray, labels: np.ndarray, title: str,
                       cutoffs: Mapping[str, float] | None = None,
                       groups: np.ndarray | None = None) -> plt.Figure:
    """Decision values of good LS and of bad LS per subsystem, the grey zone shaded between
    the two cut-offs (each labelled with its value), counts in the legend."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    finite = scores[np.isfinite(scores)]
    # the axis covers 0.1-99.9 % of the LS and both cut-offs; a few extreme LS would
    # otherwise squeeze everything else into one bin (they are counted in the end bins)
    lo, hi = np.quantile(finite, [0.001, 0.999])
    for key in ("t_good", "t_bad"):
        value = (cutoffs or {}).get(key, np.nan)
        if np.isfinite(value):
            lo, hi = min(lo, value), max(hi, value)
    log = lo > 0 and _wants_log(finite)
    if log:
        lo, hi = lo / 1.15, hi * 1.15
        bins = np.logspace(np.log10(lo), np.log10(hi), 70)
    else:
        pad = 0.03 * (hi - lo) if hi > lo else 1.0
        bins = np.linspace(lo - pad, hi + pad, 71)
    clip = lambda v: np.clip(v, bins[0], bins[-1])  # noqa: E731 - outliers into the end bins
    fig, ax = plt.subplots(figsize=(9, 5.2), constrained_layout=True)
    handles = []
    good = labels == 0
    handles.append(ax.hist(clip(scores[good]), bins=bins, histtype="stepfilled", alpha=0.45,
                           color=GOOD_LS_COLOR, label=f"good LS ({_n(good.sum())})")[2][0])
    bad_groups = (np.asarray(groups).astype(str) if groups is not None
                  else np.full(len(scores), "bad"))
    for i, g in enumerate(sorted(set(bad_groups[labels == 1]))):
        m = (labels == 1) & (bad_groups == g)
        color = subsystem_color(g or "unknown", i) if groups is not None else SUBSYSTEM_COLORS[0]
        name = "bad LS" if groups is None else f"bad LS: {g or 'unknown'}"
        handles.append(ax.hist(clip(scores[m]), bins=bins, histtype="step", lw=1.8,
                               color=color, label=f"{name} ({_n(m.sum())})")[2][0])
    handles += _cutoff_lines(ax, cutoffs, vertical=True)
    if cutoffs and all(np.isfinite(cutoffs.get(k, np.nan)) for k in ("t_good", "t_bad")):
        d = _decide(scores, cutoffs)
        handles.append(Patch(color=DECISION_COLORS[GREY], alpha=0.35,
                             label=f"grey zone: {_n((d == GREY).sum())} LS to review"))
    if log:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, bins[0], bins[-1])
    ax.set_xlim(bins[0], bins[-1])
    ax.set_yscale("log")
    _log_ticks(ax.yaxis)
    n_out = int(((scores < bins[0]) | (scores > bins[-1])).sum())
    ax.set_xlabel("decision value (higher = more anomalous)" + (", log scale" if log else "")
                  + (f"; {n_out} LS beyond the axis counted in the end bins" if n_out else ""))
    ax.set_ylabel("number of LS (log scale)")
    ax.set_title(title)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0)
    return fig


def histogram_errors(per_hist: pd.DataFrame, title: str) -> plt.Figure:
    """Mean contribution of each histogram to the score, good vs bad LS (log scale)."""
    order = per_hist.sort_values("bad", ascending=True).index
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(order) + 1.5), constrained_layout=True)
    y = np.arange(len(order))
    ax.barh(y - 0.2, per_hist.loc[order, "good"], height=0.4, color=GOOD_LS_COLOR,
            label="good LS")
    ax.barh(y + 0.2, per_hist.loc[order, "bad"], height=0.4, color=SUBSYSTEM_COLORS[0],
            label="bad LS")
    ax.set_yticks(y, [feature_label(str(h)) for h in order], fontsize=8)
    ax.set_xscale("log")
    _log_ticks(ax.xaxis)
    ax.set_xlabel("mean contribution to the decision value (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def score_along_run(run: pd.DataFrame, title: str, cutoffs: Mapping[str, float] | None = None
                    ) -> plt.Figure:
    """Decision value vs LS number along one run: each LS coloured by its decision
    (column ``decision``, else from ``cutoffs``), the truly bad LS ringed by failure
    scenario, the cut-offs and grey zone drawn; the legend sits outside the axes."""
    run = run.sort_values("lumiId")
    ls = run["lumiId"].to_numpy()
    score = run["score"].to_numpy(np.float64)
    fig, ax = plt.subplots(figsize=(11, 4.2), constrained_layout=True)
    ax.plot(ls, score, color="0.6", lw=0.6, zorder=1)
    if "decision" in run:
        decision = run["decision"].astype(str).to_numpy()
    elif cutoffs:
        decision = _decide(score, cutoffs)
    else:
        decision = None
    handles = []
    if decision is None:
        handles.append(ax.scatter(ls, score, s=10, color=GOOD_LS_COLOR, zorder=2,
                                  label=f"LS ({_n(len(ls))})"))
    else:
        for d in (GOOD, GREY, BAD):
            m = decision == d
            handles.append(ax.scatter(ls[m], score[m], s=12, color=DECISION_COLORS[d], zorder=2,
                                      label=f"{DECISION_NAMES[d]}: {_n(m.sum())}"))
    bad = run["label"].to_numpy() == 1
    scenarios = run.get("scenario", pd.Series("", index=run.index)).fillna("").astype(str)
    for scen, marker in zip(sorted(set(scenarios[bad])), SCENARIO_MARKERS):
        m = bad & (scenarios.to_numpy() == scen)
        handles.append(ax.scatter(ls[m], score[m], s=70, marker=marker, facecolors="none",
                                  edgecolors="black", lw=1.1, zorder=3,
                                  label=f"truly bad: {scen or 'unknown'} ({_n(m.sum())})"))
    handles += _cutoff_lines(ax, cutoffs, vertical=False)
    if _wants_log(score):
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, np.nanmin(score), np.nanmax(score))
    ax.set_xlabel("lumisection")
    ax.set_ylabel("decision value (higher = more anomalous)")
    ax.set_xlim(ls.min() - 1, ls.max() + 1)
    ax.set_title(title)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0)
    return fig


# ---- drift ------------------------------------------------------------------------------
def drift_plot(calib_scores: np.ndarray, scores: np.ndarray, windows: Sequence, title: str,
               cutoffs: Mapping[str, float] | None = None,
               window_name: str = "era") -> plt.Figure:
    """Good-LS decision values per era or rolling window (box: 25-75 %, whiskers 5-95 %)
    against the calibration LS (band: their 5-95 %, line: median), with the cut-offs.

    ``scores``/``windows`` are the good LS only, in data-taking order; windows appear in
    the order they first occur. Under each box: its LS count and the share above t_bad
    (good LS that would be flagged BAD).
    """
    calib = np.asarray(calib_scores, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    windows = np.asarray(windows).astype(str)
    names = list(dict.fromkeys(windows))
    data = [scores[windows == w] for w in names]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(names) + 3.5), 5.2),
                           constrained_layout=True)
    q05, q50, q95 = np.quantile(calib, [0.05, 0.5, 0.95])
    band = ax.axhspan(q05, q95, color=GOOD_LS_COLOR, alpha=0.15, lw=0,
                      label=f"calibration good LS, 5-95 % ({_n(len(calib))} LS)")
    median = ax.axhline(q50, color=GOOD_LS_COLOR, lw=1.2, label="calibration median")
    box = ax.boxplot(data, positions=np.arange(len(names)), widths=0.55, whis=(5, 95),
                     showfliers=False, patch_artist=True, medianprops=dict(color="black"))
    for patch in box["boxes"]:
        patch.set(facecolor="white", edgecolor="black")
    handles = [band, median] + _cutoff_lines(ax, cutoffs, vertical=False)
    t_bad = (cutoffs or {}).get("t_bad", np.nan)
    labels = []
    for w, d in zip(names, data):
        extra = f"\n{np.mean(d > t_bad):.1%} > t_bad" if np.isfinite(t_bad) and len(d) else ""
        labels.append(f"{w}\n{_n(len(d))} LS{extra}")
    ax.set_xticks(np.arange(len(names)), labels, fontsize=8)
    both = np.concatenate([calib, scores])
    if _wants_log(both):
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, np.nanmin(both), np.nanmax(both))
    ax.set_xlabel(f"good LS per {window_name} (box 25-75 %, whiskers 5-95 %)")
    ax.set_ylabel("decision value of good LS")
    ax.set_title(title)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              borderaxespad=0)
    return fig


# ---- certification of an era ------------------------------------------------------------
LOW_STATS = LOW  # the decision of an LS below the event cut


def certify_plot(ls: pd.DataFrame, title: str, max_runs: int = 80) -> plt.Figure:
    """GOOD/BAD/grey along the runs of a certified era: one row per run, LS on x.

    ``ls`` has ``runId``, ``lumiId`` and ``decision`` (GOOD, GREY, BAD, or LOW_STATS for LS
    below the event cut); LS absent from the data stay white. The title carries the counts
    and the automation; each row ends with its run's counts. With more than ``max_runs``
    runs, the runs with the most LS to review are drawn (the title says so).
    """
    order = [GOOD, GREY, BAD, LOW_STATS]
    colors = [DECISION_COLORS[GOOD], DECISION_COLORS[GREY], DECISION_COLORS[BAD],
              LOW_STATS_COLOR]
    d = ls["decision"].astype(str).to_numpy()
    counts = {k: int((d == k).sum()) for k in order}
    decided = counts[GOOD] + counts[GREY] + counts[BAD]
    automation = (counts[GOOD] + counts[BAD]) / decided if decided else 0.0
    runs = sorted(ls["runId"].unique())
    shown = runs
    if len(runs) > max_runs:
        grey_per_run = ls[ls["decision"] == GREY].groupby("runId").size()
        shown = sorted(grey_per_run.reindex(runs, fill_value=0)
                       .sort_values(ascending=False, kind="stable").index[:max_runs])
    sub = ls[ls["runId"].isin(shown)]
    n_ls = int(sub["lumiId"].max()) if len(sub) else 1
    grid = np.full((len(shown), n_ls), np.nan)
    row = {r: i for i, r in enumerate(shown)}
    code = {k: i for i, k in enumerate(order)}
    grid[sub["runId"].map(row).to_numpy(), sub["lumiId"].to_numpy() - 1] = \
        sub["decision"].astype(str).map(code).to_numpy(np.float64)
    height = min(0.32 * len(shown) + 2.0, 24)
    fig, ax = plt.subplots(figsize=(12, height), constrained_layout=True)
    cmap = ListedColormap(colors).with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(grid), aspect="auto", interpolation="nearest", cmap=cmap,
              vmin=-0.5, vmax=len(order) - 0.5, extent=(0.5, n_ls + 0.5, len(shown) - 0.5, -0.5))
    if len(shown) <= 40:  # white gaps between runs
        ax.hlines(np.arange(len(shown) - 1) + 0.5, 0.5, n_ls + 0.5, color="white", lw=2)
    step = max(1, int(np.ceil(len(shown) / 40)))
    ax.set_yticks(np.arange(0, len(shown), step), [str(r) for r in shown[::step]], fontsize=8)
    per_run = sub.groupby("runId")["decision"].value_counts().unstack(fill_value=0)
    right = ax.secondary_yaxis("right")
    right.set_yticks(np.arange(0, len(shown), step),
                     [_run_counts(per_run, r) for r in shown[::step]], fontsize=7)
    ax.set_xlabel("lumisection")
    ax.set_ylabel("run")
    note = f" ({len(shown)} of {len(runs)} runs: those with most LS to review)" \
        if len(shown) < len(runs) else ""
    ax.set_title(f"{title}{note}\n{_n(len(runs))} runs, {_n(len(ls))} LS: "
                 f"{_n(counts[GOOD])} GOOD, {_n(counts[GREY])} grey, {_n(counts[BAD])} BAD, "
                 f"{_n(counts[LOW_STATS])} low statistics; automation {automation:.1%}")
    fig.legend(handles=[Patch(color=c, label=f"{DECISION_NAMES.get(k, 'low statistics (not certified)')}"
                              f" ({_n(counts[k])})") for k, c in zip(order, colors)]
               + [Patch(facecolor="white", edgecolor="0.5", label="no data")],
               fontsize=8, loc="outside lower center", ncol=5, frameon=False)
    return fig


def _run_counts(per_run: pd.DataFrame, run) -> str:
    if run not in per_run.index:
        return ""
    c = per_run.loc[run]
    return (f"{int(c.get(GOOD, 0))} G / {int(c.get(GREY, 0))} grey / {int(c.get(BAD, 0))} B")


# ---- one LS against its reference -------------------------------------------------------
LS_COLOR = "black"  # the LS under review: stands out against the blue good-LS reference


@dataclass(frozen=True)
class HistogramPanel:
    """One histogram of one LS beside a reference of good LS, as shapes (fractions of the
    entries per bin), so that an LS with fewer events compares with the reference."""

    title: str  # e.g. "ZeroBias: qgTkEta"
    edges: np.ndarray  # n_bins + 1
    ls_shape: np.ndarray  # n_bins, sums to 1
    ls_label: str  # e.g. "run 322930 LS 780"
    ref_median: np.ndarray | None = None  # n_bins: the reference LS's median shape
    ref_low: np.ndarray | None = None  # n_bins: their 10 % quantile per bin
    ref_high: np.ndarray | None = None  # n_bins: their 90 % quantile per bin
    note: str = ""  # second title line, e.g. "48 % of the score; 4.1x a good LS's departure"


def histograms_vs_reference(panels: Sequence[HistogramPanel], title: str,
                            ncols: int = 3) -> plt.Figure:
    """The histograms of one LS (black) over its reference: the good LS's median shape (blue
    line) and their 10-90 % band per bin (shaded), one panel per histogram with the reason
    for it in its title. Under each, the LS's departure per bin in units of the band's
    half-width (within +-1: as a typical good LS), since a few-percent shape change is hard
    to see on the shapes themselves. ``title`` says which LS the reference is."""
    ncols = max(1, min(ncols, len(panels)))
    nrows = int(np.ceil(len(panels) / ncols)) if panels else 1
    fig = plt.figure(figsize=(5.2 * ncols, 5.0 * nrows + 0.8), constrained_layout=True)
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3, 1.2] * nrows)
    for k, p in enumerate(panels):
        r, col = divmod(k, ncols)
        ax = fig.add_subplot(grid[2 * r, col])
        res = fig.add_subplot(grid[2 * r + 1, col], sharex=ax)
        handles = []
        band = p.ref_low is not None and p.ref_high is not None
        if band:
            handles.append(ax.stairs(p.ref_high, p.edges, baseline=p.ref_low, fill=True,
                                     color=GOOD_LS_COLOR, alpha=0.22, lw=0,
                                     label="reference, 10-90 % per bin"))
        if p.ref_median is not None:
            handles.append(ax.stairs(p.ref_median, p.edges, color=GOOD_LS_COLOR, lw=1.6,
                                     label="reference, median"))
        handles.append(ax.stairs(p.ls_shape, p.edges, color=LS_COLOR, lw=1.4,
                                 label=p.ls_label))
        ax.set_title(p.title + (f"\n{p.note}" if p.note else ""), fontsize=10)
        ax.set_ylabel("fraction of entries")
        ax.set_ylim(bottom=0)
        ax.tick_params(labelbottom=False)
        ax.legend(handles=handles, fontsize=7, loc="best")
        if band and p.ref_median is not None:
            half = (np.asarray(p.ref_high) - np.asarray(p.ref_low)) / 2
            scale = np.where(half > 0, half, np.nan)
            pull = np.clip((np.asarray(p.ls_shape) - p.ref_median) / scale, -9.9, 9.9)
            res.axhspan(-1, 1, color=GOOD_LS_COLOR, alpha=0.22, lw=0)
            res.stairs(np.nan_to_num(pull), p.edges, color=LS_COLOR, lw=1.2)
            res.axhline(0, color=GOOD_LS_COLOR, lw=1)
            lim = max(3.0, float(np.nanmax(np.abs(pull), initial=0)) * 1.1)
            res.set_ylim(-lim, lim)
            res.set_ylabel("LS - median\n(band half-widths)", fontsize=8)
        else:
            res.text(0.5, 0.5, "no reference band (too few good LS)", ha="center",
                     va="center", transform=res.transAxes, fontsize=8)
            res.set_yticks([])
        res.set_xlabel(p.title.rpartition(": ")[2])
        res.locator_params(axis="x", nbins=6)
    fig.suptitle(title)
    return fig


# ---- data report ------------------------------------------------------------------------
def data_report(frame: pd.DataFrame, feature_names: list[str], title: str,
                max_points: int = 20000, seed: int = 0) -> plt.Figure:
    """What the data look like before any detector: PCA of LS by label, by bad-LS subsystem
    and by era; the first principal component along data-taking order with the eras as
    coloured bands (drift shows as a slope); the four features that separate bad from good
    LS most, spelled as quantities.

    The PCA is fitted on good LS so that bad LS show up as departures from the good cloud.
    """
    rng = np.random.default_rng(seed)
    sample = frame if len(frame) <= max_points else frame.iloc[
        np.sort(rng.choice(len(frame), max_points, replace=False))]
    sample = sample.sort_values(["runId", "lumiId"]) if {"runId", "lumiId"} <= set(sample) \
        else sample
    good = sample["label"].to_numpy() == 0
    X = sample[feature_names].to_numpy(np.float64)
    ref = X[good] if good.any() else X
    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=2, random_state=seed).fit(scaler.transform(ref))
    Z = pca.transform(scaler.transform(X))
    eras = (sample["era"].fillna("").astype(str).replace("", "unknown").to_numpy()
            if "era" in sample else np.full(len(sample), "all"))
    era_names = list(dict.fromkeys(eras))
    era_colors = dict(zip(era_names, plt.cm.viridis(np.linspace(0.05, 0.85, len(era_names)))))

    fig = plt.figure(figsize=(16, 13), constrained_layout=True)
    grid = fig.add_gridspec(3, 12, height_ratios=[1.15, 0.75, 1])
    ax = fig.add_subplot(grid[0, 0:4])
    ax.scatter(Z[good, 0], Z[good, 1], s=3, color=GOOD_LS_COLOR, alpha=0.35,
               label=f"good LS ({_n(good.sum())})")
    ax.scatter(Z[~good, 0], Z[~good, 1], s=6, color=SUBSYSTEM_COLORS[0], alpha=0.8,
               label=f"bad LS ({_n((~good).sum())})")
    _pca_axes(ax, pca, "LS by label")
    ax = fig.add_subplot(grid[0, 4:8])
    ax.scatter(Z[good, 0], Z[good, 1], s=3, color="0.8", alpha=0.35, label="good LS")
    subsystems = sample["subsystem"].fillna("").astype(str).replace("", "unknown").to_numpy()
    for i, name in enumerate(sorted(set(subsystems[~good]))):
        m = (~good) & (subsystems == name)
        ax.scatter(Z[m, 0], Z[m, 1], s=7, color=subsystem_color(name, i), alpha=0.85,
                   label=f"bad: {name} ({_n(m.sum())})")
    _pca_axes(ax, pca, "bad LS by subsystem")
    ax = fig.add_subplot(grid[0, 8:12])
    for name in era_names:
        m = good & (eras == name)
        ax.scatter(Z[m, 0], Z[m, 1], s=3, color=era_colors[name], alpha=0.4,
                   label=f"{name} ({_n(m.sum())})")
    _pca_axes(ax, pca, "good LS by era")

    ax = fig.add_subplot(grid[1, :])
    order = np.arange(len(sample))
    for name in era_names:
        idx = order[eras == name]
        if len(idx):
            ax.axvspan(idx.min() - 0.5, idx.max() + 0.5, color=era_colors[name], alpha=0.18,
                       lw=0)
            ax.text((idx.min() + idx.max()) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9, fontweight="bold")
    ax.scatter(order[good], Z[good, 0], s=2, color=GOOD_LS_COLOR, alpha=0.5, label="good LS")
    ax.scatter(order[~good], Z[~good, 0], s=5, color=SUBSYSTEM_COLORS[0], alpha=0.8,
               label="bad LS")
    ax.set_xlim(-0.5, len(sample) - 0.5)
    ax.set_xlabel("LS in data-taking order (runs, then LS number)")
    ax.set_ylabel("PC1 of good LS")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1), markerscale=3)

    for k, feat in enumerate(_most_separating(sample, feature_names, good, 4)):
        ax = fig.add_subplot(grid[2, 3 * k:3 * k + 3])
        values = sample[feat].to_numpy(np.float64)
        bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=50)
        ax.hist(values[good], bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                color=GOOD_LS_COLOR, label="good LS")
        if (~good).any():
            ax.hist(values[~good], bins=bins, density=True, histtype="step", lw=1.6,
                    color=SUBSYSTEM_COLORS[0], label="bad LS")
        ax.set_xlabel(feature_label(feat))
        ax.set_ylabel("LS density")
        ax.locator_params(axis="x", nbins=5)
        ax.legend(fontsize=8)
    fig.suptitle(title + "\n(features: q10...q90 = quantiles of each histogram, mean, RMS)")
    return fig


def _pca_axes(ax: plt.Axes, pca: PCA, title: str) -> None:
    ev = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 of good LS ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc="best")


def _most_separating(frame: pd.DataFrame, names: list[str], good: np.ndarray, k: int) -> list[str]:
    """Features whose bad-LS median sits furthest from the good ones (in good-LS spreads),
    at most one per histogram so that the panels show k different histograms."""
    if good.all() or not good.any():
        return names[:k]
    X = frame[names].to_numpy(np.float64)
    spread = X[good].std(axis=0) + 1e-12
    shift = np.abs(np.median(X[~good], axis=0) - np.median(X[good], axis=0)) / spread
    out, seen = [], set()
    for i in np.argsort(-shift):
        hist = names[i].rpartition("_")[0] or names[i]
        if hist not in seen:
            out.append(names[i])
            seen.add(hist)
        if len(out) == k:
            break
    return out

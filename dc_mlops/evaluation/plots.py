"""Figures a DC expert reads without the code: every axis labelled, classes named in words."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

GOOD_COLOR = "#2b8cbe"


def data_report(frame: pd.DataFrame, feature_names: list[str], title: str,
                max_points: int = 20000, seed: int = 0) -> plt.Figure:
    """PCA of LS coloured by label and by bad-LS subsystem, plus good-vs-bad distributions.

    The PCA is fitted on good LS so that bad LS show up as departures from the good cloud.
    """
    rng = np.random.default_rng(seed)
    sample = frame if len(frame) <= max_points else frame.iloc[
        np.sort(rng.choice(len(frame), max_points, replace=False))]
    good = sample["label"].to_numpy() == 0
    X = sample[feature_names].to_numpy(np.float64)
    scaler = StandardScaler().fit(X[good] if good.any() else X)
    pca = PCA(n_components=2, random_state=seed).fit(scaler.transform(X[good] if good.any() else X))
    Z = pca.transform(scaler.transform(X))
    fig = plt.figure(figsize=(15, 9), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, :2])
    ax.scatter(Z[good, 0], Z[good, 1], s=3, c=GOOD_COLOR, alpha=0.4, label=f"good LS ({good.sum()})")
    ax.scatter(Z[~good, 0], Z[~good, 1], s=5, c="#d7301f", alpha=0.7, label=f"bad LS ({(~good).sum()})")
    _pca_axes(ax, pca, "LS coloured by label")
    ax = fig.add_subplot(grid[0, 2:])
    ax.scatter(Z[good, 0], Z[good, 1], s=3, c="lightgrey", alpha=0.4, label="good LS")
    subsystems = sample.loc[~good, "subsystem"].replace("", "unknown")
    for name, color in zip(sorted(subsystems.unique()), plt.cm.tab10.colors):
        m = (~good) & (sample["subsystem"].replace("", "unknown").to_numpy() == name)
        ax.scatter(Z[m, 0], Z[m, 1], s=6, color=color, alpha=0.8, label=f"bad: {name} ({m.sum()})")
    _pca_axes(ax, pca, "bad LS coloured by subsystem")
    for k, feat in enumerate(_most_separating(sample, feature_names, good, 4)):
        ax = fig.add_subplot(grid[1, k])
        values = sample[feat].to_numpy()
        bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=50)
        ax.hist(values[good], bins=bins, density=True, histtype="stepfilled", alpha=0.5,
                color=GOOD_COLOR, label="good")
        if (~good).any():
            ax.hist(values[~good], bins=bins, density=True, histtype="step", lw=1.5,
                    color="#d7301f", label="bad")
        ax.set_xlabel(feat)
        ax.set_ylabel("LS density")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _pca_axes(ax: plt.Axes, pca: PCA, title: str) -> None:
    ev = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 of good LS ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc="best")


def _most_separating(frame: pd.DataFrame, names: list[str], good: np.ndarray, k: int) -> list[str]:
    """Features whose bad-LS median sits furthest from the good ones (in good-LS spreads)."""
    if good.all() or not good.any():
        return names[:k]
    X = frame[names].to_numpy(np.float64)
    spread = X[good].std(axis=0) + 1e-12
    shift = np.abs(np.median(X[~good], axis=0) - np.median(X[good], axis=0)) / spread
    return [names[i] for i in np.argsort(-shift)[:k]]


def roc_plot(curves: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """ROC curves (one model or several overlaid); good LS flagged vs bad LS caught."""
    fig, ax = plt.subplots(figsize=(6.5, 6), constrained_layout=True)
    for name, t in curves.items():
        ax.plot(t["false_positive_rate"], t["true_positive_rate"], lw=1.6, label=name)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("good LS flagged as anomalous (false positive rate, log scale)")
    ax.set_ylabel("bad LS caught (true positive rate)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def score_distribution(scores: np.ndarray, labels: np.ndarray, title: str,
                       cutoffs: dict[str, float] | None = None,
                       groups: np.ndarray | None = None) -> plt.Figure:
    """Decision values of good vs bad LS (log x), with the cut-offs drawn when known."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    positive = scores[scores > 0]
    lo = np.quantile(positive, 0.001) if len(positive) else 1e-6
    bins = np.logspace(np.log10(max(lo, 1e-12)), np.log10(max(scores.max(), lo * 10)), 80)
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    ax.hist(np.clip(scores[labels == 0], bins[0], None), bins=bins, histtype="stepfilled",
            alpha=0.5, color=GOOD_COLOR, label=f"good LS ({(labels == 0).sum()})")
    if groups is None:
        ax.hist(np.clip(scores[labels == 1], bins[0], None), bins=bins, histtype="step", lw=1.5,
                color="#d7301f", label=f"bad LS ({(labels == 1).sum()})")
    else:
        groups = np.asarray(groups).astype(str)
        for g, color in zip(sorted(set(groups[labels == 1])), plt.cm.tab10.colors):
            m = (labels == 1) & (groups == g)
            ax.hist(np.clip(scores[m], bins[0], None), bins=bins, histtype="step", lw=1.4,
                    color=color, label=f"bad: {g or 'unknown'} ({m.sum()})")
    for name, value in (cutoffs or {}).items():
        ax.axvline(value, ls="--", color="black", lw=1)
        ax.text(value, ax.get_ylim()[1] * 0.9, f" {name}", rotation=90, va="top", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("decision value (higher = more anomalous)")
    ax.set_ylabel("number of LS")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def histogram_errors(per_hist: pd.DataFrame, title: str) -> plt.Figure:
    """Mean contribution of each histogram to the score, good vs bad LS (log scale)."""
    order = per_hist.sort_values("bad", ascending=True).index
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(order) + 1.5), constrained_layout=True)
    y = np.arange(len(order))
    ax.barh(y - 0.2, per_hist.loc[order, "good"], height=0.4, color=GOOD_COLOR, label="good LS")
    ax.barh(y + 0.2, per_hist.loc[order, "bad"], height=0.4, color="#d7301f", label="bad LS")
    ax.set_yticks(y, order, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("mean contribution to the decision value (e.g. squared reconstruction error)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def score_along_run(run: pd.DataFrame, title: str, cutoffs: dict[str, float] | None = None
                    ) -> plt.Figure:
    """Decision value vs LS number along one run, bad LS marked, cut-offs drawn."""
    fig, ax = plt.subplots(figsize=(10, 4), constrained_layout=True)
    good = run["label"].to_numpy() == 0
    ax.plot(run["lumiId"], run["score"], color="grey", lw=0.6, zorder=1)
    ax.scatter(run.loc[good, "lumiId"], run.loc[good, "score"], s=6, color=GOOD_COLOR,
               label="good LS", zorder=2)
    for scen, color in zip(sorted(run.loc[~good, "scenario"].unique()), plt.cm.tab10.colors[1:]):
        m = (~good) & (run["scenario"].to_numpy() == scen)
        ax.scatter(run.loc[m, "lumiId"], run.loc[m, "score"], s=12, color=color,
                   label=f"bad: {scen}", zorder=3)
    for name, value in (cutoffs or {}).items():
        if np.isfinite(value):
            ax.axhline(value, ls="--", color="black", lw=1)
            ax.text(run["lumiId"].min(), value, f" {name}", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("lumisection")
    ax.set_ylabel("decision value")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return fig

"""Figures a DC expert reads without the code: every axis labelled, classes named in words."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

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

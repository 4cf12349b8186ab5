"""From binned counts to features: the 7-number summary (SPEC §2.2) and normalised bins.

Everything works on a whole (n_LS, n_bins) matrix at once: a Python loop over LS is ~100x
slower (see benchmarks/data_throughput.py) and an era has 10^5-10^6 LS.
"""
from __future__ import annotations

import numpy as np

from dc_mlops.data.features import N_SUMMARY, SUMMARY_QUANTILES


def summarize(counts: np.ndarray, edges: np.ndarray,
              quantiles: tuple[float, ...] = SUMMARY_QUANTILES) -> np.ndarray:
    """Quantiles (linear interpolation inside the bin), mean and RMS of each row.

    ``counts`` is (n_LS, n_bins), ``edges`` the n_bins+1 bin edges. RMS is the standard
    deviation about the mean, as ROOT's ``TH1::GetRMS`` reports it. A row with no entries
    gives NaN, so callers decide whether an empty histogram is an error or a dropped LS.
    Returns float64 (n_LS, 7).
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 2 or edges.shape != (counts.shape[1] + 1,):
        raise ValueError(f"counts {counts.shape} and edges {edges.shape} do not match")
    n, n_bins = counts.shape
    widths = np.diff(edges)
    centers = edges[:-1] + 0.5 * widths
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    safe_total = np.where(total > 0, total, np.nan)
    out = np.empty((n, len(quantiles) + 2))
    rows = np.arange(n)
    for j, q in enumerate(quantiles):
        target = q * total
        # first bin whose cumulative count reaches the target (q=0: first non-empty bin)
        idx = np.sum(cum <= target[:, None], axis=1) if q == 0 else \
            np.sum(cum < target[:, None], axis=1)
        idx = np.minimum(idx, n_bins - 1)
        before = np.where(idx > 0, cum[rows, np.maximum(idx - 1, 0)], 0.0)
        in_bin = counts[rows, idx]
        frac = np.where(in_bin > 0, (target - before) / np.where(in_bin > 0, in_bin, 1.0), 0.0)
        out[:, j] = edges[idx] + np.clip(frac, 0.0, 1.0) * widths[idx]
    mean = counts @ centers / safe_total
    var = counts @ (centers ** 2) / safe_total - mean ** 2
    out[:, -2] = mean
    out[:, -1] = np.sqrt(np.maximum(var, 0.0))
    out[~(total > 0)] = np.nan
    assert out.shape[1] == N_SUMMARY or len(quantiles) != len(SUMMARY_QUANTILES)
    return out


def normalised_bins(counts: np.ndarray) -> np.ndarray:
    """Bin contents divided by the entries of their row: the full shape, free of rate."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, np.nan)

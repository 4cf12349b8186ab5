"""Raw histogram files -> per-LS features, in bounded memory.

Each validated batch of :func:`dc_mlops.data.histograms.iter_batches` (one monitoring
element of one Parquet row group or CSV/JSON chunk) is turned into its 7-number summary
(or normalised bins) as float32 at once, and only those are kept: for an era of 2.5e5 LS x
26 histograms that is ~180 MB of features instead of ~3 GB of float64 bin contents. The
monitoring elements are checked against the PD before anything is read where the format
allows it (Parquet), and every element must cover the same LS, once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dc_mlops.data.features import FeatureSet, get_feature_set
from dc_mlops.data.histograms import DEFAULT_UNDER_OVERFLOW, align, iter_batches, me_names
from dc_mlops.data.summary import normalised_bins, summarize
from dc_mlops.errors import DataError


@dataclass
class HistFeatures:
    """Features of every LS that has a non-empty histogram of each monitoring element."""

    runs: np.ndarray
    ls: np.ndarray
    matrix: np.ndarray  # (n_LS, n_features) float32, columns in the order of names
    names: list[str]
    feature_set: FeatureSet
    entries: np.ndarray  # per LS, the largest entries over its histograms
    source: str
    dropped_empty: int


def check_names(source: str, names: list[str], fs: FeatureSet) -> None:
    """Exactly the PD's histograms: a missing one shifts every feature, an extra one is
    a sign of the wrong PD or file."""
    missing = [n for n in fs.histograms if n not in names]
    if missing:
        raise DataError(f"{source}: no histogram {missing[0]!r}, which PD {fs.name} needs "
                        f"({len(missing)} missing)")
    extra = [n for n in names if n not in fs.histograms]
    if extra:
        raise DataError(f"{source}: histogram {extra[0]!r} is not part of PD {fs.name} "
                        "(name a feature-set file that lists it, or pd=auto)")


def summarize_file(path: str | Path, pd_name: str, representation: str = "summary",
                   under_overflow: str = DEFAULT_UNDER_OVERFLOW) -> HistFeatures:
    """Stream ``path`` and summarise each histogram batch as it comes."""
    source = str(path)
    known = me_names(path)
    fs = None
    if known == []:
        raise DataError(f"{source}: no histograms (empty input)")
    if known is not None:
        fs = get_feature_set(pd_name, available=known)
        check_names(source, known, fs)
    blocks: dict[str, list[np.ndarray]] = {}
    keys: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    entries: dict[str, list[np.ndarray]] = {}
    n_values: dict[str, int] = {}
    for b in iter_batches(path, under_overflow):
        if fs is not None and b.me not in fs.histograms:
            check_names(source, [b.me], fs)
        if representation == "summary":
            values = summarize(b.counts, b.edges).astype(np.float32)
        else:
            values = normalised_bins(b.counts).astype(np.float32)
        blocks.setdefault(b.me, []).append(values)
        keys.setdefault(b.me, []).append((b.runs, b.ls))
        entries.setdefault(b.me, []).append(b.entries)
        n_values[b.me] = values.shape[1]
    if fs is None:
        fs = get_feature_set(pd_name, available=list(blocks))
        check_names(source, list(blocks), fs)
    cat = {me: (np.concatenate([k[0] for k in ks]), np.concatenate([k[1] for k in ks]))
           for me, ks in keys.items()}
    runs, ls, orders = align(source, {me: cat[me] for me in fs.histograms})
    names: list[str] = []
    for me in fs.histograms:
        names += [f"{me}_{i}" if representation == "summary" else f"{me}_b{i}"
                  for i in range(n_values[me])]
    matrix = np.empty((len(runs), len(names)), np.float32)
    most = np.zeros(len(runs))
    col = 0
    for me in fs.histograms:
        k = n_values[me]
        matrix[:, col:col + k] = np.concatenate(blocks.pop(me))[orders[me]]
        most = np.maximum(most, np.concatenate(entries[me])[orders[me]])
        col += k
    finite = np.isfinite(matrix).all(axis=1)
    dropped = int((~finite).sum())
    if dropped == len(runs):
        raise DataError(f"{source}: every LS has an empty histogram")
    if dropped:
        matrix, runs, ls, most = matrix[finite], runs[finite], ls[finite], most[finite]
    return HistFeatures(runs, ls, matrix, names, fs, most, source, dropped)

"""Raw per-LS 1-D histograms (SPEC §2.3 item 2): one container, two on-disk layouts.

* DIALS long layout: one record per (run, LS, monitoring element) with ``run_number``,
  ``ls_number``, ``me``, ``x_min``, ``x_max``, ``x_bin``, ``entries`` and the bin contents
  ``data`` (a list), stored as Parquet or JSON lines. The simulator writes this layout.
* Wide layout of the ML4DQM CSVs (``../shared/data/cms2017B_zerobias_pixel``): ``run``,
  ``lumi``, ``hname``, ``xmin``, ``xmax``, ``xbins``, ``bin_0`` ... ``bin_N``.

When ``data`` has ``x_bin + 2`` values, the first and last are underflow and overflow; they
are folded into the edge bins so that mass leaving the axis range still moves the summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dc_mlops.data.features import canonical_name
from dc_mlops.errors import DataError

LONG_COLUMNS = ("run_number", "ls_number", "me", "x_min", "x_max", "x_bin", "entries", "data")


@dataclass
class Histograms:
    """Per-LS histograms of several monitoring elements, all aligned on the same LS.

    ``counts[me]`` is (n_LS, n_bins) and ``edges[me]`` its n_bins+1 edges; row i of every
    matrix is LS (``runs[i]``, ``ls[i]``). LS are sorted by (run, LS).
    """

    runs: np.ndarray
    ls: np.ndarray
    counts: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    source: str = ""
    entries: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_ls(self) -> int:
        return len(self.runs)

    @property
    def names(self) -> list[str]:
        return list(self.counts)

    def subset(self, mask: np.ndarray) -> "Histograms":
        return Histograms(self.runs[mask], self.ls[mask],
                          {k: v[mask] for k, v in self.counts.items()}, dict(self.edges),
                          self.source, {k: v[mask] for k, v in self.entries.items()})


def _fold_overflow(counts: np.ndarray, x_bin: int, where: str) -> np.ndarray:
    if counts.shape[1] == x_bin:
        return counts
    if counts.shape[1] == x_bin + 2:
        folded = counts[:, 1:-1].copy()
        folded[:, 0] += counts[:, 0]
        folded[:, -1] += counts[:, -1]
        return folded
    raise DataError(f"{where}: {counts.shape[1]} bin values for x_bin={x_bin} "
                    f"(expected {x_bin} or {x_bin + 2} with under/overflow)")


def _align(path: str, keys: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Check every ME covers the same LS, once each; return the sorted LS index."""
    first_me, (r0, l0) = next(iter(keys.items()))
    for me, (r, l) in keys.items():
        packed = r.astype(np.int64) * 10_000_000 + l
        uniq, cnt = np.unique(packed, return_counts=True)
        if (cnt > 1).any():
            dup = uniq[cnt > 1][0]
            raise DataError(f"{path}: duplicated (run, LS) = ({dup // 10_000_000}, "
                            f"{dup % 10_000_000}) for monitoring element {me!r}")
    ref = np.unique(r0.astype(np.int64) * 10_000_000 + l0)
    for me, (r, l) in keys.items():
        other = np.unique(r.astype(np.int64) * 10_000_000 + l)
        if len(other) != len(ref) or not np.array_equal(other, ref):
            missing = np.setdiff1d(ref, other)
            which, lacks = (me, missing) if len(missing) else (first_me, np.setdiff1d(other, ref))
            raise DataError(f"{path}: monitoring element {which!r} has no histogram for "
                            f"(run, LS) = ({lacks[0] // 10_000_000}, {lacks[0] % 10_000_000})")
    return ref // 10_000_000, ref % 10_000_000


def from_long_table(table: pa.Table | pd.DataFrame, path: str) -> Histograms:
    """Build :class:`Histograms` from the DIALS long layout."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    missing = [c for c in LONG_COLUMNS if c not in table.column_names and c != "entries"]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (DIALS layout needs "
                        f"{', '.join(LONG_COLUMNS)})")
    if table.num_rows == 0:
        raise DataError(f"{path}: no histograms (empty input)")
    me_all = np.array([canonical_name(m) for m in table.column("me").to_pylist()])
    runs_all = table.column("run_number").to_numpy().astype(np.int64)
    ls_all = table.column("ls_number").to_numpy().astype(np.int64)
    data = table.column("data").combine_chunks()
    counts_d, edges_d, keys = {}, {}, {}
    for me in dict.fromkeys(me_all):
        rows = np.flatnonzero(me_all == me)
        sub = table.take(pa.array(rows))
        x_min = np.unique(sub.column("x_min").to_numpy())
        x_max = np.unique(sub.column("x_max").to_numpy())
        x_bin = np.unique(sub.column("x_bin").to_numpy())
        if len(x_min) != 1 or len(x_max) != 1 or len(x_bin) != 1:
            raise DataError(f"{path}: monitoring element {me!r} changes its binning between LS")
        lists = data.take(pa.array(rows))
        lengths = np.diff(lists.offsets.to_numpy())
        if len(np.unique(lengths)) != 1:
            bad = rows[np.argmax(lengths != lengths[0])]
            raise DataError(f"{path}: row {bad} ({me!r}) has {lengths[np.argmax(lengths != lengths[0])]} "
                            f"bin values, other LS have {lengths[0]}")
        flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        mat = _fold_overflow(flat.reshape(len(rows), -1), int(x_bin[0]), f"{path} ({me!r})")
        counts_d[me] = mat
        edges_d[me] = np.linspace(float(x_min[0]), float(x_max[0]), int(x_bin[0]) + 1)
        keys[me] = (runs_all[rows], ls_all[rows])
    runs, ls = _align(path, keys)
    for me, (r, l) in keys.items():
        order = np.lexsort((l, r))
        counts_d[me] = counts_d[me][order]
    _check_finite(path, runs, ls, counts_d)
    return Histograms(runs, ls, counts_d, edges_d, source=path)


def from_wide_table(df: pd.DataFrame, path: str) -> Histograms:
    """Build :class:`Histograms` from the ML4DQM wide CSV layout (``bin_0`` ... ``bin_N``)."""
    for col in ("run", "lumi", "hname", "xmin", "xmax", "xbins"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r} (wide histogram layout)")
    if len(df) == 0:
        raise DataError(f"{path}: no histograms (empty input)")
    bin_cols = sorted((c for c in df.columns if c.startswith("bin_")), key=lambda c: int(c[4:]))
    if not bin_cols:
        raise DataError(f"{path}: no bin_0 ... bin_N columns")
    long = pd.DataFrame({
        "run_number": df["run"].to_numpy(), "ls_number": df["lumi"].to_numpy(),
        "me": df["hname"].astype(str).to_numpy(), "x_min": df["xmin"].to_numpy(),
        "x_max": df["xmax"].to_numpy(), "x_bin": df["xbins"].to_numpy(),
    })
    values = df[bin_cols].to_numpy(dtype=np.float64)
    table = pa.Table.from_pandas(long, preserve_index=False).append_column(
        "data", pa.ListArray.from_arrays(np.arange(0, values.size + 1, values.shape[1]),
                                         pa.array(values.ravel())))
    return from_long_table(table, path)


def to_long_table(h: Histograms) -> pa.Table:
    """The DIALS long layout of ``h``, ready for Parquet (the simulator's output format)."""
    parts = []
    for me, mat in h.counts.items():
        n, b = mat.shape
        edges = h.edges[me]
        entries = h.entries.get(me, mat.sum(axis=1))
        parts.append(pa.table({
            "run_number": pa.array(h.runs, pa.int64()),
            "ls_number": pa.array(h.ls, pa.int64()),
            "me": pa.array(np.full(n, me)),
            "x_min": pa.array(np.full(n, edges[0])),
            "x_max": pa.array(np.full(n, edges[-1])),
            "x_bin": pa.array(np.full(n, b, dtype=np.int64)),
            "entries": pa.array(np.asarray(entries, dtype=np.int64)),
            "data": pa.ListArray.from_arrays(pa.array(np.arange(0, n * b + 1, b, dtype=np.int32)),
                                             pa.array(mat.astype(np.int64).ravel())),
        }))
    return pa.concat_tables(parts)


def _check_finite(path: str, runs, ls, counts: dict[str, np.ndarray]) -> None:
    for me, mat in counts.items():
        bad = ~np.isfinite(mat).all(axis=1) | (mat < 0).any(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: NaN, inf or negative bin content in {me!r} at "
                            f"(run, LS) = ({runs[i]}, {ls[i]})")


def read_histograms(path: str | Path) -> Histograms:
    """Read raw histograms from Parquet / JSON lines (long layout) or CSV (wide layout)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix == ".parquet":
            return from_long_table(pq.read_table(path), str(path))
        if suffix in {".jsonl", ".json", ".ndjson", ".jsonl.gz"}:
            return from_long_table(pd.read_json(path, lines=True), str(path))
        if suffix in {".csv", ".csv.gz"}:
            return from_wide_table(pd.read_csv(path), str(path))
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read histograms: {str(exc).splitlines()[0]}") from None
    raise DataError(f"{path}: unknown histogram format {path.suffix!r} "
                    "(use .parquet or .jsonl for the DIALS layout, .csv for the wide layout)")

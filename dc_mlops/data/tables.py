"""Feature tables (SPEC §2.3 item 1): ``runId``, ``lumiId``, ``lumi``, ``EventsPerLs`` and
``<hist>_<i>`` columns, one CSV or Parquet file per PD (the ``<PD>_feature2.csv`` layout).

Validation is strict because a silently dropped or extra column shifts every feature the
model sees: the table must hold exactly the PD's columns, finite values, unique (run, LS).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.features import ID_COLUMNS, FeatureSet, canonical_name
from dc_mlops.errors import DataError

_LS_KEYS = ("runId", "lumiId")
# columns that may ride along in a feature table without being features
PASSTHROUGH = ("label", "origin", "subsystem", "scenario", "era", "fill", "pileup", "t_fill")


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: feature table not found")
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix.lower() in {".csv", ".gz"}:
            df = pd.read_csv(path)
        else:
            raise DataError(f"{path}: unknown table format {path.suffix!r} (use .csv or .parquet)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read table: {str(exc).splitlines()[0]}") from None
    if len(df) == 0:
        raise DataError(f"{path}: no rows (empty input)")
    return df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:")])


def canonical_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``qpVtxX__3`` spellings -> ``qpVtxX_3``: strip a trailing underscore from the hist part."""
    renamed = {}
    for col in df.columns:
        if "_" in str(col) and str(col).rsplit("_", 1)[1].isdigit():
            hist, i = str(col).rsplit("_", 1)
            renamed[col] = f"{canonical_name(hist)}_{i}"
    return df.rename(columns=renamed)


def validate_features(df: pd.DataFrame, fs: FeatureSet, where: str,
                      extra_allowed: tuple[str, ...] = ()) -> pd.DataFrame:
    """Exactly the PD's feature columns, finite, with unique (runId, lumiId)."""
    df = canonical_columns(df)
    expected = fs.feature_names()
    for col in _LS_KEYS:
        if col not in df.columns:
            raise DataError(f"{where}: missing column {col!r}")
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing feature column {missing[0]!r} for PD {fs.name} "
                        f"({len(missing)} missing)")
    allowed = set(expected) | set(ID_COLUMNS) | set(PASSTHROUGH) | set(extra_allowed)
    extra = [c for c in df.columns if c not in allowed]
    if extra:
        raise DataError(f"{where}: column {extra[0]!r} is not a feature of PD {fs.name} "
                        f"({len(extra)} extra columns)")
    numeric = all(pd.api.types.is_numeric_dtype(t) for t in df[expected].dtypes)
    frame = df[expected] if numeric else df[expected].apply(pd.to_numeric, errors="coerce")
    values = frame.to_numpy(np.float32)  # one copy, in the precision detectors use
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(f"{where}: row {row} (run {df['runId'].iloc[row]}, LS "
                        f"{df['lumiId'].iloc[row]}): column {expected[col]!r} is NaN or inf")
    for col in _LS_KEYS:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 1)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{where}: row {row}: {col} {df[col].iloc[row]} is not a "
                            f"{'run' if col == 'runId' else 'LS'} number (an integer >= 1)")
    df = df.astype({c: np.int64 for c in _LS_KEYS})
    for col in ("lumi", "pileup", "t_fill", "EventsPerLs"):
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
            bad = np.isnan(v) | (v < 0) | (np.isinf(v) & (col != "EventsPerLs"))
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"{where}: row {row} (run {df['runId'].iloc[row]}, LS "
                                f"{df['lumiId'].iloc[row]}): {col} {df[col].iloc[row]} must be "
                                "a finite number >= 0 (leave the column out when unknown)")
    dup = df.duplicated(list(_LS_KEYS))
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{where}: row {row}: duplicated (run, LS) = "
                        f"({df['runId'].iloc[row]}, {df['lumiId'].iloc[row]})")
    out = pd.concat([df.drop(columns=expected), pd.DataFrame(values, columns=expected,
                                                             index=df.index)], axis=1)
    for col in ("lumi", "pileup", "EventsPerLs"):
        if col not in out.columns:  # unknown conditions are NaN; unknown events never cut
            out[col] = np.inf if col == "EventsPerLs" else np.nan
    return out.sort_values(list(_LS_KEYS), kind="stable").reset_index(drop=True)


def feature_matrix(df: pd.DataFrame, feature_names: list[str], where: str = "data") -> np.ndarray:
    """The model's input matrix; refuses a table whose features differ from the model's."""
    original = dict(zip(canonical_columns(df.head(0)).columns, df.columns))  # canonical -> own
    missing = [c for c in feature_names if c not in original]
    if missing:
        raise DataError(f"{where}: lacks feature {missing[0]!r} that the model expects "
                        f"({len(missing)} missing); was it made for another PD or representation?")
    out = np.empty((len(df), len(feature_names)), dtype=np.float32)
    for j, name in enumerate(feature_names):  # column by column: no full-table copy
        out[:, j] = df[original[name]].to_numpy()
    return out

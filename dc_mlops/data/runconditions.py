"""Run conditions per LS (SPEC §2.4): instantaneous luminosity, pile-up, time in fill.

Histogram shapes follow the conditions (multiplicities grow with pile-up, a fill's
luminosity halves in a few hours), so detectors remove that dependence first (SPEC §3.1)
and need each LS's ``lumi`` (1e33 cm^-2 s^-1) and, where known, ``pileup``. They come
from a table as CMS OMS serves them:

* per LS: ``run``, ``ls``, ``lumi``[, ``pileup``][, ``t_fill``] (extra columns such as
  ``fill``, ``era`` ride along). ``t_fill`` is the time in fill, hours since the fill's
  stable beams (OMS: the LS start time minus the fill's stable-beams start): the beam spot
  and the luminous region drift with it (:mod:`dc_mlops.data.correction`). Every LS of
  the data must be in it: a partial table is an error naming the first LS it lacks (a
  silently missing LS would be corrected with someone else's conditions).
* per run: ``run``, ``lumi``[, ``pileup``] without ``ls`` (e.g. OMS's run summary:
  ``lumi = 1000 * recorded_lumi[/pb] / duration[s]``). Accepted, and applied to every LS
  of the run: the in-fill decay is then lost, which weakens the correction but does not
  mislead it. ``granularity`` says which, and preprocess records it in ``features.json``.

CSV or Parquet. Values must be finite and non-negative; ``pileup`` may be absent (then
NaN: unknown) but not partly missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError

_PACK = 10_000_000
#: the values a conditions table may give: luminosity (1e33 cm^-2 s^-1, required), pile-up,
#: and the time in fill (hours since the fill's stable beams; only per LS)
VALUE_COLUMNS = ("lumi", "pileup", "t_fill")


@dataclass(frozen=True)
class RunConditions:
    """A validated conditions table, keyed by (run, ls) or by run."""

    frame: pd.DataFrame
    granularity: str  # "ls" or "run"
    source: str

    @property
    def columns(self) -> list[str]:
        """The conditions it knows (``lumi``, and ``pileup`` and ``t_fill`` when given)."""
        return [c for c in VALUE_COLUMNS if c in self.frame.columns]


def read_conditions(path: str | Path) -> RunConditions:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: conditions table not found")
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        elif path.name.lower().endswith((".csv", ".csv.gz")):
            df = pd.read_csv(path)
        else:
            raise DataError(f"{path}: unknown conditions format {path.suffix!r} (use .csv or "
                            ".parquet)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError,
            UnicodeDecodeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read the conditions table: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return validate_conditions(df, str(path))


def validate_conditions(df: pd.DataFrame, where: str) -> RunConditions:
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:")])
    for col in ("run", "lumi"):
        if col not in df.columns:
            raise DataError(f"{where}: missing column {col!r} (a conditions table has run, ls, "
                            "lumi[, pileup][, t_fill], or run, lumi[, pileup] per run)")
    if len(df) == 0:
        raise DataError(f"{where}: no rows (empty input)")
    keys = ["run", "ls"] if "ls" in df.columns else ["run"]
    if "t_fill" in df.columns and "ls" not in df.columns:
        raise DataError(f"{where}: t_fill (time in fill) is a per-LS value: give the table an "
                        "ls column, or leave t_fill out")
    out = df.copy()
    for col in keys:
        out[col] = integer_column(df[col], col, where, minimum=1)
    for col in [c for c in VALUE_COLUMNS if c in df.columns]:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: row {i + 2} (run {out['run'].iat[i]}): {col} "
                            f"{df[col].iat[i]} is not a finite non-negative number")
        out[col] = v
    dup = out.duplicated(keys)
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        key = ", ".join(str(out[k].iat[i]) for k in keys)
        raise DataError(f"{where}: row {i + 2}: ({', '.join(keys)}) = ({key}) appears twice")
    return RunConditions(out.reset_index(drop=True), "ls" if "ls" in keys else "run", where)


def integer_column(values: pd.Series, col: str, where: str, minimum: int = 0) -> np.ndarray:
    """An integer column, refusing NaN, fractions and values below ``minimum`` by row."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(v) | (v != np.round(v)) | (v < minimum)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where}: row {i + 2}: {col} {values.iat[i]} is not an integer "
                        f">= {minimum}")
    return v.astype(np.int64)


def conditions_for(cond: RunConditions, runs: np.ndarray, ls: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """``lumi``, ``pileup`` (NaN when the table has none) and ``t_fill`` (when it has one)
    of every (run, LS).

    Refuses, naming the first one, an LS (or run) that the table lacks.
    """
    f = cond.frame
    if cond.granularity == "ls":
        key = f["run"].to_numpy(np.int64) * _PACK + f["ls"].to_numpy(np.int64)
        want = np.asarray(runs, np.int64) * _PACK + np.asarray(ls, np.int64)
    else:
        key = f["run"].to_numpy(np.int64)
        want = np.asarray(runs, np.int64)
    order = np.argsort(key)
    pos = np.searchsorted(key[order], want)
    pos = np.minimum(pos, len(key) - 1)
    found = key[order][pos] == want
    if not found.all():
        i = int(np.argmax(~found))
        what = f"(run, LS) = ({runs[i]}, {ls[i]})" if cond.granularity == "ls" else f"run {runs[i]}"
        raise DataError(f"{cond.source}: no conditions for {what}, which the data has "
                        f"({int((~found).sum())} LS without conditions); give a complete "
                        "conditions table, or none")
    idx = order[pos]
    out = {c: f[c].to_numpy(np.float64)[idx] for c in cond.columns}
    out.setdefault("pileup", np.full(len(want), np.nan))
    return out

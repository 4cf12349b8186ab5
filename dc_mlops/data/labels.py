"""Labels per LS (SPEC §2.3 item 3): good if in the Golden JSON, bad otherwise, with origin.

Origin tells a DC expert *why* a LS is bad, which the per-scenario evaluation needs:
``dcs`` (detector not ready: listed as DCS-bad, or absent from a given DCS-only JSON),
``failure`` (a listed failure scenario, with its subsystem), ``human`` (listed human-bad,
or simply absent from the Golden JSON for no other listed reason).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.errors import DataError

BAD_LIST_COLUMNS = ("run", "first_ls", "last_ls", "subsystem")
LABEL_COLUMNS = ("label", "origin", "subsystem", "scenario")


@dataclass(frozen=True)
class LabelSources:
    golden: CertJSON
    dcsonly: CertJSON | None = None
    dcs_bad: pd.DataFrame | None = None
    human_bad: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None


def read_bad_list(path: str | Path) -> pd.DataFrame:
    """A CSV of bad LS blocks: run, first_ls, last_ls, subsystem[, scenario, severity].

    ``last_ls`` may be empty (or -1) for a whole run.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: bad-LS list not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    for col in BAD_LIST_COLUMNS:
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r} (need {', '.join(BAD_LIST_COLUMNS)})")
    df = df.copy()
    df["first_ls"] = df["first_ls"].fillna(1)
    df["last_ls"] = df["last_ls"].fillna(-1)
    for col in ("run", "first_ls", "last_ls"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: row {row + 2}: column {col!r} is not an integer "
                            f"({df[col].iloc[row]!r})")
        df[col] = values.astype(np.int64)
    # rows are numbered as a spreadsheet shows them: the header is row 1
    checks = (("run", df["run"] < 1, "is not a run number (must be >= 1)"),
              ("first_ls", df["first_ls"] < 1, "is not an LS number (must be >= 1)"),
              ("last_ls", (df["last_ls"] < df["first_ls"]) & (df["last_ls"] != -1),
               "is before first_ls (use -1 or leave it empty for the whole run)"))
    for col, bad, why in checks:
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: row {row + 2}: {col} {df[col].iloc[row]} {why}")
    if "scenario" not in df.columns:
        df["scenario"] = ""
    df["subsystem"] = df["subsystem"].fillna("").astype(str)
    df["scenario"] = df["scenario"].fillna("").astype(str)
    return df


def _blocks_mask(blocks: pd.DataFrame, runs: np.ndarray, ls: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which LS fall in a block, and that block's subsystem and scenario."""
    hit = np.zeros(len(runs), bool)
    subsystem = np.full(len(runs), "", dtype=object)
    scenario = np.full(len(runs), "", dtype=object)
    for row in blocks.itertuples(index=False):
        last = row.last_ls if row.last_ls >= 0 else np.iinfo(np.int64).max
        m = (runs == row.run) & (ls >= row.first_ls) & (ls <= last) & ~hit
        hit |= m
        subsystem[m] = row.subsystem
        scenario[m] = getattr(row, "scenario", "")
    return hit, subsystem, scenario


def assign_labels(runs: np.ndarray, ls: np.ndarray, sources: LabelSources) -> pd.DataFrame:
    """label (0 good, 1 bad), origin, subsystem, scenario for every (run, LS)."""
    good = sources.golden.contains(runs, ls)
    origin = np.where(good, "good", "human").astype(object)
    subsystem = np.full(len(runs), "", dtype=object)
    scenario = np.full(len(runs), "", dtype=object)
    # later sources win: human < failure < dcs (a LS with the detector off is DCS-bad first)
    for name, blocks in (("human", sources.human_bad), ("failure", sources.failures),
                         ("dcs", sources.dcs_bad)):
        if blocks is None or len(blocks) == 0:
            continue
        hit, sub, scen = _blocks_mask(blocks, runs, ls)
        hit &= ~good
        origin[hit] = name
        subsystem[hit] = sub[hit]
        scenario[hit] = np.where(scen[hit] == "", name, scen[hit])
    if sources.dcsonly is not None:
        off = ~sources.dcsonly.contains(runs, ls) & ~good
        fresh = off & (origin == "human")
        origin[fresh] = "dcs"
        scenario[fresh] = "dcs"
    scenario[(origin == "human") & (scenario == "")] = "human"
    return pd.DataFrame({"label": (~good).astype(np.int8), "origin": origin.astype(str),
                         "subsystem": subsystem.astype(str), "scenario": scenario.astype(str)})

"""Where failures strike: DCS-bad HV ramps and human-bad failure blocks, as LS blocks.

Why blocks: real bad data come in contiguous LS ranges or whole runs (a sector trips and
stays off until the next run; a noisy channel is masked after some LS). Blocks are placed
from the structure random stream only, so every PD of one seed shares the labels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dc_mlops.data.simulator.failures import (BLOCK_COLUMNS, GEOMETRY, SCENARIOS, WEIGHTS,
                                              draw_geometry, draw_severity)

_SCEN = list(WEIGHTS)
_PROB = np.array([WEIGHTS[s] for s in _SCEN]) / sum(WEIGHTS.values())
_HW = [s for s in _SCEN if s != "low_stats"]
_HW_PROB = np.array([WEIGHTS[s] for s in _HW]) / sum(WEIGHTS[s] for s in _HW)
MAX_BLOCK = 250  # longer failures are rare: a sector stays off until the next run
MAX_LOW_STATS_BLOCK = 6  # DAQ hiccups are short; longer bad blocks are detector failures


def _pick(rng: np.random.Generator, length: int) -> str:
    """A scenario for a block of ``length`` LS (low statistics only for short blocks)."""
    if length <= MAX_LOW_STATS_BLOCK:
        return _SCEN[rng.choice(len(_SCEN), p=_PROB)]
    return _HW[rng.choice(len(_HW), p=_HW_PROB)]


def _run_index(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start row and length of each run (table sorted by run, ls)."""
    runs = table["run"].to_numpy()
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    lengths = np.diff(np.r_[starts, len(runs)])
    return starts, lengths


def _block(table, start: int, stop: int, scenario: str, severity: float,
           rng: np.random.Generator, kind: str) -> dict:
    g = draw_geometry(scenario, rng)
    ls = table["ls"].to_numpy()
    return {"run": int(table["run"].iat[start]), "first_ls": int(ls[start]),
            "last_ls": int(ls[stop - 1]), "subsystem": SCENARIOS[scenario],
            "scenario": scenario, "severity": float(severity), "kind": kind,
            "row0": start, "row1": stop, **g}


def hv_ramp_blocks(table: pd.DataFrame, rng: np.random.Generator) -> list[dict]:
    """DCS-bad LS at run starts: most first runs of a fill, a few others."""
    starts, lengths = _run_index(table)
    fills = table["fill"].to_numpy()[starts]
    first_of_fill = np.r_[True, fills[1:] != fills[:-1]]
    p = np.where(first_of_fill, 0.5, 0.08)
    out = []
    for s, n, hit in zip(starts, lengths, rng.random(len(starts)) < p):
        if not hit or n < 10:
            continue
        k = int(min(1 + rng.geometric(0.3), n // 5, 12))
        out.append(_block(table, s, s + k, "hv_ramp", rng.uniform(0.5, 1.0), rng, "dcs"))
    return out


def synthetic_failures(table: pd.DataFrame, taken: np.ndarray, rng: np.random.Generator,
                       share: tuple[float, float] = (0.05, 0.095), extra: bool = False
                       ) -> list[dict]:
    """Failure blocks until a share in ``share`` of all LS is taken (DCS-bad included).

    ``extra=True``: the share comes on top of the LS already taken, with no low-statistics
    blocks (the unflagged failures added to a real structure's good LS).

    First 0.3-0.8 % of the LS go to short DAQ low-statistics blocks (1-6 LS), then
    detector failures: whole runs (12 %, runs up to MAX_BLOCK LS) or blocks of
    log-normal length (median 20 LS, at most MAX_BLOCK). Severities come from each
    scenario's physical prior; the failures no PD shows are later left unflagged
    (visibility.py), so the share of LS *labelled* bad ends up lower, 3-8 %.
    """
    n = len(table)
    starts, lengths = _run_index(table)
    weights = lengths / lengths.sum()
    taken = taken.copy()
    out: list[dict] = []

    def place(length: int, scenario: str) -> int:
        r = rng.choice(len(starts), p=weights)
        length = int(min(length, lengths[r]))
        a = starts[r] + int(rng.integers(0, lengths[r] - length + 1))
        if taken[a:a + length].any():
            return 0
        taken[a:a + length] = True
        out.append(_block(table, a, a + length, scenario, draw_severity(rng, scenario), rng,
                          "failure"))
        return length

    low_target = max(1, int(round(rng.uniform(0.003, 0.008) * n))) if not extra else 0
    low = 0
    for _ in range(1000):
        if low >= low_target:
            break
        low += place(int(rng.integers(1, MAX_LOW_STATS_BLOCK + 1)), "low_stats")
    target = int(round(rng.uniform(*share) * n)) + (int(taken.sum()) if extra else 0)
    tries = 0
    while taken.sum() < target and tries < 20_000:
        tries += 1
        left = target - int(taken.sum())
        scenario = _HW[rng.choice(len(_HW), p=_HW_PROB)]
        if rng.random() < 0.12:  # a whole run declared bad
            small = np.flatnonzero(lengths <= min(left + 20, MAX_BLOCK))
            if len(small) == 0:
                continue
            r = small[rng.integers(len(small))]
            a, b = starts[r], starts[r] + lengths[r]
            if taken[a:b].any():
                continue
            taken[a:b] = True
            out.append(_block(table, a, b, scenario, draw_severity(rng, scenario), rng, "failure"))
            continue
        length = int(np.clip(rng.lognormal(np.log(20), 0.9), 1, MAX_BLOCK))
        place(max(1, min(length, left + 5)), scenario)
    return out


def blocks_from_golden(table: pd.DataFrame, good: np.ndarray, rng: np.random.Generator
                       ) -> list[dict]:
    """One failure block per contiguous range of human-bad LS (structure minus Golden)."""
    bad = ~good
    runs = table["run"].to_numpy()
    ls = table["ls"].to_numpy()
    idx = np.flatnonzero(bad)
    if len(idx) == 0:
        return []
    brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(runs[idx]) != 0) | (np.diff(ls[idx]) != 1)) + 1
    out = []
    for seg in np.split(idx, brk):
        scenario = _pick(rng, len(seg))
        out.append(_block(table, int(seg[0]), int(seg[-1]) + 1, scenario,
                          draw_severity(rng, scenario), rng, "failure"))
    return out


def blocks_frame(blocks: list[dict]) -> pd.DataFrame:
    """All blocks, sorted by (run, first_ls), with the private geometry columns."""
    cols = BLOCK_COLUMNS + ["kind", "row0", "row1"] + GEOMETRY
    if not blocks:
        df = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        for c in ("run", "first_ls", "last_ls", "row0", "row1"):
            df[c] = df[c].astype("int64")
        for c in ("subsystem", "scenario", "kind"):
            df[c] = df[c].astype(object)
        return df
    df = pd.DataFrame(blocks)[cols]
    return df.sort_values(["run", "first_ls"], kind="stable").reset_index(drop=True)


def per_ls(blocks: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Block index (-1: none) and failure strength of each LS.

    The strength is the block severity, except for HV ramps where it falls linearly
    over the block (the HV reaches its working point LS by LS).
    """
    block = np.full(n, -1, np.int64)
    strength = np.zeros(n)
    for i, (a, b, sev, scen) in enumerate(zip(blocks["row0"], blocks["row1"],
                                              blocks["severity"], blocks["scenario"])):
        block[a:b] = i
        k = b - a
        strength[a:b] = sev * (1 - np.arange(k) / k) if scen == "hv_ramp" else sev
    return block, strength

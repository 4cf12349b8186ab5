"""The era simulator proper: structure + labels + vectorised, chunked histogram sampling.

Why chunks and threads: 10^5 LS x 26 histograms x ~60 bins is ~10^8 bins; evaluating the
CDFs for all LS at once would need GBs, a Python loop over LS would take minutes. Chunks of
CHUNK LS bound memory, and the numpy/scipy kernels release the GIL, so two worker threads
use both cores. Each chunk has its own random stream (SeedSequence spawn key), so the
result does not depend on the thread scheduling.
"""
from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import canonical_name, get_feature_set
from dc_mlops.data.histograms import Histograms
from dc_mlops.data.simulator import failures as F
from dc_mlops.data.simulator import labels as L
from dc_mlops.data.simulator import shapes as S
from dc_mlops.data.simulator import visibility as V
from dc_mlops.data.simulator.conditions import check_eras, ls_conditions
from dc_mlops.data.simulator.structure import (LOW_STATS, events_per_ls, structure_from_json,
                                               synth_structure)
from dc_mlops.errors import DataError

CHUNK = 4096
LS_COLUMNS = ["run", "ls", "fill", "era", "lumi", "pileup", "events"]
_STREAM_STRUCTURE, _STREAM_LABELS, _STREAM_EVENTS, _STREAM_NOISE = 0, 1, 2, 3
_STREAM_REFERENCE, _STREAM_SOLVE = 4, 5
#: LS origins in the truth table (plain good LS have no row there)
ORIGINS = ("failure", "dcs", "low_stats", "unflagged")
#: severities are solved on this grid (per block) where a failure must be (in)visible
_GRID = 7


@dataclass
class SimTruth:
    """What the simulator knows and a reader of the files does not: per-LS time in fill,
    position in run, bunch count, failure block and strength, the failure geometry
    (blocks with eta-phi boxes), and per LS its visibility in each PD and whether a DC
    expert flagged it. :func:`expected_counts` needs it; every PD of a seed shares it."""

    table: pd.DataFrame  # run, ls, fill, era, lumi, pileup, n_bunches, t_fill, run_frac
    blocks: pd.DataFrame  # failure + DCS blocks with geometry, row0/row1 into the LS table
    block: np.ndarray  # per LS: index into blocks, -1 for none
    strength: np.ndarray  # per LS failure strength in (0, 1]
    visibility: np.ndarray | None = None  # (n_LS, 4) per PD (VISIBILITY_PDS); NaN: none
    origin: np.ndarray | None = None  # per LS: "" (good) or one of ORIGINS

    @property
    def bad(self) -> np.ndarray:
        """LS outside the Golden JSON: flagged failures, DCS-bad and low statistics."""
        return np.isin(self.origin, ("failure", "dcs", "low_stats"))


@dataclass
class SimulatedEra:
    """One simulated PD over one or more eras (see the package docstring)."""

    pd: str
    histograms: Histograms
    lumisections: pd.DataFrame
    golden: CertJSON
    dcsonly: CertJSON
    failures: pd.DataFrame
    dcs_bad: pd.DataFrame
    seed: int
    eras: list[str]
    n_ls: int = 0
    truth: SimTruth | None = field(default=None, repr=False, compare=False)
    #: the public truth table (truth.parquet): one row per failure, DCS-bad or low-stats LS
    truth_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class EraLabels:
    """Everything a simulated era folder holds besides the histograms: PD-independent."""

    conditions: pd.DataFrame  # run, ls, fill, era, lumi, pileup, t_fill
    golden: CertJSON
    dcsonly: CertJSON
    failures: pd.DataFrame  # flagged failure ranges (and low statistics), BLOCK_COLUMNS
    dcs_bad: pd.DataFrame
    truth: pd.DataFrame  # truth.parquet


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _pd_key(pd_name: str) -> int:
    return zlib.crc32(pd_name.encode())


def _check(eras, seed, structure, golden) -> list[str]:
    eras = check_eras(eras)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if structure is None and golden is not None:
        raise DataError("golden= needs structure= (the run/LS set it certifies)")
    return eras


def simulate(pd: str, eras: list[str] | None = None, n_ls: int = 20000, seed: int = 0,
             structure: CertJSON | None = None, golden: CertJSON | None = None,
             truth: SimTruth | None = None) -> SimulatedEra:
    """Simulate one PD: histograms, LS table, Golden/DCS-only JSONs and failure labels.

    Without ``structure``: ``n_ls`` synthetic LS over ``eras`` (default 2018A-D). With a
    certification JSON as ``structure`` (e.g. the 2018 DCS-only JSON): exactly its LS in
    the requested eras (``n_ls`` ignored); with ``golden`` too, the LS not in ``golden``
    are the bad ones (real human flags: each contiguous block gets a failure scenario and
    a strength that makes it visible), and failures no PD shows may be added to good LS;
    without ``golden``, failures are placed synthetically. ``truth`` reuses a truth made by
    :func:`make_truth` for the same arguments (``pd=all`` makes it once for four PDs).
    """
    names = [canonical_name(h) for h in get_feature_set(pd).histograms]
    specs = [S.spec(h) for h in names]
    eras = _check(eras, seed, structure, golden)
    truth = truth or make_truth(eras, n_ls, int(seed), structure, golden)
    n = len(truth.table)
    events = _events(pd, truth, int(seed))
    counts = {h: np.empty((n, sp.n_bins), np.int32) for h, sp in zip(names, specs)}
    for a, b, chunk in histogram_chunks(pd, truth, events, int(seed)):
        for h in names:
            counts[h][a:b] = chunk[h]
    runs = truth.table["run"].to_numpy()
    ls = truth.table["ls"].to_numpy()
    hist = Histograms(runs.copy(), ls.copy(), counts, {h: sp.edges for h, sp in zip(names, specs)},
                      source=f"simulator:{pd}:seed={seed}",
                      entries={h: counts[h].sum(axis=1, dtype=np.int64) for h in names})
    lab = era_labels(truth)
    lumis = lab.conditions.copy()
    lumis["events"] = events
    return SimulatedEra(pd=pd, histograms=hist, lumisections=lumis, golden=lab.golden,
                        dcsonly=lab.dcsonly, failures=lab.failures, dcs_bad=lab.dcs_bad,
                        seed=int(seed), eras=eras, n_ls=n, truth=truth, truth_table=lab.truth)


def histogram_chunks(pd: str, truth: SimTruth, events: np.ndarray, seed: int
                     ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """(first row, end row, {histogram: int32 counts}) chunk by chunk, in order.

    Chunks are computed on two threads (the numpy/scipy kernels release the GIL), at most
    four ahead of the reader, so memory stays at a few chunks whatever the era's size; each
    chunk has its own random stream, so the result does not depend on the scheduling.
    """
    names = [canonical_name(h) for h in get_feature_set(pd).histograms]
    specs = [S.spec(h) for h in names]
    n = len(truth.table)
    n_chunks = (n + CHUNK - 1) // CHUNK

    def work(ci: int) -> tuple[int, int, dict[str, np.ndarray]]:
        a, b = ci * CHUNK, min(n, (ci + 1) * CHUNK)
        rng = _stream(seed, _STREAM_NOISE, _pd_key(pd), ci)
        exp = _expected_chunk(truth, events, specs, a, b, with_failures=True)
        return a, b, {h: _noise(mean, rng) for h, mean in zip(names, exp)}

    workers = max(1, min(2, os.cpu_count() or 1, n_chunks))
    if workers == 1:
        for ci in range(n_chunks):
            yield work(ci)
        return
    with ThreadPoolExecutor(workers) as pool:
        ahead = deque(pool.submit(work, ci) for ci in range(min(n_chunks, 2 * workers)))
        for ci in range(2 * workers, n_chunks + 2 * workers):
            yield ahead.popleft().result()  # in order; at most 2 x workers chunks in memory
            if ci < n_chunks:
                ahead.append(pool.submit(work, ci))


def make_truth(eras: list[str], n_ls: int, seed: int, structure: CertJSON | None,
               golden: CertJSON | None) -> SimTruth:
    """Structure, failures and labels from (seed, eras, n_ls / structure, golden) only.

    Synthetic mode: failures with strengths drawn from each scenario's physical prior;
    those no PD shows are left unflagged. With a real Golden JSON: its bad blocks were
    flagged by people, so each gets a scenario and a strength that some PD shows, with the
    mix of visibilities of the synthetic mode (:func:`_solve_severities`); failures no PD
    shows are added on 1-3 % of the good LS.
    """
    eras = _check(eras, seed, structure, golden)
    rs = _stream(seed, _STREAM_STRUCTURE)
    rl = _stream(seed, _STREAM_LABELS)
    if structure is None:
        table = synth_structure(eras, int(n_ls), rs)
        blocks = L.hv_ramp_blocks(table, rl)
        taken = np.zeros(len(table), bool)
        for blk in blocks:
            taken[blk["row0"]:blk["row1"]] = True
        blocks += L.synthetic_failures(table, taken, rl)
        truth = _truth(table, blocks)
        spreads = V.reference_spreads(truth, seed)
        return _label(truth, spreads)
    table = structure_from_json(structure, eras, rs)
    if golden is None:
        truth = _truth(table, L.synthetic_failures(table, np.zeros(len(table), bool), rl))
        return _label(truth, V.reference_spreads(truth, seed))
    good = golden.contains(table["run"].to_numpy(), table["ls"].to_numpy())
    flagged = L.blocks_from_golden(table, good, rl)
    extra = L.synthetic_failures(table, ~good, rl, share=(0.01, 0.03), extra=True)
    truth = _truth(table, flagged + extra)
    spreads = V.reference_spreads(truth, seed)
    is_extra = np.r_[np.zeros(len(flagged), bool), np.ones(len(extra), bool)]
    visible = ~is_extra[_sorted_order(flagged + extra)]  # in the order of truth.blocks
    truth = _solve_severities(truth, spreads, visible, _stream(seed, _STREAM_SOLVE))
    return _label(truth, spreads, must_flag=True)


def _sorted_order(blocks: list[dict]) -> np.ndarray:
    """Position in ``blocks`` of each row of :func:`L.blocks_frame` (sorted, stable)."""
    if not blocks:
        return np.zeros(0, int)
    key = pd.DataFrame({"run": [b["run"] for b in blocks], "ls": [b["first_ls"] for b in blocks]})
    return key.sort_values(["run", "ls"], kind="stable").index.to_numpy()


def _truth(table: pd.DataFrame, blocks: list[dict]) -> SimTruth:
    frame = L.blocks_frame(blocks)
    block, strength = L.per_ls(frame, len(table))
    return SimTruth(table, frame, block, strength)


def _label(truth: SimTruth, spreads: dict, must_flag: bool = False) -> SimTruth:
    """Visibility of every LS in a block, and its origin as a DC expert would record it.

    ``must_flag``: the failure blocks that must stay flagged are those whose severity
    :func:`_solve_severities` made visible; blocks solved to be invisible are dropped where
    they still show in some PD (so a real Golden JSON is never contradicted).
    """
    n = len(truth.table)
    rows = np.flatnonzero(truth.block >= 0)
    vis = np.full((n, len(V.VISIBILITY_PDS)), np.nan)
    vis[rows] = V.visibilities(truth, rows, spreads)
    kind = truth.blocks["kind"].to_numpy()
    scen = truth.blocks["scenario"].to_numpy()
    origin = np.full(n, "", dtype=object)
    blk = truth.block[rows]
    best = V.max_visibility(vis[rows])
    origin[rows] = np.where(kind[blk] == "dcs", "dcs",
                            np.where(scen[blk] == "low_stats", "low_stats",
                                     np.where(best >= 1, "failure", "unflagged")))
    if must_flag:
        real = truth.blocks["must_flag"].to_numpy() if "must_flag" in truth.blocks else \
            np.ones(len(truth.blocks), bool)
        r = rows[real[blk] & (kind[blk] == "failure") & (scen[blk] != "low_stats")]
        origin[r] = "failure"  # flagged by people in the real Golden JSON
        shown = np.zeros(len(truth.blocks), bool)
        extra_rows = rows[~real[blk] & (origin[rows] == "failure")]
        shown[truth.block[extra_rows]] = True
        if shown.any():  # an added failure some PD would show: drop it, Golden wins
            drop = shown[truth.block] & (truth.block >= 0)
            origin[drop] = ""
            vis[drop] = np.nan
            keep = np.flatnonzero(~shown)
            remap = np.full(len(truth.blocks), -1)
            remap[keep] = np.arange(len(keep))
            block = np.where(truth.block >= 0, remap[np.maximum(truth.block, 0)], -1)
            strength = np.where(block >= 0, truth.strength, 0.0)
            truth = SimTruth(truth.table, truth.blocks.iloc[keep].reset_index(drop=True), block,
                             strength)
    return SimTruth(truth.table, truth.blocks, truth.block, truth.strength, vis, origin)


def _probe(truth: SimTruth, rows: np.ndarray, block: np.ndarray, strength: np.ndarray) -> SimTruth:
    """A truth whose LS are copies of ``rows`` with the given block and strength each."""
    return SimTruth(truth.table.iloc[rows].reset_index(drop=True), truth.blocks,
                    np.asarray(block, np.int64), np.asarray(strength, float))


#: golden mode: the visibility mix given to the blocks people flagged, by share of LS, with
#: each class's target range (the synthetic prior's flagged mix is ~40 % subtle, ~50 %
#: obvious; the middle class keeps the boundaries from being crowded)
FLAGGED_MIX = {"subtle": (0.35, 1.3, 2.5), "middle": (0.20, 3.3, 4.7), "obvious": (0.45, 6.0, 30.0)}
UNFLAGGED_RANGE = (0.15, 0.8)  # visibility targets of the failures added on good LS


def _solve_severities(truth: SimTruth, spreads: dict, visible: np.ndarray,
                      rng: np.random.Generator) -> SimTruth:
    """Strengths for blocks whose visibility is known in advance (a real Golden JSON).

    People flagged the bad blocks of a real Golden JSON, so each must come out visible.
    Each block's best-PD visibility (at its middle LS) is computed on a grid of strengths
    1e-4...1; if even strength 1 is not visible, the block gets another scenario (up to 4
    tries; a tracker misalignment, seen by every PD's vertex histograms, is the last
    resort). The flagged blocks are then dealt, in a seeded random order, to the classes of
    :data:`FLAGGED_MIX` (each to the class furthest below its share of LS among those its
    scenario can reach), given a target visibility log-uniform in the class range, and the
    strength that reaches it (log-linear between grid points). The failures added on good
    LS get a target in :data:`UNFLAGGED_RANGE` instead: visible to no PD. Flagged blocks
    whose weakest LS still falls below 1 (conditions vary along a block) get their
    strength raised once; what remains is reported by the truth table as it is.
    """
    blocks = truth.blocks.copy()
    nb = len(blocks)
    if nb == 0:
        return truth
    blocks["must_flag"] = visible
    fail = (blocks["kind"].to_numpy() == "failure") & (blocks["scenario"].to_numpy() != "low_stats")
    mid = ((blocks["row0"].to_numpy() + blocks["row1"].to_numpy() - 1) // 2).astype(np.int64)
    for attempt in range(5):
        todo = np.flatnonzero(fail & visible)
        v1 = _grid_visibility(truth, blocks, todo, mid, np.ones((len(todo), 1)), spreads)[:, 0]
        weak = todo[~(v1 >= 1.5)]
        if not len(weak):
            break
        for b in weak:
            scen = "tracker_misalignment" if attempt == 3 else L._pick(rng, 1000)
            blocks.loc[b, ["scenario", "subsystem"]] = [scen, F.SCENARIOS[scen]]
            for k, v in F.draw_geometry(scen, rng).items():
                blocks.loc[b, k] = v
        truth = SimTruth(truth.table, blocks, truth.block, truth.strength)
    todo = np.flatnonzero(fail)
    grid = np.broadcast_to(np.geomspace(1e-4, 1.0, 13), (len(todo), 13))
    v = _grid_visibility(truth, blocks, todo, mid, grid, spreads)
    target = np.empty(len(todo))
    want = visible[todo]
    lo, hi = UNFLAGGED_RANGE
    target[~want] = np.exp(rng.uniform(np.log(lo), np.log(hi), int((~want).sum())))
    size = (blocks["row1"] - blocks["row0"]).to_numpy()[todo]
    given = dict.fromkeys(FLAGGED_MIX, 0.0)
    for k in rng.permutation(np.flatnonzero(want)):
        reach = [c for c, (_, a, _) in FLAGGED_MIX.items() if v[k, -1] >= a] or ["subtle"]
        total = sum(given.values()) + size[k]
        c = max(reach, key=lambda c: FLAGGED_MIX[c][0] - given[c] / total)
        given[c] += size[k]
        a, b_hi = FLAGGED_MIX[c][1], min(FLAGGED_MIX[c][2], v[k, -1])
        target[k] = np.exp(rng.uniform(np.log(a), np.log(max(a, b_hi))))
    sev = blocks["severity"].to_numpy().copy()
    sev[todo] = [_crossing(g, vv, t) for g, vv, t in zip(grid, v, target)]
    blocks["severity"] = sev
    block_arr, strength = L.per_ls(blocks, len(truth.table))
    truth = SimTruth(truth.table, blocks, block_arr, strength)
    # raise the strength of flagged blocks whose weakest LS is still below 1
    rows = np.flatnonzero(np.isin(block_arr, np.flatnonzero(fail & visible)))
    best = V.max_visibility(V.visibilities(truth, rows, spreads))
    low = pd.Series(best).groupby(block_arr[rows]).min()
    raise_ = low[low < 1].index.to_numpy()
    if len(raise_):
        sev[raise_] = np.minimum(1.0, sev[raise_] * 1.1 / np.maximum(low[raise_].to_numpy(), 0.05))
        blocks["severity"] = sev
        block_arr, strength = L.per_ls(blocks, len(truth.table))
        truth = SimTruth(truth.table, blocks, block_arr, strength)
    return truth


def _grid_visibility(truth, blocks, todo, mid, grid, spreads) -> np.ndarray:
    """Best-PD visibility of each block's middle LS at each strength of ``grid`` (n, k)."""
    if not len(todo):
        return np.zeros(grid.shape)
    k = grid.shape[1]
    rows = np.repeat(mid[todo], k)
    probe = _probe(SimTruth(truth.table, blocks, truth.block, truth.strength), rows,
                   np.repeat(todo, k), grid.ravel())
    best = V.max_visibility(V.visibilities(probe, np.arange(len(rows)), spreads))
    return np.nan_to_num(best, nan=0.0).reshape(len(todo), k)


def _crossing(grid: np.ndarray, v: np.ndarray, level: float = 1.0) -> float:
    """The strength at which visibility reaches ``level`` (log-linear between grid points;
    the grid's ends when it is never or always reached)."""
    above = np.flatnonzero(v >= level)
    if not len(above):
        return float(grid[-1])
    i = above[0]
    if i == 0:
        return float(grid[0])
    lv0, lv1 = np.log(max(v[i - 1], 1e-9)), np.log(v[i])
    t = (np.log(level) - lv0) / (lv1 - lv0) if lv1 > lv0 else 1.0
    return float(np.exp(np.log(grid[i - 1]) + t * (np.log(grid[i]) - np.log(grid[i - 1]))))


def era_labels(truth: SimTruth) -> EraLabels:
    """The conditions, JSONs, label lists and truth table of an era, from its truth."""
    table = truth.table
    runs, ls = table["run"].to_numpy(), table["ls"].to_numpy()
    origin = truth.origin
    bad = truth.bad
    dcs = origin == "dcs"
    blocks = truth.blocks
    public = F.BLOCK_COLUMNS
    # the failure list holds what a DC expert flagged: the flagged ranges of each block
    flagged_rows = np.flatnonzero(np.isin(origin, ("failure", "low_stats")))
    failures = _ranges(table, truth.block, flagged_rows, blocks)
    is_dcs = blocks["kind"].to_numpy() == "dcs"
    rows = np.flatnonzero(truth.block >= 0)
    blk = truth.block[rows]
    tt = pd.DataFrame({
        "run": runs[rows], "ls": ls[rows],
        "scenario": blocks["scenario"].to_numpy()[blk].astype(str),
        "subsystem": blocks["subsystem"].to_numpy()[blk].astype(str),
        "flagged": np.isin(origin[rows], ("failure", "dcs", "low_stats")),
        "origin": origin[rows].astype(str),
        "severity": truth.strength[rows],
    })
    for j, p in enumerate(V.VISIBILITY_PDS):
        tt[f"visibility_{p}"] = truth.visibility[rows, j]
    return EraLabels(
        conditions=table[["run", "ls", "fill", "era", "lumi", "pileup", "t_fill"]
                         ].reset_index(drop=True),
        golden=CertJSON.from_lumisections(runs[~bad], ls[~bad]),
        dcsonly=CertJSON.from_lumisections(runs[~dcs], ls[~dcs]),
        failures=failures[public],
        dcs_bad=blocks.loc[is_dcs, public].reset_index(drop=True),
        truth=tt)


def _ranges(table: pd.DataFrame, block: np.ndarray, rows: np.ndarray, blocks: pd.DataFrame
            ) -> pd.DataFrame:
    """Contiguous ranges of ``rows`` within one block each, with the block's columns."""
    if not len(rows):
        return blocks.iloc[:0][F.BLOCK_COLUMNS].reset_index(drop=True)
    brk = np.flatnonzero((np.diff(rows) != 1) | (np.diff(block[rows]) != 0)) + 1
    out = []
    ls = table["ls"].to_numpy()
    for seg in np.split(rows, brk):
        b = blocks.iloc[block[seg[0]]]
        out.append({"run": int(b["run"]), "first_ls": int(ls[seg[0]]), "last_ls": int(ls[seg[-1]]),
                    "subsystem": b["subsystem"], "scenario": b["scenario"],
                    "severity": float(b["severity"])})
    return pd.DataFrame(out)


_EVENTS_FRACTION = {"ZeroBias": 0.9, "JetHT": 0.8, "EGamma": 0.85, "SingleMuon": 0.75}


def _events(pd: str, truth: SimTruth, seed: int) -> np.ndarray:
    """Events of the PD per LS; DAQ low-statistics blocks fall below the 500 cut."""
    table = truth.table
    rng = _stream(seed, _STREAM_EVENTS, _pd_key(pd))
    ev = events_per_ls(pd, table["lumi"].to_numpy(), table["n_bunches"].to_numpy(), rng)
    if len(truth.blocks):
        low = truth.blocks["scenario"].to_numpy()[np.maximum(truth.block, 0)] == "low_stats"
        low &= truth.block >= 0
        frac = truth.blocks["g_events"].to_numpy()[truth.block[low]]
        ev[low] = np.maximum(3, np.rint(frac * LOW_STATS * _EVENTS_FRACTION.get(pd, 0.8)))
    return ev


def _conditions(table: pd.DataFrame, rows) -> dict[str, np.ndarray]:
    t = table.iloc[rows]
    return ls_conditions(t["era"].to_numpy(), t["lumi"].to_numpy(), t["pileup"].to_numpy(),
                         t["t_fill"].to_numpy(), t["run_frac"].to_numpy())


def _expected_chunk(truth: SimTruth, events: np.ndarray, specs: list[S.HistSpec], a: int,
                    b: int, with_failures: bool, rows: np.ndarray | None = None
                    ) -> list[np.ndarray]:
    """Noise-free expected counts (n, n_bins) per spec for LS rows a:b (or ``rows``)."""
    idx = np.arange(a, b) if rows is None else np.asarray(rows)
    n = len(idx)
    c = _conditions(truth.table, idx)
    ev = events[idx].astype(float).reshape(-1, 1)
    out = []
    groups: list[tuple[np.ndarray, dict, dict]] = []
    if with_failures and len(truth.blocks):
        blk = truth.block[idx]
        scen = truth.blocks["scenario"].to_numpy()
        for s_name in np.unique(scen[blk[blk >= 0]]):
            sel = np.flatnonzero((blk >= 0) & (scen[np.maximum(blk, 0)] == s_name))
            cs = {k: v[sel] for k, v in c.items()}
            g = {k: truth.blocks[k].to_numpy()[blk[sel]].reshape(-1, 1) for k in F.GEOMETRY}
            strength = truth.strength[idx[sel]].reshape(-1, 1)
            c_mod, wraps = F.apply(str(s_name), cs, g, strength)
            groups.append((sel, c_mod, wraps, F._affected_all(str(s_name))))
    for sp in specs:
        p = S.bin_probabilities(sp.shape(c), sp.edges, n)
        m = S.multiplicity(sp.collection, c) * np.ones((n, 1))
        for sel, c_mod, wraps, hit in groups:
            if sp.name not in hit:
                continue
            cdf = sp.shape(c_mod)
            if sp.name in wraps:
                cdf = wraps[sp.name](cdf)
            p[sel] = S.bin_probabilities(cdf, sp.edges, len(sel))
            m[sel] = S.multiplicity(sp.collection, c_mod) * np.ones((len(sel), 1))
        out.append(p * (ev * m))
    return out


def _noise(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts: exact below a mean of 30, normal approximation above (much faster)."""
    z = rng.standard_normal(mean.shape, dtype=np.float32)
    out = np.rint(mean + np.sqrt(mean) * z)
    small = mean < 30.0
    out[small] = rng.poisson(mean[small])
    np.maximum(out, 0.0, out=out)
    return out.astype(np.int32)


def expected_counts(sim: SimulatedEra, rows: np.ndarray | None = None,
                    histograms: list[str] | None = None, with_failures: bool = True
                    ) -> dict[str, np.ndarray]:
    """Noise-free expected counts of LS ``rows`` (indices into ``sim.lumisections``).

    ``with_failures=False`` gives the same LS as if nothing had failed (same conditions,
    same events), so comparing the two isolates exactly what a failure does.
    Returns {histogram: (n_rows, n_bins) float64}.
    """
    if sim.truth is None:
        raise ValueError("this SimulatedEra carries no simulation truth")
    names = list(sim.histograms.counts) if histograms is None else [canonical_name(h) for h in histograms]
    rows = np.arange(sim.histograms.n_ls) if rows is None else np.asarray(rows, np.int64)
    events = sim.lumisections["events"].to_numpy()
    specs = [S.spec(h) for h in names]
    out: dict[str, list[np.ndarray]] = {h: [] for h in names}
    for a in range(0, len(rows), CHUNK):
        part = _expected_chunk(sim.truth, events, specs, 0, 0, with_failures, rows[a:a + CHUNK])
        for h, m in zip(names, part):
            out[h].append(m)
    return {h: (np.concatenate(v) if v else np.zeros((0, S.spec(h).n_bins))) for h, v in out.items()}

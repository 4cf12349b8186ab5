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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import canonical_name, get_feature_set
from dc_mlops.data.histograms import Histograms
from dc_mlops.data.simulator import failures as F
from dc_mlops.data.simulator import labels as L
from dc_mlops.data.simulator import shapes as S
from dc_mlops.data.simulator.conditions import check_eras, ls_conditions
from dc_mlops.data.simulator.structure import (LOW_STATS, events_per_ls, structure_from_json,
                                               synth_structure)
from dc_mlops.errors import DataError

CHUNK = 4096
LS_COLUMNS = ["run", "ls", "fill", "era", "lumi", "pileup", "events"]
_STREAM_STRUCTURE, _STREAM_LABELS, _STREAM_EVENTS, _STREAM_NOISE = 0, 1, 2, 3


@dataclass
class SimTruth:
    """What the simulator knows and a reader of the files does not: per-LS time in fill,
    position in run, bunch count, failure block and strength, and the failure geometry
    (blocks with eta-phi boxes). :func:`expected_counts` needs it."""

    table: pd.DataFrame  # run, ls, fill, era, lumi, pileup, n_bunches, t_fill, run_frac
    blocks: pd.DataFrame  # failure + DCS blocks with geometry, row0/row1 into the LS table
    block: np.ndarray  # per LS: index into blocks, -1 for none
    strength: np.ndarray  # per LS failure strength in (0, 1]


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


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _pd_key(pd_name: str) -> int:
    return zlib.crc32(pd_name.encode())


def simulate(pd: str, eras: list[str] | None = None, n_ls: int = 20000, seed: int = 0,
             structure: CertJSON | None = None, golden: CertJSON | None = None) -> SimulatedEra:
    """Simulate one PD: histograms, LS table, Golden/DCS-only JSONs and failure labels.

    Without ``structure``: ``n_ls`` synthetic LS over ``eras`` (default 2018A-D). With a
    certification JSON as ``structure`` (e.g. the 2018 DCS-only JSON): exactly its LS in
    the requested eras (``n_ls`` ignored); with ``golden`` too, the LS not in ``golden``
    are the bad ones, each contiguous block given a failure scenario, and no other
    failure is added; without ``golden``, failures are placed synthetically.
    """
    names = [canonical_name(h) for h in get_feature_set(pd).histograms]
    specs = [S.spec(h) for h in names]
    eras = check_eras(eras)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if structure is None and golden is not None:
        raise DataError("golden= needs structure= (the run/LS set it certifies)")
    truth = make_truth(eras, n_ls, int(seed), structure, golden)
    table = truth.table
    n = len(table)
    events = _events(pd, truth, int(seed))
    runs = table["run"].to_numpy()
    ls = table["ls"].to_numpy()
    counts = {h: np.empty((n, sp.n_bins), np.int32) for h, sp in zip(names, specs)}

    def work(ci: int) -> None:
        a, b = ci * CHUNK, min(n, (ci + 1) * CHUNK)
        rng = _stream(int(seed), _STREAM_NOISE, _pd_key(pd), ci)
        exp = _expected_chunk(truth, events, specs, a, b, with_failures=True)
        for h, mean in zip(names, exp):
            counts[h][a:b] = _noise(mean, rng)

    n_chunks = (n + CHUNK - 1) // CHUNK
    workers = max(1, min(2, os.cpu_count() or 1, n_chunks))
    if workers == 1:
        for ci in range(n_chunks):
            work(ci)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(n_chunks)))
    hist = Histograms(runs.copy(), ls.copy(), counts, {h: sp.edges for h, sp in zip(names, specs)},
                      source=f"simulator:{pd}:seed={seed}",
                      entries={h: counts[h].sum(axis=1, dtype=np.int64) for h in names})
    lumis = table[["run", "ls", "fill", "era", "lumi", "pileup"]].copy()
    lumis["events"] = events
    blocks = truth.blocks
    is_dcs = blocks["kind"].to_numpy() == "dcs"
    bad_rows = np.zeros(n, bool)
    for a, b in zip(blocks["row0"], blocks["row1"]):
        bad_rows[a:b] = True
    dcs_rows = np.zeros(n, bool)
    for a, b in zip(blocks["row0"][is_dcs], blocks["row1"][is_dcs]):
        dcs_rows[a:b] = True
    golden_out = CertJSON.from_lumisections(runs[~bad_rows], ls[~bad_rows])
    dcsonly = CertJSON.from_lumisections(runs[~dcs_rows], ls[~dcs_rows])
    public = F.BLOCK_COLUMNS
    return SimulatedEra(
        pd=pd, histograms=hist, lumisections=lumis, golden=golden_out, dcsonly=dcsonly,
        failures=blocks.loc[~is_dcs, public].reset_index(drop=True),
        dcs_bad=blocks.loc[is_dcs, public].reset_index(drop=True),
        seed=int(seed), eras=eras, n_ls=n, truth=truth)


def make_truth(eras: list[str], n_ls: int, seed: int, structure: CertJSON | None,
               golden: CertJSON | None) -> SimTruth:
    """Structure and labels from (seed, eras, n_ls / structure, golden): PD-independent."""
    rs = _stream(seed, _STREAM_STRUCTURE)
    rl = _stream(seed, _STREAM_LABELS)
    if structure is None:
        table = synth_structure(eras, int(n_ls), rs)
        blocks = L.hv_ramp_blocks(table, rl)
        taken = np.zeros(len(table), bool)
        for blk in blocks:
            taken[blk["row0"]:blk["row1"]] = True
        blocks += L.synthetic_failures(table, taken, rl)
    else:
        table = structure_from_json(structure, eras, rs)
        if golden is None:
            blocks = L.synthetic_failures(table, np.zeros(len(table), bool), rl)
        else:
            good = golden.contains(table["run"].to_numpy(), table["ls"].to_numpy())
            blocks = L.blocks_from_golden(table, good, rl)
    frame = L.blocks_frame(blocks)
    block, strength = L.per_ls(frame, len(table))
    return SimTruth(table, frame, block, strength)


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

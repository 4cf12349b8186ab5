"""Writing a simulated era to disk: the "era folder" that ``preprocess`` and ``certify`` read.

One folder holds one PD or all four, on the same runs, LS, conditions and failures
(names and columns are a contract with :mod:`dc_mlops.data.lstable`):

- ``meta.json``           ``layout`` (2), ``pds`` (the PDs inside), eras, seed, n_ls,
                          structure/golden file names, dc_mlops version, description
- ``conditions.parquet``  run, ls, fill, era, lumi (1e33 cm^-2 s^-1), pileup, t_fill (hours
                          since the fill's stable beams): the per-LS run conditions
                          (SPEC §2.4), as CMS OMS serves them
- ``golden.json``         good LS (certification-JSON format): what a DC expert certified
- ``dcsonly.json``        LS with the detector on (golden is a subset)
- ``failures.csv``        run, first_ls, last_ls, subsystem, scenario, severity: the failure
                          ranges a DC expert flagged (and the low-statistics LS)
- ``dcs_bad.csv``         same columns, the DCS-bad blocks (HV ramps at run start)
- ``truth.parquet``       one row per LS with a failure, DCS-bad or low-statistics block:
                          run, ls, scenario, subsystem, flagged, origin (failure / dcs /
                          low_stats / unflagged), severity, visibility_<PD> for the four PDs
                          (NaN where the failure touches no histogram of the PD). Unflagged
                          failures are in golden.json: no PD shows them (for studies only)
- ``<PD>/histograms.parquet``  DIALS long layout (run_number, ls_number, me, x_min, x_max,
                          x_bin, entries, data), one row group per block of 4096 LS
- ``<PD>/events.parquet``  run, ls, events: the PD's events per LS (trigger-driven)

A folder of the earlier flat layout (``histograms.parquet`` and ``lumisections.parquet``
at the top, ``meta.json`` with ``pd``) is still read for its one PD.

Why atomic: the folder is built in a temporary sibling directory and renamed into place,
so a crash or a full disk never leaves a half-written era that looks complete. Why
streamed: histograms are written block by block as they are simulated, so ``pd=all`` on
the real 2018 structure (258 508 LS x 4 PDs) never holds an era's histograms in memory.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import dc_mlops
from dc_mlops.data.certjson import CertJSON
from dc_mlops.errors import DataError

if TYPE_CHECKING:
    from dc_mlops.data.simulator.generate import EraLabels

log = logging.getLogger("dc_mlops")
LAYOUT = 2
FAILURE_COLUMNS = ["run", "first_ls", "last_ls", "subsystem", "scenario", "severity"]
CONDITION_COLUMNS = ["run", "ls", "fill", "era", "lumi", "pileup", "t_fill"]
DESCRIPTION = ("dc_mlops era simulator: synthetic CMS fills/runs/LS with exponentially "
               "decaying luminosity, pile-up proportional to luminosity, trigger-driven "
               "events per LS, per-LS histograms from analytic per-quantity shapes with "
               "era conditions and in-fill drifts, and tagged failure blocks labelled as a "
               "DC expert would: flagged when some PD shows them (see "
               "dc_mlops.data.simulator). lumi unit: 1e33 cm^-2 s^-1.")


def write_era(sims, out: str | Path) -> Path:
    """Write one :class:`SimulatedEra` or several of one seed (one per PD) to ``out``.

    The PDs must come from the same truth (``simulate(..., truth=t)`` for each, or
    :func:`write_simulation`, which streams instead of holding the histograms).
    """
    sims = [sims] if not isinstance(sims, Sequence) else list(sims)
    first = sims[0]
    for s in sims[1:]:
        if s.golden != first.golden or not np.array_equal(s.histograms.runs, first.histograms.runs):
            raise ValueError("write_era: the PDs must share one truth (same seed and structure)")
    from dc_mlops.data.simulator.generate import era_labels
    labels = era_labels(first.truth)

    def pd_parts(sim):
        counts = sim.histograms.counts
        n = sim.histograms.n_ls
        from dc_mlops.data.simulator.generate import CHUNK
        return ((a, min(n, a + CHUNK), {h: c[a:a + CHUNK] for h, c in counts.items()})
                for a in range(0, n, CHUNK))

    meta = _meta([s.pd for s in sims], first.eras, first.seed, first.histograms.n_ls)
    with _staging(Path(out)) as tmp:
        _write_shared(tmp, labels, meta)
        for sim in sims:
            _write_pd(tmp, sim.pd, labels, sim.lumisections["events"].to_numpy(),
                      pd_parts(sim), sim.histograms.edges)
    return Path(out)


def write_simulation(out: str | Path, pds: Sequence[str], eras: list[str] | None, n_ls: int,
                     seed: int, structure: CertJSON | None = None,
                     golden: CertJSON | None = None, *, structure_name: str = "",
                     golden_name: str = "") -> EraLabels:
    """Simulate ``pds`` on one truth and write them to ``out``, streaming the histograms.

    Returns the era's labels (conditions, Golden JSON, truth table...).
    """
    from dc_mlops.data.features import canonical_name, get_feature_set
    from dc_mlops.data.simulator import shapes as S
    from dc_mlops.data.simulator.generate import (_check, _events, era_labels,
                                                  histogram_chunks, make_truth)
    eras = _check(eras, seed, structure, golden)
    out = Path(out)
    _check_out(out)
    truth = make_truth(eras, n_ls, int(seed), structure, golden)
    labels = era_labels(truth)
    meta = _meta(list(pds), eras, int(seed), len(truth.table), structure_name, golden_name)
    log.info("simulate: %d LS, labels made (%d failure LS flagged, %d left unflagged); "
             "writing %s", len(truth.table), int((labels.truth["origin"] == "failure").sum()),
             int((labels.truth["origin"] == "unflagged").sum()), ", ".join(pds))
    with _staging(out) as tmp:
        _write_shared(tmp, labels, meta)
        for i, pd_name in enumerate(pds, 1):
            names = [canonical_name(h) for h in get_feature_set(pd_name).histograms]
            events = _events(pd_name, truth, int(seed))
            _write_pd(tmp, pd_name, labels, events,
                      histogram_chunks(pd_name, truth, events, int(seed)),
                      {h: S.spec(h).edges for h in names})
            log.info("simulate: %s histograms written (%d/%d)", pd_name, i, len(pds))
    return labels


def _meta(pds: list[str], eras: list[str], seed: int, n_ls: int, structure: str = "",
          golden: str = "") -> dict:
    return {"layout": LAYOUT, "pds": pds, "eras": list(eras), "seed": int(seed),
            "n_ls": int(n_ls), "structure": structure, "golden": golden,
            "dc_mlops_version": dc_mlops.__version__, "simulator": DESCRIPTION}


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty; "
                        "choose a new path or remove it")


class _staging:
    """A hidden sibling folder renamed to ``out`` on success, removed on any failure."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self) -> Path:
        _check_out(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.",
                                         suffix=".tmp"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; the era is not
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            _check_out(self.out)
            if self.out.exists():
                self.out.rmdir()  # empty (checked); os.replace cannot replace a directory
            os.replace(self.tmp, self.out)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return False


def _write_shared(folder: Path, labels, meta: dict) -> None:
    cond = labels.conditions[CONDITION_COLUMNS].copy()
    cond["era"] = cond["era"].astype(str)
    pq.write_table(pa.Table.from_pandas(cond, preserve_index=False), folder / "conditions.parquet")
    labels.golden.write(folder / "golden.json")
    labels.dcsonly.write(folder / "dcsonly.json")
    labels.failures[FAILURE_COLUMNS].to_csv(folder / "failures.csv", index=False)
    labels.dcs_bad[FAILURE_COLUMNS].to_csv(folder / "dcs_bad.csv", index=False)
    pq.write_table(pa.Table.from_pandas(labels.truth, preserve_index=False),
                   folder / "truth.parquet")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _write_pd(folder: Path, pd_name: str, labels, events: np.ndarray,
              parts: Iterable[tuple[int, int, dict[str, np.ndarray]]],
              edges: dict[str, np.ndarray]) -> None:
    sub = folder / pd_name
    sub.mkdir()
    runs = labels.conditions["run"].to_numpy(np.int64)
    ls = labels.conditions["ls"].to_numpy(np.int64)
    pq.write_table(pa.table({"run": runs, "ls": ls, "events": np.asarray(events, np.int64)}),
                   sub / "events.parquet")
    writer = None
    try:
        for a, b, counts in parts:
            table = long_table_block(runs[a:b], ls[a:b], counts, edges)
            if writer is None:
                # lz4 and no dictionary for the bin contents: 2-3x faster to write and
                # read than the defaults, for ~15 % more disk
                writer = pq.ParquetWriter(sub / "histograms.parquet", table.schema,
                                          compression="lz4", use_dictionary=["me"],
                                          write_statistics=False)
            writer.write_table(table, row_group_size=table.num_rows)
    finally:
        if writer is not None:
            writer.close()


def long_table_block(runs: np.ndarray, ls: np.ndarray, counts: dict[str, np.ndarray],
                     edges: dict[str, np.ndarray]) -> pa.Table:
    """The DIALS long layout of one block of LS: one row per (LS, monitoring element)."""
    parts = []
    for me, mat in counts.items():
        n, b = mat.shape
        e = edges[me]
        values = np.ascontiguousarray(mat, dtype=np.int32).ravel()
        parts.append(pa.table({
            "run_number": pa.array(runs, pa.int64()),
            "ls_number": pa.array(ls, pa.int64()),
            "me": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([me])),
            "x_min": pa.array(np.full(n, e[0])),
            "x_max": pa.array(np.full(n, e[-1])),
            "x_bin": pa.array(np.full(n, b, dtype=np.int64)),
            "entries": pa.array(mat.sum(axis=1, dtype=np.int64)),
            "data": pa.ListArray.from_arrays(pa.array(np.arange(0, n * b + 1, b, dtype=np.int32)),
                                             pa.array(values)),
        }))
    return pa.concat_tables(parts)

"""Writing a simulated era to disk: the "era folder" another reader consumes.

Layout (names and columns are a contract with the reader; do not change them):

- ``histograms.parquet``   DIALS long layout (run_number, ls_number, me, x_min, x_max,
                           x_bin, entries, data), via :func:`to_long_table`
- ``lumisections.parquet`` run, ls, fill, era, lumi (1e33 cm^-2 s^-1), pileup, events
- ``golden.json``          good LS (certification-JSON format)
- ``dcsonly.json``         LS with the detector on (golden is a subset)
- ``failures.csv``         run, first_ls, last_ls, subsystem, scenario, severity
- ``dcs_bad.csv``          same columns, the DCS-bad blocks (HV ramps at run start)
- ``meta.json``            pd, eras, seed, n_ls, dc_mlops version, simulator description

Why atomic: the folder is built in a temporary sibling directory and renamed into place,
so a crash or a full disk never leaves a half-written era that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import dc_mlops
from dc_mlops.data.histograms import to_long_table
from dc_mlops.errors import DataError

FAILURE_COLUMNS = ["run", "first_ls", "last_ls", "subsystem", "scenario", "severity"]
LUMI_COLUMNS = ["run", "ls", "fill", "era", "lumi", "pileup", "events"]
DESCRIPTION = ("dc_mlops era simulator: synthetic CMS fills/runs/LS with exponentially "
               "decaying luminosity, pile-up proportional to luminosity, trigger-driven "
               "events per LS, per-LS histograms from analytic per-quantity shapes with "
               "era conditions and in-fill drifts, and tagged failure blocks from subtle "
               "to obvious (see dc_mlops.data.simulator). lumi unit: 1e33 cm^-2 s^-1.")


def write_era(sim, out: str | Path) -> None:
    """Write ``sim`` (a :class:`SimulatedEra`) as an era folder at ``out``, atomically.

    Raises :class:`DataError` if ``out`` exists and is not an empty directory.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise DataError(f"{out}: output folder exists and is not empty; "
                            "choose a new path or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        pq.write_table(to_long_table(sim.histograms), tmp / "histograms.parquet")
        lumis = sim.lumisections[LUMI_COLUMNS].copy()
        lumis["era"] = lumis["era"].astype(str)
        pq.write_table(pa.Table.from_pandas(lumis, preserve_index=False),
                       tmp / "lumisections.parquet")
        sim.golden.write(tmp / "golden.json")
        sim.dcsonly.write(tmp / "dcsonly.json")
        sim.failures[FAILURE_COLUMNS].to_csv(tmp / "failures.csv", index=False)
        sim.dcs_bad[FAILURE_COLUMNS].to_csv(tmp / "dcs_bad.csv", index=False)
        meta = {"pd": sim.pd, "eras": list(sim.eras), "seed": int(sim.seed),
                "n_ls": int(sim.histograms.n_ls), "dc_mlops_version": dc_mlops.__version__,
                "simulator": DESCRIPTION}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above); os.replace cannot replace a directory
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

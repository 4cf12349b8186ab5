"""The ``simulate`` step: write an era folder from the embedded simulator."""
from __future__ import annotations

import logging
from pathlib import Path

from dc_mlops.data.certjson import read_certjson
from dc_mlops.data.simulator import simulate, write_era
from dc_mlops.errors import DataError
from dc_mlops.settings import SimulateSettings

log = logging.getLogger("dc_mlops")


def run_simulate(s: SimulateSettings) -> Path:
    """Simulate ``s.era`` for ``s.pd`` and write it to ``s.out``; returns the folder."""
    if s.golden and not s.structure:
        raise DataError("golden= is only used together with structure= (a DCS-only JSON)")
    structure = read_certjson(s.structure) if s.structure else None
    golden = read_certjson(s.golden) if s.golden else None
    sim = simulate(s.pd, eras=s.eras, n_ls=s.n_ls, seed=s.seed, structure=structure, golden=golden)
    out = Path(s.out)
    write_era(sim, out)
    n = sim.histograms.n_ls
    n_bad = n - int(sim.golden.contains(sim.histograms.runs, sim.histograms.ls).sum())
    log.info("simulated %s %s: %d runs, %d LS (%d bad, %.1f %%) -> %s", s.pd, ",".join(s.eras),
             len(set(sim.histograms.runs.tolist())), n, n_bad, 100 * n_bad / max(n, 1), out)
    return out

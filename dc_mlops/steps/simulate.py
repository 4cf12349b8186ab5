"""The ``simulate`` step: write an era folder (one PD or all four) from the embedded simulator.

The folder layout is described in :mod:`dc_mlops.data.simulator.io`. With ``pd=all`` the four
PDs share runs, LS, conditions and failures, and a failure shows up in each PD whose
histograms it touches.
"""
from __future__ import annotations

import logging
from pathlib import Path

from dc_mlops.data.certjson import read_certjson
from dc_mlops.data.simulator import write_simulation
from dc_mlops.data.simulator.io import _check_out
from dc_mlops.settings import PDS, SimulateSettings

log = logging.getLogger("dc_mlops")


def run_simulate(s: SimulateSettings) -> Path:
    """Simulate ``s.era`` for ``s.pd`` (or the four PDs) and write it to ``s.out``."""
    out = Path(s.out)
    _check_out(out)  # before minutes of work
    structure = read_certjson(s.structure) if s.structure else None
    golden = read_certjson(s.golden) if s.golden else None
    pds = list(PDS) if s.pd == "all" else [s.pd]
    labels = write_simulation(out, pds, s.eras, s.n_ls, s.seed, structure, golden,
                              structure_name=Path(s.structure).name if s.structure else "",
                              golden_name=Path(s.golden).name if s.golden else "")
    cond = labels.conditions
    n = len(cond)
    origin = labels.truth["origin"].value_counts()
    n_bad = n - labels.golden.n_ls
    log.info("simulated %s %s: %d runs, %d LS, %d bad (%.1f %%: %d failure, %d DCS, %d low "
             "statistics), %d failure LS no PD shows left in the Golden JSON -> %s",
             "+".join(pds), ",".join(s.eras), cond["run"].nunique(), n, n_bad,
             100 * n_bad / max(n, 1), origin.get("failure", 0), origin.get("dcs", 0),
             origin.get("low_stats", 0), origin.get("unflagged", 0), out)
    return out

"""How visible each failure LS is: the subtle-failure measure.

Definition (the one the package docstring promises and the tests check). For a failure LS
of scenario s in PD p, let A = affected_histograms(s, p). For every histogram h in A and
every summary number i (SPEC §2.2: 10/30/50/70/90 % quantiles, mean, RMS):

    shift(LS) = max_{h in A, i} |sum_i(E_fail[h]) - sum_i(E_nofail[h])| / std_good(h_i)

where E_fail / E_nofail are the noise-free expected histograms of that LS with and without
its failure (same conditions, same events; :func:`expected_counts`), and std_good(h_i) is
the standard deviation of feature h_i over the good LS (in Golden, >= 500 events) of the
simulated *noisy* histograms, i.e. the real LS-to-LS spread including noise, pile-up and
era drifts. A failure LS is *subtle* when shift < 2 and *obvious* when shift > 5.
Low-statistics LS (no shape change) and LS whose scenario has no histogram in the PD
(A empty) have no shift (NaN) and are left out of both shares.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dc_mlops.data.summary import summarize


def failure_shifts(sim) -> pd.DataFrame:
    """One row per failure LS (failures table, not DCS-bad): run, ls, scenario, shift."""
    from dc_mlops.data.simulator.failures import affected_histograms
    from dc_mlops.data.simulator.generate import expected_counts

    h = sim.histograms
    lum = sim.lumisections
    good = sim.golden.contains(h.runs, h.ls) & (lum["events"].to_numpy() >= 500)
    std = {me: np.nanstd(summarize(h.counts[me][good], h.edges[me]), axis=0)
           for me in h.counts}
    blocks = sim.truth.blocks
    rows_out = []
    for bi in np.flatnonzero(blocks["kind"].to_numpy() == "failure"):
        scen = blocks["scenario"].iat[bi]
        rows = np.arange(blocks["row0"].iat[bi], blocks["row1"].iat[bi])
        names = affected_histograms(scen, sim.pd) if scen != "low_stats" else []
        shift = np.full(len(rows), np.nan)
        if names:
            e1 = expected_counts(sim, rows, names, with_failures=True)
            e0 = expected_counts(sim, rows, names, with_failures=False)
            per = [np.abs(summarize(e1[me], h.edges[me]) - summarize(e0[me], h.edges[me]))
                   / np.where(std[me] > 0, std[me], np.inf) for me in names]
            shift = np.nanmax(np.concatenate(per, axis=1), axis=1)
        rows_out.append(pd.DataFrame({"run": h.runs[rows], "ls": h.ls[rows], "scenario": scen,
                                      "severity": blocks["severity"].iat[bi], "shift": shift}))
    if not rows_out:
        return pd.DataFrame(columns=["run", "ls", "scenario", "severity", "shift"])
    return pd.concat(rows_out, ignore_index=True)


def subtle_share(shifts: pd.DataFrame) -> tuple[float, float]:
    """(share with shift < 2, share with shift > 5) among failure LS that have a shift."""
    s = shifts["shift"].dropna().to_numpy()
    if len(s) == 0:
        return float("nan"), float("nan")
    return float(np.mean(s < 2)), float(np.mean(s > 5))

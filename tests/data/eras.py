"""A small hand-made era folder in the simulator's layout, fast enough to copy per test case."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import get_feature_set
from dc_mlops.data.histograms import Histograms, to_long_table

FIRST_RUN = 315300


#: with several PDs, each PD's own failure: the subsystem it certifies
_SUBSYSTEM = {"ZeroBias": ("TRACKER", "tracker_sector_off"), "SingleMuon": ("MUON", "muon_chamber_off"),
              "EGamma": ("ECAL", "ecal_noisy_tower"), "JetHT": ("HCAL", "hcal_noise")}


def write_small_era(folder: Path, n_runs: int = 6, n_ls: int = 30, seed: int = 0,
                    samples: int = 400, low_stats_ls: int | None = None,
                    pds: tuple[str, ...] = ("ZeroBias",)) -> Path:
    """Gaussian histograms of ``samples`` entries for each of ``pds`` on the same runs and LS;
    in every run the k-th PD's own subsystem fails on 4 LS (the first PD on the last 4, the
    next on the 4 before, ...: every histogram of that PD shifted by 1.5 sigma, the other PDs
    unaffected); LS ``low_stats_ls`` of every run has 100 events (below the 500 cut).
    Luminosity decays and pile-up follows it."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(FIRST_RUN, FIRST_RUN + n_runs), n_ls)
    ls = np.tile(np.arange(1, n_ls + 1), n_runs)
    edges = np.linspace(-5, 5, 31)
    events = np.where(ls == low_stats_ls, 100, 5000)
    any_bad = np.zeros(len(ls), dtype=bool)
    failures = []
    for k, pd_name in enumerate(pds):
        first, last = n_ls - 4 * k - 3, n_ls - 4 * k
        bad = (ls >= first) & (ls <= last)
        any_bad |= bad
        counts = {}
        for h in get_feature_set(pd_name).histograms:
            mu = rng.normal(0, 0.1, len(runs)) + np.where(bad, 1.5, 0.0)
            x = rng.normal(mu[:, None], 1.0, (len(runs), samples))
            counts[h] = np.stack([np.histogram(r, edges)[0] for r in x]).astype(float)
        (folder / pd_name).mkdir(parents=True)
        pq.write_table(to_long_table(Histograms(runs, ls, counts, {k: edges for k in counts})),
                       folder / pd_name / "histograms.parquet")
        pd.DataFrame({"run": runs, "ls": ls, "events": events}).to_parquet(
            folder / pd_name / "events.parquet")
        subsystem, scenario = _SUBSYSTEM[pd_name]
        failures.append(pd.DataFrame({"run": np.arange(FIRST_RUN, FIRST_RUN + n_runs),
                                      "first_ls": first, "last_ls": last,
                                      "subsystem": subsystem, "scenario": scenario,
                                      "severity": 1.0}))
    pd.DataFrame({"run": runs, "ls": ls, "fill": 1, "era": "2018A",
                  "lumi": np.linspace(15, 8, len(runs)), "pileup": np.linspace(45, 24, len(runs))}
                 ).to_parquet(folder / "conditions.parquet")
    CertJSON.from_lumisections(runs[~any_bad], ls[~any_bad]).write(folder / "golden.json")
    CertJSON.from_lumisections(runs, ls).write(folder / "dcsonly.json")
    pd.concat(failures, ignore_index=True).to_csv(folder / "failures.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"layout": 2, "pds": list(pds), "seed": seed}))
    return folder

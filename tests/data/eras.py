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


def write_small_era(folder: Path, n_runs: int = 6, n_ls: int = 30, seed: int = 0,
                    samples: int = 400, low_stats_ls: int | None = None) -> Path:
    """ZeroBias, Gaussian histograms of ``samples`` entries, the last 4 LS of every run a
    TRACKER failure (every histogram shifted by 1.5 sigma); LS ``low_stats_ls`` of every run
    has 100 events (below the 500 cut). Luminosity decays and pile-up follows it."""
    rng = np.random.default_rng(seed)
    fs = get_feature_set("ZeroBias")
    runs = np.repeat(np.arange(FIRST_RUN, FIRST_RUN + n_runs), n_ls)
    ls = np.tile(np.arange(1, n_ls + 1), n_runs)
    bad = ls > n_ls - 4
    edges = np.linspace(-5, 5, 31)
    counts = {}
    for h in fs.histograms:
        mu = rng.normal(0, 0.1, len(runs)) + np.where(bad, 1.5, 0.0)
        x = rng.normal(mu[:, None], 1.0, (len(runs), samples))
        counts[h] = np.stack([np.histogram(r, edges)[0] for r in x]).astype(float)
    (folder / "ZeroBias").mkdir(parents=True)
    pq.write_table(to_long_table(Histograms(runs, ls, counts, {k: edges for k in counts})),
                   folder / "ZeroBias" / "histograms.parquet")
    events = np.where(ls == low_stats_ls, 100, 5000)
    pd.DataFrame({"run": runs, "ls": ls, "events": events}).to_parquet(
        folder / "ZeroBias" / "events.parquet")
    pd.DataFrame({"run": runs, "ls": ls, "fill": 1, "era": "2018A",
                  "lumi": np.linspace(15, 8, len(runs)), "pileup": np.linspace(45, 24, len(runs))}
                 ).to_parquet(folder / "conditions.parquet")
    CertJSON.from_lumisections(runs[~bad], ls[~bad]).write(folder / "golden.json")
    CertJSON.from_lumisections(runs, ls).write(folder / "dcsonly.json")
    pd.DataFrame({"run": np.arange(FIRST_RUN, FIRST_RUN + n_runs), "first_ls": n_ls - 3,
                  "last_ls": n_ls, "subsystem": "TRACKER", "scenario": "tracker_sector_off",
                  "severity": 1.0}).to_csv(folder / "failures.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"layout": 2, "pds": ["ZeroBias"], "seed": seed}))
    return folder

"""A small same-era simulated split for detector tests and benchmarks, built in one place.

Why one helper: the detector tests and ``benchmarks/conditions.py`` judge every detector on
"failures the PD is responsible for, at moderate visibility". The selection is
:func:`judged_failures`: flagged failure LS of the simulator's truth table whose subsystem
the responsibility map gives to the PD (ZeroBias: TRACKER/PIXEL, JetHT: HCAL/JETMET,
EGamma: ECAL, SingleMuon: MUON) and whose visibility in that PD lies in ``shift_range``
(2-8 LS-to-LS standard deviations at the same pile-up: not invisible, not a give-away).

The split goes through the product's own path (era folder → ``load_ls_table``, LS below
``MIN_EVENTS`` dropped) with the ``pileup`` column of the era's conditions table. Runs of
one era are shuffled with a seed: half the LS (whole runs) train, 15 % validate, the rest
test. The test part holds the good LS of the test runs and the judged failures of *every*
run (bad LS are never trained on; a run-wise split alone leaves too few failure blocks in a
few-second simulation); other bad LS (other subsystems, DCS, low statistics) are left out.
``max_train`` keeps a seeded subsample of the good train/validation LS (the validation share
in proportion): a long era gives many failure blocks to judge on, while training stays
quick.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.lstable import LabelOptions, load_ls_table
from dc_mlops.data.features import MIN_EVENTS
from dc_mlops.data.responsibility import DEFAULT_MAP, subsystems_of
from dc_mlops.data.simulator import simulate, write_era

MODERATE = (2.0, 8.0)


@dataclass(frozen=True)
class SimSplit:
    """Good train/val LS and a test set of good LS plus judged failures, with pile-up."""

    pd: str
    feature_names: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def X(self, part: str) -> np.ndarray:
        return getattr(self, part)[self.feature_names].to_numpy(np.float64)

    def c(self, part: str, column: str = "pileup") -> np.ndarray:
        return getattr(self, part)[column].to_numpy(np.float64)

    @property
    def y(self) -> np.ndarray:
        return self.test["label"].to_numpy()


def judged_failures(sim, pd_name: str, shift_range: tuple[float, float] = MODERATE
                    ) -> pd.DataFrame:
    """(run, ls, scenario, shift) of the failure LS the PD's detector is judged on; ``shift``
    is the LS's visibility in the PD (truth table)."""
    t = sim.truth_table
    vis = t[f"visibility_{pd_name}"]
    own = t["subsystem"].isin(subsystems_of(pd_name, DEFAULT_MAP))
    lo, hi = shift_range
    keep = (t["origin"] == "failure") & t["flagged"].astype(bool) & own & vis.between(lo, hi)
    return (t.loc[keep, ["run", "ls", "scenario"]].assign(shift=vis[keep])
            .reset_index(drop=True))


@lru_cache(maxsize=8)
def same_era_split(pd_name: str = "ZeroBias", n_ls: int = 15000, era: str = "2018B",
                   seed: int = 12, split_seed: int = 0,
                   shift_range: tuple[float, float] = MODERATE, max_train: int = 0) -> SimSplit:
    """The split described in the module docstring (cached: tests share it)."""
    sim = simulate(pd_name, eras=[era], n_ls=n_ls, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_era(sim, Path(tmp) / "era")
        table = load_ls_table(str(Path(tmp) / "era"), pd_name, LabelOptions())
    frame = table.frame  # the era folder's conditions.parquet gives lumi and pileup
    frame = frame[frame["EventsPerLs"].to_numpy() >= MIN_EVENTS].reset_index(drop=True)
    judged = judged_failures(sim, pd_name, shift_range)
    key = pd.MultiIndex.from_frame(frame[["runId", "lumiId"]])
    is_judged = key.isin(pd.MultiIndex.from_arrays([judged["run"], judged["ls"]]))
    runs, counts = np.unique(frame["runId"].to_numpy(), return_counts=True)
    order = np.random.default_rng(split_seed).permutation(len(runs))
    mid = (np.cumsum(counts[order]) - 0.5 * counts[order]) / counts.sum()
    part_of = dict(zip(runs[order].tolist(),
                       np.where(mid < 0.5, "train", np.where(mid < 0.65, "val", "test"))))
    part = frame["runId"].map(part_of).to_numpy()
    good = frame["label"].to_numpy() == 0
    train, val = frame[good & (part == "train")], frame[good & (part == "val")]
    if max_train and len(train) > max_train:
        rng = np.random.default_rng(split_seed)
        n_val = round(max_train * len(val) / len(train))
        train = train.iloc[np.sort(rng.choice(len(train), max_train, replace=False))]
        val = val.iloc[np.sort(rng.choice(len(val), min(n_val, len(val)), replace=False))]
    return SimSplit(pd_name, list(table.feature_names), train=train.reset_index(drop=True),
                    val=val.reset_index(drop=True),
                    test=frame[(good & (part == "test")) | is_judged].reset_index(drop=True))

"""Run-wise splits (SPEC §4): a run never straddles two splits.

Runs are taken in order (chronological, the default: a model is always judged on data that
came after what it learnt from) or shuffled with a seed. The parts:

* ``train``, ``val``: good LS only; the detector learns from train, early-stops on val;
* ``calib``: good LS only, never seen in fitting: the conformal calibration set for the
  BAD cut-off, and the reference for drift checks;
* ``test``: every LS (good and bad) of the latest runs;
* ``known_bad``: bad LS of the train/val/calib runs, the labelled failures an expert already
  knows about, used for the GOOD cut-off and for tuning, never the test runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError

SPLITS = ("train", "val", "calib", "test", "known_bad")


@dataclass(frozen=True)
class SplitFractions:
    """Shares of LS (counted over whole runs) for each part; test takes the rest."""

    train: float = 0.5
    val: float = 0.15
    calib: float = 0.15

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.calib) <= 0 or self.train + self.val + self.calib >= 1:
            raise DataError("split fractions must be positive and leave a share for test")


def assign_runs(runs: np.ndarray, fractions: SplitFractions, mode: str = "chronological",
                seed: int = 0) -> dict[int, str]:
    """Map each run to train/val/calib/test by cumulative LS count."""
    uniq, counts = np.unique(runs, return_counts=True)
    if len(uniq) < 4:
        raise DataError(f"need at least 4 runs to split by run, the data has {len(uniq)}")
    if mode == "random":
        order = np.random.default_rng(seed).permutation(len(uniq))
    elif mode == "chronological":
        order = np.arange(len(uniq))
    else:
        raise DataError(f"unknown split mode {mode!r}: use 'chronological' or 'random'")
    uniq, counts = uniq[order], counts[order]
    cum = np.cumsum(counts) / counts.sum()
    bounds = np.cumsum([fractions.train, fractions.val, fractions.calib])
    part = np.searchsorted(bounds, cum - 0.5 * counts / counts.sum())
    # every part gets at least one run, keeping the order
    for p in range(4):
        if not (part == p).any():
            part = _steal_run(part, p)
    names = np.array(["train", "val", "calib", "test"])[part]
    return dict(zip(uniq.tolist(), names.tolist()))


def _steal_run(part: np.ndarray, p: int) -> np.ndarray:
    part = part.copy()
    sizes = np.bincount(part, minlength=4)
    donor = int(np.argmax(sizes))
    idx = np.flatnonzero(part == donor)
    part[idx[0] if p < donor else idx[-1]] = p
    return np.sort(part)  # parts stay contiguous in run order


def split_table(frame: pd.DataFrame, fractions: SplitFractions = SplitFractions(),
                mode: str = "chronological", seed: int = 0) -> dict[str, pd.DataFrame]:
    run_part = assign_runs(frame["runId"].to_numpy(), fractions, mode, seed)
    part = frame["runId"].map(run_part).to_numpy()
    bad = frame["label"].to_numpy() == 1
    out = {name: frame[(part == name) & ~bad] for name in ("train", "val", "calib")}
    out["test"] = frame[part == "test"]
    out["known_bad"] = frame[(part != "test") & bad]
    for name in ("train", "val", "calib"):
        if len(out[name]) == 0:
            raise DataError(f"the {name} split has no good LS: the data has too few good runs")
    return {k: v.reset_index(drop=True) for k, v in out.items()}

"""Evaluation protocols (SPEC §4.1) as plans of runs: which runs train, calibrate and are
certified at each step. Plain numpy; the steps and benchmarks fill the plans with LS.

* ``rolling`` (the operational protocol): walk forward through the runs in order. At each
  step the detector trains on the good LS of a window of recent runs, the newest runs of
  that window are held out to calibrate the cut-offs, and the next block of runs is
  certified. Every run after the first window is certified exactly once, by a model that
  saw only earlier runs.
* ``era``: train (and calibrate) on every era before the last, certify the last one
  untouched: a stress test of era transfer.

A window counts runs, but a run can be short or all bad: the window is widened backwards
until its training part holds ``min_train_ls`` good LS and its calibration part
``min_calib_ls`` (when the history allows), so a few short runs never leave a detector
with nothing to learn from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc_mlops.errors import DataError


@dataclass(frozen=True)
class Step:
    """One step of a protocol: run numbers of each part (in chronological order)."""

    train_runs: tuple[int, ...]
    calib_runs: tuple[int, ...]
    test_runs: tuple[int, ...]

    @property
    def history_runs(self) -> tuple[int, ...]:
        """Every run the model may know about (its window): train and calibration."""
        return self.train_runs + self.calib_runs


def rolling_steps(runs: np.ndarray, n_good: np.ndarray, window_runs: int, calib_runs: int,
                  step_runs: int, min_train_ls: int = 500, min_calib_ls: int = 200
                  ) -> list[Step]:
    """Walk-forward plan over ``runs`` (in chronological order, one entry per run).

    ``n_good[i]`` is the number of good LS of ``runs[i]``. The first block certified starts
    after the first full window; each later step moves on by ``step_runs`` runs.
    """
    runs = np.asarray(runs)
    n_good = np.asarray(n_good)
    if len(runs) != len(n_good):
        raise ValueError("runs and n_good must have the same length")
    if window_runs < 2 or not 1 <= calib_runs < window_runs or step_runs < 1:
        raise DataError("rolling protocol needs window_runs >= 2, 1 <= calib_runs < "
                        "window_runs and step_runs >= 1")
    if len(runs) <= window_runs:
        raise DataError(f"the rolling protocol needs more than window_runs={window_runs} runs "
                        f"to certify anything; the data has {len(runs)} runs (lower "
                        "window_runs, or use protocol=runs)")
    steps = []
    for start in range(window_runs, len(runs), step_runs):
        calib_lo = _widen(n_good, start, calib_runs, min_calib_ls, floor=1)
        train_lo = _widen(n_good, calib_lo, window_runs - (start - calib_lo), min_train_ls,
                          floor=0)
        steps.append(Step(tuple(runs[train_lo:calib_lo].tolist()),
                          tuple(runs[calib_lo:start].tolist()),
                          tuple(runs[start:start + step_runs].tolist())))
    return steps


def _widen(n_good: np.ndarray, stop: int, n_runs: int, min_ls: int, floor: int) -> int:
    """First index of the part that ends before ``stop``: at least ``n_runs`` runs, widened
    backwards until it holds ``min_ls`` good LS, never below ``floor``."""
    lo = max(floor, stop - max(n_runs, 1))
    while lo > floor and n_good[lo:stop].sum() < min_ls:
        lo -= 1
    return lo


def era_step(runs: np.ndarray, eras: np.ndarray, calib_runs: int) -> Step:
    """Train on every era but the last (its newest ``calib_runs`` runs calibrate), certify
    the last era. ``eras[i]`` is the era of ``runs[i]``; runs in chronological order."""
    runs = np.asarray(runs)
    eras = np.asarray(eras).astype(str)
    order = list(dict.fromkeys(eras.tolist()))
    if len(order) < 2:
        raise DataError(f"protocol=era needs at least two eras; the data has "
                        f"{', '.join(order) or 'none'}")
    last = eras == order[-1]
    history = runs[~last]
    if len(history) <= calib_runs:
        raise DataError(f"protocol=era: the earlier eras have {len(history)} runs, too few to "
                        f"keep calib_runs={calib_runs} for calibration")
    return Step(tuple(history[:-calib_runs].tolist()), tuple(history[-calib_runs:].tolist()),
                tuple(runs[last].tolist()))


def latest_window(runs: np.ndarray, n_good: np.ndarray, window_runs: int, calib_runs: int,
                  min_train_ls: int = 500, min_calib_ls: int = 200) -> Step:
    """The window a certifier for *new* runs trains on: the newest runs of the data, the
    same shape as a rolling step's window (nothing left to certify inside the data)."""
    runs = np.asarray(runs)
    n_good = np.asarray(n_good)
    stop = len(runs)
    calib_lo = _widen(n_good, stop, min(calib_runs, stop - 1), min_calib_ls, floor=1)
    train_lo = _widen(n_good, calib_lo, window_runs - (stop - calib_lo), min_train_ls, floor=0)
    return Step(tuple(runs[train_lo:calib_lo].tolist()), tuple(runs[calib_lo:stop].tolist()), ())

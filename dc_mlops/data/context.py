"""Run context: each LS seen together with its neighbours in the same run (SPEC §3.1, after
the conditions fit).

Why: a DC expert does not judge one LS of 23 s on its own; failures come in contiguous LS
blocks or whole runs (a sector trips and stays off, a noisy channel fires for an hour), and
the expert sees them in the run's histograms and trend plots. One LS of a block with a
shift of 2 LS-to-LS standard deviations in one feature is lost among ~100 features; the
mean of 17 neighbouring LS carries the same shift with a quarter of the noise. So, after
the conditions correction (which removes the pile-up decay along the run), every LS's
residuals are replaced by their mean over the LS within ``context_ls`` of it in the same
run (fewer at a run's ends). On the simulated rolling walk this lifts the ROC AUC of the
PDs' own failures (``benchmarks/results/detectors.md``, ``context`` columns); the price is a
blurred edge: a good LS next to a strong failure block shares some of its shift (it goes to
review or is flagged), and a failure of one or two LS is diluted. ``context_ls=0`` turns it
off.

Rows must come grouped by run, in LS order inside each run (an LS table sorted by run and
LS): neighbours are the adjacent rows of the same run. When a detector is fitted on good
LS only, the rows of a run are its good LS, so a training window never averages in a bad
LS; when an era is scored, every LS of a run takes part, as it would in operation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError

#: LS on each side of an LS averaged into its run context by default (0: off), the one place
#: the default lives (settings of train, tune and evaluate); chosen by measurement,
#: benchmarks/results/detectors.md
CONTEXT_LS = 8


def check_runs(runs, n_rows: int, what: str = "runs") -> np.ndarray:
    """The run number of each row, with each run's rows contiguous; DataError otherwise."""
    r = np.asarray(runs)
    if r.ndim != 1 or len(r) != n_rows:
        raise DataError(f"{what}: one run number per LS is needed ({n_rows} LS, got shape "
                        f"{r.shape})")
    if len(r):
        starts = r[np.r_[True, r[1:] != r[:-1]]]
        if len(starts) != len(np.unique(starts)):
            seen, dup = set(), None
            for x in starts.tolist():
                if x in seen:
                    dup = x
                    break
                seen.add(x)
            raise DataError(f"{what}: the LS of run {dup} are not contiguous: sort the LS by "
                            "run and LS before scoring with run context")
    return r


def run_bounds(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First row and one past the last row of each run's contiguous block."""
    runs = np.asarray(runs)
    if len(runs) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    return starts, np.r_[starts[1:], len(runs)]


def window_mean(Z: np.ndarray, runs: np.ndarray, k: int) -> np.ndarray:
    """Mean of each row with the rows within ``k`` of it in the same run (centred window,
    cut at the run's ends). ``k=0`` returns ``Z`` unchanged. Cost O(n x features).

    One cumulative sum over all rows (a zero row first): a window's sum is the difference
    of two of its rows. Rows whose whole window lies in their run (most of them) take it
    from two shifted slices; only the rows within ``k`` of a run's ends look up their
    window clipped to the run. No Python loop over runs: a batch of many short runs costs
    the same. The sums carry rounding of the order of 1e-16 times the largest running sum
    of the batch, far below any score's resolution.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if k <= 0 or len(Z) == 0:
        return Z
    n, width = len(Z), 2 * k + 1
    csum = np.empty((n + 1, Z.shape[1]))
    csum[0] = 0.0
    np.cumsum(Z, axis=0, out=csum[1:])
    out = np.empty_like(Z)
    if n > 2 * k:  # rows k .. n-k-1 as if no run ended near them
        np.subtract(csum[width:], csum[:n - 2 * k], out=out[k:n - k])
        out[k:n - k] /= width
    starts, stops = run_bounds(runs)
    sizes = stops - starts
    i = np.arange(n)
    lo = np.maximum(i - k, np.repeat(starts, sizes))
    hi = np.minimum(i + k + 1, np.repeat(stops, sizes))
    cut = np.flatnonzero(hi - lo < width)  # near a run's (or the batch's) ends
    out[cut] = (csum[hi[cut]] - csum[lo[cut]]) / (hi - lo)[cut, None]
    return out


def ls_order(frame: pd.DataFrame) -> pd.DataFrame:
    """An LS table sorted by run and LS: the order run context reads neighbours in."""
    return frame.sort_values(["runId", "lumiId"], kind="stable").reset_index(drop=True)


def halo_slices(runs: np.ndarray, start: int, stop: int, k: int) -> tuple[int, int]:
    """Rows to read around the batch ``[start, stop)`` so that every row of the batch sees
    its whole window: ``k`` rows on each side, never beyond the array."""
    return max(0, start - k), min(len(runs), stop + k)

"""Run context (dc_mlops.data.context): each LS averaged with its neighbours in its run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.context import check_runs, ls_order, window_mean
from dc_mlops.errors import DataError


def test_window_mean_is_a_centred_mean_cut_at_each_runs_ends():
    Z = np.arange(8, dtype=float).reshape(-1, 1)  # rows 0..4 in run 1, 5..7 in run 2
    runs = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    out = window_mean(Z, runs, 1)[:, 0]
    np.testing.assert_allclose(out, [0.5, 1, 2, 3, 3.5, 5.5, 6, 6.5])
    # a run never borrows from the next one, whatever the width
    np.testing.assert_allclose(window_mean(Z, runs, 10)[:, 0], [2] * 5 + [6] * 3)
    assert window_mean(Z, runs, 0) is not None and np.array_equal(window_mean(Z, runs, 0), Z)


def test_a_shift_held_by_a_block_grows_against_the_noise():
    """Why run context: a 1.5-sigma shift over 20 LS is 1.5 sigma per LS, but about
    1.5 * sqrt(17) sigma of the noise left in a 17-LS mean."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(4000, 1))
    runs = np.repeat(np.arange(20), 200)
    Z[1090:1110] += 1.5
    w = window_mean(Z, runs, 8)
    noise = w[np.r_[0:1000, 1200:4000]].std()
    assert noise < 0.3
    assert w[1100, 0] / noise > 5 > Z[1100, 0] / Z.std() + 2


def test_runs_must_be_contiguous_and_one_per_row():
    check_runs([1, 1, 2, 2, 3], 5)
    with pytest.raises(DataError, match="LS of run 1 are not contiguous"):
        check_runs([1, 2, 1], 3)
    with pytest.raises(DataError, match="one run number per LS"):
        check_runs([1, 2], 3)


def test_ls_order_sorts_by_run_then_ls():
    f = pd.DataFrame({"runId": [2, 1, 1], "lumiId": [1, 5, 2]})
    assert ls_order(f)[["runId", "lumiId"]].values.tolist() == [[1, 2], [1, 5], [2, 1]]


def test_window_mean_matches_a_mean_taken_run_by_run():
    """One cumulative sum over the batch gives each run's own centred means: runs of one
    LS, runs shorter and longer than the window."""
    rng = np.random.default_rng(3)
    sizes = np.r_[1, 2, 1, 5, 17, 1, 40, 3, 300, 1, 8, 9, rng.integers(1, 60, 30)]
    runs = np.repeat(rng.permutation(len(sizes)) * 7 + 100, sizes)
    Z = rng.normal(size=(len(runs), 4)) * [1, 10, 100, 0.01] + [0, 5, -50, 0]
    for k in (1, 3, 8, 50):
        want = np.empty_like(Z)
        for r in np.unique(runs):
            rows = np.flatnonzero(runs == r)
            for p, row in enumerate(rows):
                want[row] = Z[rows[max(0, p - k):p + k + 1]].mean(axis=0)
        np.testing.assert_allclose(window_mean(Z, runs, k), want, rtol=1e-10, atol=1e-12)

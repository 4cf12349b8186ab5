"""Walk-forward and era-transfer plans: every run certified once, only by a model of the past."""
import numpy as np
import pytest

from dc_mlops.errors import DataError
from dc_mlops.evaluation.protocols import era_step, rolling_steps


def test_rolling_certifies_every_run_after_the_first_window_once_from_the_past():
    runs = np.arange(100, 160)
    steps = rolling_steps(runs, np.full(60, 100), window_runs=10, calib_runs=3, step_runs=7)
    certified = [r for s in steps for r in s.test_runs]
    assert certified == list(range(110, 160))
    for s in steps:
        assert len(s.calib_runs) == 3 and len(s.train_runs) == 7
        assert max(s.history_runs) < min(s.test_runs)
        assert max(s.train_runs) < min(s.calib_runs)


def test_rolling_widens_a_window_of_short_runs_until_it_has_enough_good_ls():
    runs = np.arange(30)
    n_good = np.full(30, 50)
    n_good[15:20] = 0  # all-bad runs just before the first block
    steps = rolling_steps(runs, n_good, window_runs=6, calib_runs=2, step_runs=5,
                          min_train_ls=200, min_calib_ls=100)
    first = steps[0]
    assert first.test_runs[0] == 6
    later = [s for s in steps if s.test_runs[0] == 21][0]
    assert sum(n_good[list(later.calib_runs)]) >= 100
    assert sum(n_good[list(later.train_runs)]) >= 200
    assert max(later.history_runs) == 20


@pytest.mark.parametrize("kwargs", [dict(window_runs=1, calib_runs=1, step_runs=1),
                                    dict(window_runs=5, calib_runs=5, step_runs=1),
                                    dict(window_runs=50, calib_runs=5, step_runs=1)])
def test_rolling_refuses_impossible_windows(kwargs):
    with pytest.raises(DataError):
        rolling_steps(np.arange(20), np.full(20, 10), **kwargs)


def test_era_step_certifies_only_the_last_era():
    runs = np.arange(10)
    eras = np.array(["A"] * 4 + ["B"] * 3 + ["C"] * 3)
    s = era_step(runs, eras, calib_runs=2)
    assert s.test_runs == (7, 8, 9) and s.calib_runs == (5, 6) and s.train_runs == (0, 1, 2, 3, 4)
    with pytest.raises(DataError, match="two eras"):
        era_step(runs, np.full(10, "A"), calib_runs=2)

import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.splits import SplitFractions, split_table
from dc_mlops.errors import DataError


def _frame(n_runs=20, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(10, 200, n_runs)
    runs = np.repeat(np.arange(1000, 1000 + n_runs), sizes)
    ls = np.concatenate([np.arange(1, s + 1) for s in sizes])
    label = (rng.random(len(runs)) < 0.08).astype(np.int8)
    return pd.DataFrame({"runId": runs, "lumiId": ls, "label": label, "x": rng.normal(size=len(runs))})


@pytest.mark.parametrize("mode", ["chronological", "random"])
def test_run_never_straddles_splits_and_good_only_where_promised(mode):
    frame = _frame()
    parts = split_table(frame, SplitFractions(), mode, seed=3)
    run_sets = {k: set(v["runId"]) for k, v in parts.items() if k != "known_bad"}
    names = list(run_sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not run_sets[a] & run_sets[b], (a, b)
    for name in ("train", "val", "calib"):
        assert (parts[name]["label"] == 0).all()
    assert set(parts["known_bad"]["runId"]).isdisjoint(run_sets["test"])
    assert (parts["known_bad"]["label"] == 1).all()
    # nothing lost: every LS is in exactly one part
    assert sum(len(v) for v in parts.values()) == len(frame)


def test_chronological_puts_latest_runs_in_test():
    parts = split_table(_frame(), SplitFractions(), "chronological")
    assert parts["train"]["runId"].max() < parts["val"]["runId"].min()
    assert parts["calib"]["runId"].max() < parts["test"]["runId"].min()
    share = len(parts["train"]) / (len(parts["train"]) + len(parts["val"]) + len(parts["calib"]))
    assert 0.45 < share < 0.8


def test_too_few_runs_and_bad_fractions():
    with pytest.raises(DataError, match="at least 4 runs"):
        split_table(_frame(n_runs=3))
    with pytest.raises(DataError, match="fractions"):
        SplitFractions(0.6, 0.3, 0.2)

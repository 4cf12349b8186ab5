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


def test_one_run_and_bad_fractions_are_refused():
    with pytest.raises(DataError, match="the data has 1 run"):
        split_table(_frame(n_runs=1))
    with pytest.raises(DataError, match="fractions"):
        SplitFractions(0.6, 0.3, 0.2)


def test_few_runs_split_train_val_calib_by_ls_blocks():
    frame = _frame(n_runs=3, seed=1)
    parts = split_table(frame, SplitFractions(), "chronological")
    assert set(parts["test"]["runId"]) == {1002}
    ref = pd.concat([parts[p] for p in ("train", "val", "calib")])
    assert not ref.duplicated(["runId", "lumiId"]).any()
    for name in ("val", "calib"):  # blocks dealt along each run: every part spans it
        for run in (1000, 1001):
            part = parts[name][parts[name]["runId"] == run]["lumiId"]
            all_ls = frame[frame["runId"] == run]["lumiId"]
            assert part.min() < all_ls.median() < part.max(), (name, run)


def test_an_all_bad_run_does_not_empty_val():
    # the data has plenty of good LS, but one reference run is entirely bad: parts are
    # chosen by good-LS counts, so val still gets good runs
    frame = _frame(n_runs=12, seed=2)
    frame.loc[frame["runId"] == 1006, "label"] = 1
    parts = split_table(frame, SplitFractions(), "chronological")
    for name in ("train", "val", "calib"):
        assert len(parts[name]) > 0
    assert 1006 in set(parts["known_bad"]["runId"])


def test_runs_mode_takes_the_named_runs_only():
    frame = _frame(n_runs=10, seed=3)
    parts = split_table(frame, mode="runs", train_runs=[(1002, 1002), (1004, 1005)],
                        test_runs=[(1007, 1009)])
    ref = pd.concat([parts[p] for p in ("train", "val", "calib", "known_bad")])
    assert set(ref["runId"]) == {1002, 1004, 1005}
    assert set(parts["test"]["runId"]) == {1007, 1008, 1009}
    assert len(parts["test"]) == int(frame["runId"].between(1007, 1009).sum())
    # three reference runs: whole runs per part
    for a, b in (("train", "val"), ("val", "calib"), ("train", "calib")):
        assert set(parts[a]["runId"]).isdisjoint(parts[b]["runId"])


@pytest.mark.parametrize("train, test, words", [
    ([(999, 999)], [(1007, 1009)], "train_runs: run 999 is not in the data"),
    ([(1002, 1002)], [(2000, 2100)], "test_runs: no run of 2000-2100 is in the data"),
    ([(1002, 1003)], [(1003, 1005)], "run 1003 is in both train_runs and test_runs"),
    ([(1001, 1001)], [(1007, 1007)], "run 1001 has no good LS (all"),
])
def test_runs_mode_messages_name_the_run(train, test, words):
    frame = _frame(n_runs=10, seed=3)
    frame.loc[frame["runId"] == 1001, "label"] = 1
    with pytest.raises(DataError) as err:
        split_table(frame, mode="runs", train_runs=train, test_runs=test)
    assert words in str(err.value)

"""Run conditions: the simulator's table round-trips through preprocess; errors name the LS."""
import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.lstable import LabelOptions, load_ls_table
from dc_mlops.data.runconditions import conditions_for, read_conditions
from dc_mlops.data.simulator import write_simulation
from dc_mlops.errors import DataError


@pytest.fixture(scope="module")
def era(tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "era"
    write_simulation(out, ["JetHT"], ["2018D"], 900, 3)
    return out


def test_era_folder_brings_its_conditions(era):
    t = load_ls_table(str(era), "JetHT", LabelOptions())
    cond = pd.read_parquet(era / "conditions.parquet")
    np.testing.assert_allclose(t.frame["lumi"], cond["lumi"])
    np.testing.assert_allclose(t.frame["pileup"], cond["pileup"])
    np.testing.assert_allclose(t.frame["t_fill"], cond["t_fill"])
    assert t.conditions == ["lumi", "pileup", "t_fill"] and t.conditions_granularity == "ls"
    assert (t.frame["era"] == "2018D").all()


def test_raw_histograms_with_a_conditions_table_round_trip(era, tmp_path):
    cond = pd.read_parquet(era / "conditions.parquet")
    cond.sample(frac=1, random_state=0).to_csv(tmp_path / "oms.csv", index=False)  # any order
    hist = str(era / "JetHT" / "histograms.parquet")
    t = load_ls_table(hist, "JetHT", LabelOptions(golden_json=str(era / "golden.json")),
                      conditions_table=str(tmp_path / "oms.csv"))
    np.testing.assert_allclose(t.frame["lumi"], cond["lumi"])
    np.testing.assert_allclose(t.frame["pileup"], cond["pileup"])
    bare = load_ls_table(hist, "JetHT", LabelOptions(golden_json=str(era / "golden.json")))
    assert bare.conditions == [] and bare.frame[["lumi", "pileup"]].isna().all().all()


def test_per_run_table_applies_to_every_ls_of_the_run(era, tmp_path):
    cond = pd.read_parquet(era / "conditions.parquet")
    per_run = cond.groupby("run", as_index=False)["lumi"].mean()
    per_run.to_csv(tmp_path / "runs.csv", index=False)
    rc = read_conditions(tmp_path / "runs.csv")
    assert rc.granularity == "run" and rc.columns == ["lumi"]
    got = conditions_for(rc, cond["run"].to_numpy(), cond["ls"].to_numpy())
    expected = cond.groupby("run")["lumi"].transform("mean").to_numpy()
    np.testing.assert_allclose(got["lumi"], expected)
    assert np.isnan(got["pileup"]).all()


def test_partial_table_names_the_first_missing_ls(era, tmp_path):
    cond = pd.read_parquet(era / "conditions.parquet")
    runs, ls = cond["run"].to_numpy(), cond["ls"].to_numpy()
    cond.drop(index=[10, 11]).to_parquet(tmp_path / "partial.parquet")
    with pytest.raises(DataError) as err:
        conditions_for(read_conditions(tmp_path / "partial.parquet"), runs, ls)
    assert f"no conditions for (run, LS) = ({runs[10]}, {ls[10]})" in str(err.value)
    assert "2 LS without conditions" in str(err.value)
    per_run = pd.DataFrame({"run": [runs[0]], "lumi": [1.0]})
    per_run.to_csv(tmp_path / "one_run.csv", index=False)
    other = runs[runs != runs[0]][0]
    with pytest.raises(DataError, match=f"no conditions for run {other}"):
        conditions_for(read_conditions(tmp_path / "one_run.csv"), runs, ls)


def test_time_in_fill_is_per_ls_and_finite(era, tmp_path):
    cond = pd.read_parquet(era / "conditions.parquet")
    per_run = cond.groupby("run", as_index=False)[["lumi", "pileup", "t_fill"]].mean()
    per_run.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(DataError, match="t_fill .time in fill. is a per-LS value"):
        read_conditions(tmp_path / "runs.csv")
    cond.loc[3, "t_fill"] = -1.0
    cond.to_csv(tmp_path / "ls.csv", index=False)
    with pytest.raises(DataError, match="row 5 .*t_fill -1.0 is not a finite non-negative"):
        read_conditions(tmp_path / "ls.csv")

"""The preprocess step end to end on a small hand-made era folder and on real pixel data."""
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.cli import main as cli_main
from dc_mlops.data.features import get_feature_set
from dc_mlops.data.lstable import LabelOptions, load_ls_table
from dc_mlops.settings import PreprocessSettings
from dc_mlops.steps.preprocess import run_preprocess
from tests.data.eras import write_small_era

PIXEL = "cms2017B_zerobias_pixel/chargeInner_PXLayer_1_runs297047-297050.csv"
GOLDEN_2017 = "certification_json/Cert_294927-306462_13TeV_PromptReco_Collisions17_JSON.txt"


def make_era(folder, n_runs=8, n_ls=40, seed=0):
    """A tiny ZeroBias era folder: Gaussian histograms, the last 4 LS of every run a shifted
    TRACKER failure, LS 5 of every run low-statistics (tests/data/eras.py)."""
    return write_small_era(folder, n_runs=n_runs, n_ls=n_ls, seed=seed, low_stats_ls=5)


def test_preprocess_logs_splits_metrics_dataset_and_report(tracking, tmp_path):
    era = make_era(tmp_path / "era")
    res = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era)))
    run = MlflowClient().get_run(res.run_id)
    assert run.info.status == "FINISHED" and not res.reused
    m = run.data.metrics
    assert m["n_ls_input"] == 320 and m["n_ls_low_stats"] == 8 and m["n_ls"] == 312
    assert m["n_bad"] == 32 and m["n_bad_origin__failure"] == 32
    assert m["n_bad_subsystem__TRACKER"] == 32
    assert m["n_train"] + m["n_val"] + m["n_calib"] + m["n_test"] + m["n_known_bad"] == 312
    assert run.data.params["min_events"] == "500" and run.data.params["pd"] == "ZeroBias"
    arts = {a.path for a in MlflowClient().list_artifacts(res.run_id)}
    assert {"splits", "features.json", "data_report.png"} <= arts
    splits = {a.path for a in MlflowClient().list_artifacts(res.run_id, "splits")}
    assert splits == {f"splits/{n}.parquet" for n in ("train", "val", "calib", "test", "known_bad")}
    train = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=res.run_id, artifact_path="splits/train.parquet"))
    assert (train["label"] == 0).all() and len(train.columns) == 6 + 14 * 7 + 5
    for col in ("runId", "lumiId", "lumi", "pileup", "EventsPerLs", "era", "label", "origin",
                "subsystem", "scenario", "judged"):
        assert col in train.columns
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=res.run_id, artifact_path="splits/test.parquet"))
    # TRACKER failures are ZeroBias's to find: every bad test LS is judged
    assert test["judged"].sum() == test["label"].sum() > 0
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "era" and inputs[0].dataset.digest


def test_second_call_reuses_the_finished_run(tracking, tmp_path):
    era = make_era(tmp_path / "era")
    s = PreprocessSettings(pd="ZeroBias", data=str(era))
    first = run_preprocess(s)
    second = run_preprocess(s)
    assert second.reused and second.run_id == first.run_id
    third = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era), min_events=50))
    assert not third.reused


@pytest.mark.parametrize("args, words", [
    (["--pd", "Jet"], "parameter pd: must be one of ZeroBias"),
    (["--pd", "JetHT"], "simulated era holds PD(s) ZeroBias, not 'JetHT'"),
    (["--pd", "ZeroBias", "--representation", "pixels"], "parameter representation: must be one"),
])
def test_bad_parameters_refused(tracking, tmp_path, capsys, args, words):
    era = make_era(tmp_path / "era")
    assert cli_main(["preprocess", "--data", str(era), *args]) == 2
    assert words in capsys.readouterr().err


def test_feature_table_input_with_nan_and_empty(tracking, tmp_path, capsys):
    fs = get_feature_set("ZeroBias")
    df = pd.DataFrame(np.ones((3, len(fs.feature_names()))), columns=fs.feature_names())
    df.insert(0, "runId", 1)
    df.insert(1, "lumiId", [1, 2, 3])
    df.loc[1, "qgTkPt_2"] = np.nan
    df.to_csv(tmp_path / "ZeroBias_feature2.csv", index=False)
    assert cli_main(["preprocess", "--pd", "ZeroBias", "--data", str(tmp_path / "ZeroBias_feature2.csv"),
                     "--golden-json", str(tmp_path / "g.json")]) == 2
    assert "row 1 (run 1, LS 2): column 'qgTkPt_2' is NaN or inf" in capsys.readouterr().err
    df.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    assert cli_main(["preprocess", "--pd", "ZeroBias", "--data", str(tmp_path / "empty.csv")]) == 2
    assert "empty input" in capsys.readouterr().err


def test_real_pixel_histograms_become_labelled_features(shared_data):
    table = load_ls_table(str(shared_data / PIXEL), "auto",
                          LabelOptions(golden_json=str(shared_data / GOLDEN_2017)))
    assert len(table.frame) == 834 and table.feature_names == [
        f"chargeInner_PXLayer_1_{i}" for i in range(7)]
    # 709 LS of run 297050 are in the 2017 Golden JSON; runs 297047-297049 and 72 LS are bad
    assert int(table.frame["label"].sum()) == 834 - 709
    assert (table.frame["origin"][table.frame["label"] == 1] == "human").all()
    # cluster-charge quantiles in electrons, inside the 0-80000 axis and ordered
    q = table.frame[table.feature_names[:5]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and q.min() >= 0 and q.max() <= 80000


def test_real_pixel_fixture_chronological_split_says_which_runs_lack_good_ls(tracking, shared_data,
                                                                           capsys):
    # runs 297047-297049 (before the test run 297050) are all bad: nothing to train on
    code = cli_main(["preprocess", "--pd", "auto", "--data", str(shared_data / PIXEL),
                     "--golden-json", str(shared_data / GOLDEN_2017)])
    err = capsys.readouterr().err
    assert code == 2 and "no good LS to train on" in err and "297047 (0 good LS)" in err


def test_real_pixel_fixture_with_one_reference_run(tracking, shared_data, capsys):
    """A DC expert's protocol: train on reference run 297050, test 297047-297049; val and
    calib come from LS blocks of 297050. The conditions are OMS's per-run figures."""
    oms = pd.read_csv(shared_data / "cms2017B_zerobias_pixel" / "oms_runs_2017B.csv")
    oms = oms[(oms["duration"] > 0) & oms["recorded_lumi"].notna()]
    cond = pd.DataFrame({"run": oms["run_number"],
                         "lumi": 1000 * oms["recorded_lumi"] / oms["duration"]})
    cond.to_csv(tracking_dir(tracking) / "oms_lumi.csv", index=False)
    code = cli_main(["preprocess", "--pd", "auto", "--data", str(shared_data / PIXEL),
                     "--golden-json", str(shared_data / GOLDEN_2017), "--split-mode", "runs",
                     "--train-runs", "297050", "--test-runs", "297047-297049",
                     "--conditions-table", str(tracking_dir(tracking) / "oms_lumi.csv")])
    out = capsys.readouterr().out
    assert code == 0, out
    line = [ln for ln in out.splitlines() if ln.startswith("preprocess run ")]
    assert len(line) == 1 and "train/val/calib/test/known_bad" in line[0]
    run_id = line[0].split()[2]
    parts = {p: pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"splits/{p}.parquet")) for p in ("train", "val", "calib",
                                                                       "test", "known_bad")}
    assert set(parts["test"]["runId"]) == {297047, 297048, 297049} and len(parts["test"]) == 58
    for name in ("train", "val", "calib"):
        p = parts[name]
        assert set(p["runId"]) == {297050} and (p["label"] == 0).all() and len(p) > 50
        assert p["lumiId"].min() < 200 and p["lumiId"].max() > 600  # blocks span the run
    keys = pd.concat([parts[n] for n in ("train", "val", "calib")])
    assert not keys.duplicated(["runId", "lumiId"]).any()
    assert (parts["known_bad"]["runId"] == 297050).all()
    # per-run conditions: one lumi per run, carried into every split
    assert parts["train"]["lumi"].nunique() == 1 and parts["train"]["pileup"].isna().all()
    spec = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/features.json"))
    assert spec["conditions_available"] == ["lumi"] and spec["conditions_granularity"] == "run"
    assert spec["under_overflow"] == "drop" and spec["responsibility"]["PIXEL"] == "ZeroBias"


def tracking_dir(uri: str):
    from pathlib import Path
    return Path(uri.removeprefix("sqlite:///")).parent


def test_simulated_pd_all_era_feeds_each_pd_with_conditions_and_judged(tracking, tmp_path):
    from dc_mlops.settings import SimulateSettings
    from dc_mlops.steps.simulate import run_simulate
    era = run_simulate(SimulateSettings(pd="all", era="2018C", n_ls=1500, seed=4,
                                        out=str(tmp_path / "era")))
    judged = {}
    for pd_name in ("ZeroBias", "JetHT", "EGamma", "SingleMuon"):
        res = run_preprocess(PreprocessSettings(pd=pd_name, data=str(era)))
        test = pd.read_parquet(mlflow.artifacts.download_artifacts(
            run_id=res.run_id, artifact_path="splits/test.parquet"))
        assert np.isfinite(test[["lumi", "pileup"]].to_numpy()).all()
        spec = json.loads(mlflow.artifacts.load_text(f"runs:/{res.run_id}/features.json"))
        assert spec["conditions_available"] == ["lumi", "pileup", "t_fill"]
        assert spec["conditions_source"] == "era folder"
        judged[pd_name] = res.counts["n_judged"]
        assert res.counts["n_bad"] == judged[pd_name] + sum(
            v for k, v in res.counts.items() if k.startswith("n_bad_subsystem__")
            and k.split("__")[1] not in _mine(pd_name))
    assert sum(judged.values()) > 0


def _mine(pd_name: str) -> set[str]:
    from dc_mlops.data.responsibility import DEFAULT_MAP, subsystems_of
    return subsystems_of(pd_name, DEFAULT_MAP) | {"unknown"}


def test_responsibility_override_moves_judged_ls(tracking, tmp_path):
    era = make_era(tmp_path / "era")
    default = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era)))
    (tmp_path / "map.yaml").write_text("TRACKER: JetHT\n")
    moved = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era),
                                              responsibility=str(tmp_path / "map.yaml")))
    assert default.counts["n_judged"] == default.counts["n_bad"] > 0
    assert moved.counts["n_judged"] == 0  # the TRACKER failures are now JetHT's
    spec = json.loads(mlflow.artifacts.load_text(f"runs:/{moved.run_id}/features.json"))
    assert spec["responsibility"]["TRACKER"] == "JetHT" and spec["responsibility"]["MUON"] == "SingleMuon"


def test_preprocess_without_data_is_an_error_and_simulates_nothing(tracking, tmp_path, capsys):
    assert cli_main(["preprocess", "--pd", "JetHT"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "preprocess needs data" in err[0]
    assert not (tmp_path / "data").exists()


def test_resolve_preprocess_run_never_guesses(tracking, tmp_path):
    from dc_mlops.errors import DataError
    from dc_mlops.steps.inputs import resolve_preprocess_run
    with pytest.raises(DataError, match="no finished preprocess run of ZeroBias"):
        resolve_preprocess_run("ZeroBias")
    era = make_era(tmp_path / "era")
    first = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id
    assert resolve_preprocess_run("ZeroBias") == first  # the only candidate
    assert resolve_preprocess_run("ZeroBias", first) == first
    second = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era), min_events=50)).run_id
    with pytest.raises(DataError) as err:
        resolve_preprocess_run("ZeroBias")
    msg = str(err.value)
    assert "2 finished preprocess runs of ZeroBias" in msg and first in msg and second in msg
    assert "pass preprocess_run" in msg and str(era) in msg
    with pytest.raises(DataError, match=f"preprocess_run {first} holds PD 'ZeroBias' data, not "
                                        "'JetHT'"):
        resolve_preprocess_run("JetHT", first)
    with pytest.raises(DataError, match="preprocess run '0123456789abcdef0123456789abcdef' not found"):
        resolve_preprocess_run("ZeroBias", "0123456789abcdef0123456789abcdef")


def test_train_without_preprocess_run_is_one_line(tracking, capsys):
    assert cli_main(["train", "--model", "pca", "--pd", "JetHT"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished preprocess run of JetHT" in err[0]

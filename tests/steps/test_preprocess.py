"""The preprocess step end to end on a small hand-made era folder and on real pixel data."""
import json

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.cli import main as cli_main
from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import get_feature_set
from dc_mlops.data.histograms import Histograms, to_long_table
from dc_mlops.data.lstable import LabelOptions, load_ls_table
from dc_mlops.settings import PreprocessSettings
from dc_mlops.steps.preprocess import run_preprocess

PIXEL = "cms2017B_zerobias_pixel/chargeInner_PXLayer_1_runs297047-297050.csv"
GOLDEN_2017 = "certification_json/Cert_294927-306462_13TeV_PromptReco_Collisions17_JSON.txt"


def make_era(folder, n_runs=8, n_ls=40, seed=0):
    """A tiny ZeroBias era: Gaussian histograms, a shifted block of bad LS per run."""
    rng = np.random.default_rng(seed)
    fs = get_feature_set("ZeroBias")
    runs = np.repeat(np.arange(315300, 315300 + n_runs), n_ls)
    ls = np.tile(np.arange(1, n_ls + 1), n_runs)
    bad = (ls > n_ls - 4)
    edges = np.linspace(-5, 5, 31)
    counts = {}
    for h in fs.histograms:
        mu = rng.normal(0, 0.1, len(runs)) + np.where(bad, 1.5, 0.0)
        x = rng.normal(mu[:, None], 1.0, (len(runs), 400))
        counts[h] = np.stack([np.histogram(r, edges)[0] for r in x]).astype(float)
    h = Histograms(runs, ls, counts, {k: edges for k in counts})
    folder.mkdir(parents=True)
    pq.write_table(to_long_table(h), folder / "histograms.parquet")
    events = np.where(ls == 5, 100, 5000)  # LS 5 of every run is low-statistics
    # luminosity decays along each run, as in a fill; pile-up follows it (conditions vary,
    # so the detectors' default conditions fit has something to fit)
    lumi = (12.0 + (runs - runs[0]) % 3) * np.exp(-ls / 200.0)
    pd.DataFrame({"run": runs, "ls": ls, "fill": 1, "era": "2018A", "lumi": lumi,
                  "pileup": 2.4 * lumi, "events": events}).to_parquet(folder / "lumisections.parquet")
    CertJSON.from_lumisections(runs[~bad], ls[~bad]).write(folder / "golden.json")
    CertJSON.from_lumisections(runs, ls).write(folder / "dcsonly.json")
    pd.DataFrame({"run": np.arange(315300, 315300 + n_runs), "first_ls": n_ls - 3, "last_ls": n_ls,
                  "subsystem": "TRACKER", "scenario": "tracker_sector_off", "severity": 1.0}
                 ).to_csv(folder / "failures.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"pd": "ZeroBias", "seed": seed}))
    return folder


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
    assert (train["label"] == 0).all() and len(train.columns) == 4 + 14 * 7 + 5
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


def _bad_cases(era):
    def overlapping_golden():
        (era / "golden.json").write_text('{"315300": [[1, 10], [5, 20]]}')

    def missing_histogram():
        t = pq.read_table(era / "histograms.parquet")
        keep = pa.array(np.array(t.column("me").to_pylist()) != "qgTkPt")
        pq.write_table(t.filter(keep), era / "histograms.parquet")

    def duplicated_ls():
        t = pq.read_table(era / "histograms.parquet").to_pandas()
        pq.write_table(pa.Table.from_pandas(pd.concat([t, t.iloc[[0]]]), preserve_index=False),
                       era / "histograms.parquet")

    return {"overlapping_golden": (overlapping_golden, "golden.json: run 315300: ranges"),
            "missing_histogram": (missing_histogram, "no histogram 'qgTkPt'"),
            "duplicated_ls": (duplicated_ls, "duplicated (run, LS) = (315300, 1)")}


@pytest.mark.parametrize("case", ["overlapping_golden", "missing_histogram", "duplicated_ls"])
def test_bad_input_one_line_exit_2_and_no_run(tracking, tmp_path, capsys, case):
    era = make_era(tmp_path / "era")
    mutate, words = _bad_cases(era)[case]
    mutate()
    code = cli_main(["preprocess", "--pd", "ZeroBias", "--data", str(era)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    exp = MlflowClient().get_experiment_by_name("dc-mlops-ZeroBias")
    assert exp is None or not MlflowClient().search_runs([exp.experiment_id])


@pytest.mark.parametrize("args, words", [
    (["--pd", "Jet"], "unknown PD 'Jet'"),
    (["--pd", "JetHT"], "simulated era is of PD 'ZeroBias'"),
    (["--pd", "ZeroBias", "--representation", "pixels"], "unknown representation"),
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


def test_real_pixel_fixture_cannot_be_split_by_run(tracking, shared_data, capsys):
    # one good run only: a run-wise split has nothing to train on, and says so in one line
    code = cli_main(["preprocess", "--pd", "auto", "--data", str(shared_data / PIXEL),
                     "--golden-json", str(shared_data / GOLDEN_2017)])
    assert code == 2 and "the train split has no good LS" in capsys.readouterr().err

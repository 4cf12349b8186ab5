"""Bad input, through the real CLI: one row per case, so the next case is one line to add.

Every case must end with exit code 2, exactly one line on stderr (``error: ...``) that
names the file (and key or row) at fault, no output folder, and no MLflow run left behind.
A row is (id, what to break, the command's arguments, the message fragment, the file name
the message must name or None for a parameter). ``era`` is a fresh copy of a small valid
era folder (``tests/data/eras.py``), ``tmp`` a scratch folder for extra files.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.cli import main as cli_main
from dc_mlops.data.features import get_feature_set
from tests.data.eras import FIRST_RUN, write_small_era

R = FIRST_RUN


def _pre(era, *extra):
    return ["preprocess", "--pd", "ZeroBias", "--data", str(era), *extra]


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _golden(tmp, text):
    return _write(tmp / "golden_bad.json", text)


def _failures(tmp, row: str):
    return _write(tmp / "failures_bad.csv", f"run,first_ls,last_ls,subsystem\n{R},1,2,ECAL\n{row}\n")


def _features(tmp, mutate) -> Path:
    fs = get_feature_set("ZeroBias")
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(6, len(fs.feature_names()))),
                      columns=fs.feature_names())
    df.insert(0, "runId", [R, R, R, R + 1, R + 1, R + 1])
    df.insert(1, "lumiId", [1, 2, 3, 1, 2, 3])
    df.insert(2, "lumi", 10.0)
    df.insert(3, "EventsPerLs", 5000)
    df = mutate(df)
    path = tmp / "ZeroBias_feature2.csv"
    df.to_csv(path, index=False)
    return path


def _hist_df(era) -> pd.DataFrame:
    return pq.read_table(era / "ZeroBias" / "histograms.parquet").to_pandas()


def _put_hist(era, df: pd.DataFrame) -> Path:
    path = era / "ZeroBias" / "histograms.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _conditions(tmp, df: pd.DataFrame) -> Path:
    df.to_csv(tmp / "conditions_bad.csv", index=False)
    return tmp / "conditions_bad.csv"


def _full_conditions(era) -> pd.DataFrame:
    return pd.read_parquet(era / "conditions.parquet")


def _flat_legacy(era) -> Path:
    """The earlier flat layout: histograms.parquet + lumisections.parquet at the top."""
    shutil.move(era / "ZeroBias" / "histograms.parquet", era / "histograms.parquet")
    lum = _full_conditions(era).assign(events=5000)
    lum.to_parquet(era / "lumisections.parquet")
    shutil.rmtree(era / "ZeroBias")
    (era / "conditions.parquet").unlink()
    (era / "meta.json").write_text('{"pd": "ZeroBias"}')
    return era / "lumisections.parquet"


CASES = [
    # --- Golden JSON ---
    ("golden_run_twice", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, f'{{"{R}": [[1, 10]], "{R}": [[12, 20]]}}'))),
     f"run {R} appears twice", "golden_bad.json"),
    ("golden_not_utf8", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, b'{"315300": [[1, 10]]}\xff\xfe'))), "not UTF-8", "golden_bad.json"),
    ("golden_overlap", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, f'{{"{R}": [[1, 10], [5, 20]]}}'))), f"run {R}: ranges [1, 10] and [5, 20] overlap",
     "golden_bad.json"),
    ("golden_fractional_ls", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, f'{{"{R}": [[1.5, 10]]}}'))), "is not [first, last] integers", "golden_bad.json"),
    ("golden_not_an_object", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, "[[1, 10]]"))), "top level must be an object", "golden_bad.json"),
    ("golden_not_json", lambda era, tmp: _pre(era, "--golden-json", str(_golden(
        tmp, '{"315300": [[1, 10]'))), "not valid JSON", "golden_bad.json"),
    ("golden_in_era_overlap", lambda era, tmp: (_write(
        era / "golden.json", f'{{"{R}": [[1, 10], [5, 20]]}}'), _pre(era))[1],
     "overlap", "golden.json"),
    # --- label blocks ---
    ("failures_first_after_last", lambda era, tmp: _pre(era, "--failures", str(_failures(
        tmp, f"{R},9,3,HCAL"))), "row 3: last_ls 3 is before first_ls", "failures_bad.csv"),
    ("failures_fractional_ls", lambda era, tmp: _pre(era, "--failures", str(_failures(
        tmp, f"{R},2.5,3,HCAL"))), "row 3: column 'first_ls' is not an integer",
     "failures_bad.csv"),
    ("failures_run_minus_one", lambda era, tmp: _pre(era, "--failures", str(_failures(
        tmp, "-1,1,3,HCAL"))), "row 3: run -1 is not a run number", "failures_bad.csv"),
    ("dcs_bad_missing_column", lambda era, tmp: _pre(era, "--dcs-bad", str(_write(
        tmp / "dcs.csv", f"run,first_ls\n{R},1\n"))), "missing column 'last_ls'", "dcs.csv"),
    # --- feature tables ---
    ("features_nan_lumi", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.assign(lumi=[10.0, np.nan, 9, 9, 9, 9])))],
     "row 1 (run 315300, LS 2): lumi nan must be a finite number", "ZeroBias_feature2.csv"),
    ("features_negative_events", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data",
                                                    str(_features(tmp, lambda d: d.assign(
                                                        EventsPerLs=[5, 5, -3, 5, 5, 5])))],
     "EventsPerLs -3 must be a finite number >= 0", "ZeroBias_feature2.csv"),
    ("features_fractional_run", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.assign(runId=[R, R, R + 0.5, R + 1, R + 1, R + 1])))],
     "row 2: runId 315300.5 is not a run number", "ZeroBias_feature2.csv"),
    ("features_duplicate_ls", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.assign(lumiId=[1, 2, 2, 1, 2, 3])))],
     f"duplicated (run, LS) = ({R}, 2)", "ZeroBias_feature2.csv"),
    ("features_missing_column", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.drop(columns=["qgTkPt_3"])))],
     "missing feature column 'qgTkPt_3'", "ZeroBias_feature2.csv"),
    ("features_extra_column", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.assign(qFoo_0=1.0)))],
     "column 'qFoo_0' is not a feature of PD ZeroBias", "ZeroBias_feature2.csv"),
    ("features_empty", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _features(tmp, lambda d: d.iloc[:0]))], "empty input", "ZeroBias_feature2.csv"),
    # --- era folders and raw histograms ---
    ("histograms_truncated", lambda era, tmp: _pre(_truncate(
        era / "ZeroBias" / "histograms.parquet").parent.parent), "cannot read histograms",
     "histograms.parquet"),
    ("histograms_duplicate_ls", lambda era, tmp: (_put_hist(era, pd.concat(
        [_hist_df(era), _hist_df(era).iloc[[0]]])), _pre(era))[1],
     f"duplicated (run, LS) = ({R}, 1)", "histograms.parquet"),
    ("histograms_missing_me", lambda era, tmp: (_put_hist(era, _hist_df(era).query(
        "me != 'qgTkPt'")), _pre(era))[1], "no histogram 'qgTkPt', which PD ZeroBias needs",
     "histograms.parquet"),
    ("histograms_extra_me", lambda era, tmp: (_put_hist(era, pd.concat(
        [_hist_df(era), _hist_df(era).query("me == 'qgTkPt'").assign(me="qFoo")])), _pre(era))[1],
     "histogram 'qFoo' is not part of PD ZeroBias", "histograms.parquet"),
    ("histograms_missing_ls", lambda era, tmp: (_put_hist(era, _hist_df(era).drop(index=[40])),
                                                 _pre(era))[1],
     "has no histogram for (run, LS)", "histograms.parquet"),
    ("histograms_binning_changes", lambda era, tmp: (_put_hist(era, _hist_df(era).assign(
        x_max=lambda d: np.where(np.arange(len(d)) == 7, 9.0, d["x_max"]))), _pre(era))[1],
     "changes its binning", "histograms.parquet"),
    ("histograms_missing_column", lambda era, tmp: (_put_hist(era, _hist_df(era).drop(
        columns=["x_bin"])), _pre(era))[1], "missing column 'x_bin'", "histograms.parquet"),
    ("histograms_empty", lambda era, tmp: (_put_hist(era, _hist_df(era).iloc[:0]), _pre(era))[1],
     "empty input", "histograms.parquet"),
    ("histograms_negative_count", lambda era, tmp: (_put_hist(era, _hist_df(era).assign(
        data=lambda d: [list(v) if i != 5 else [-1] + list(v[1:]) for i, v in enumerate(d["data"])]
    )), _pre(era))[1], "NaN, inf or negative bin content", "histograms.parquet"),
    ("jsonl_empty_file", lambda era, tmp: ["preprocess", "--pd", "ZeroBias", "--data", str(
        _write(tmp / "h.jsonl", ""))], "empty input", "h.jsonl"),
    ("meta_malformed", lambda era, tmp: (_write(era / "meta.json", '{"pds": ['), _pre(era))[1],
     "not valid JSON", "meta.json"),
    ("meta_pds_not_a_list", lambda era, tmp: (_write(era / "meta.json", '{"pds": "ZeroBias"}'),
                                               _pre(era))[1],
     "key 'pds' must be a non-empty list", "meta.json"),
    ("meta_pd_folder_missing", lambda era, tmp: (_write(
        era / "meta.json", '{"pds": ["ZeroBias", "JetHT"]}'),
        ["preprocess", "--pd", "JetHT", "--data", str(era)])[1], "is missing", "JetHT"),
    ("era_of_another_pd", lambda era, tmp: ["preprocess", "--pd", "JetHT", "--data", str(era)],
     "holds PD(s) ZeroBias, not 'JetHT'", "era"),
    ("events_negative", lambda era, tmp: (pd.DataFrame({"run": [R] * 30, "ls": range(1, 31),
                                                        "events": [-3] + [5000] * 29}).to_parquet(
        era / "ZeroBias" / "events.parquet"), _pre(era))[1], "events -3 must be",
     "events.parquet"),
    ("legacy_lumisections_truncated", lambda era, tmp: _pre(_truncate(_flat_legacy(era)).parent),
     "cannot read", "lumisections.parquet"),
    ("legacy_lumisections_duplicate", lambda era, tmp: (
        _flat_legacy(era), pd.concat([pd.read_parquet(era / "lumisections.parquet")] * 2
                                     ).to_parquet(era / "lumisections.parquet"), _pre(era))[2],
     f"duplicated (run, LS) = ({R}, 1)", "lumisections.parquet"),
    # --- run conditions ---
    ("conditions_partial", lambda era, tmp: _pre(era, "--conditions-table", str(_conditions(
        tmp, _full_conditions(era).query("not (run == @R and ls == 7)"))), ),
     f"no conditions for (run, LS) = ({R}, 7)", "conditions_bad.csv"),
    ("conditions_nan_lumi", lambda era, tmp: _pre(era, "--conditions-table", str(_conditions(
        tmp, _full_conditions(era).assign(lumi=lambda d: np.where(d.index == 3, np.nan, d.lumi))))),
     "row 5 (run 315300): lumi nan is not a finite non-negative number", "conditions_bad.csv"),
    ("conditions_duplicate", lambda era, tmp: _pre(era, "--conditions-table", str(_conditions(
        tmp, pd.concat([_full_conditions(era), _full_conditions(era).iloc[[2]]])))),
     f"(run, ls) = ({R}, 3) appears twice", "conditions_bad.csv"),
    ("conditions_no_lumi", lambda era, tmp: _pre(era, "--conditions-table", str(_conditions(
        tmp, _full_conditions(era).drop(columns=["lumi"])))), "missing column 'lumi'",
     "conditions_bad.csv"),
    ("conditions_fractional_ls", lambda era, tmp: _pre(era, "--conditions-table", str(_conditions(
        tmp, _full_conditions(era).assign(ls=lambda d: d.ls + 0.5)))), "ls 1.5 is not an integer",
     "conditions_bad.csv"),
    # --- responsibility map ---
    ("responsibility_unknown_pd", lambda era, tmp: _pre(era, "--responsibility", str(_write(
        tmp / "map.yaml", "PIXEL: Foo\n"))), "subsystem 'PIXEL' maps to 'Foo', not a known PD",
     "map.yaml"),
    ("responsibility_not_a_mapping", lambda era, tmp: _pre(era, "--responsibility", str(_write(
        tmp / "map.yaml", "- PIXEL\n- ZeroBias\n"))), "must be a mapping", "map.yaml"),
    # --- parameters and runs ---
    ("unknown_pd", lambda era, tmp: ["preprocess", "--pd", "Jet", "--data", str(era)],
     "parameter pd: must be one of", None),
    ("label_column_and_golden", lambda era, tmp: _pre(era, "--label-column", "good",
                                                      "--golden-json", str(era / "golden.json")),
     "either golden_json or label_column", None),
    ("no_data", lambda era, tmp: ["preprocess", "--pd", "ZeroBias"], "preprocess needs data", None),
    ("train_run_not_in_data", lambda era, tmp: _pre(era, "--split-mode", "runs", "--train-runs",
                                                    "1", "--test-runs", f"{R + 4}-{R + 5}"),
     "train_runs: run 1 is not in the data", None),
    ("runs_without_lists", lambda era, tmp: _pre(era, "--split-mode", "runs"),
     "split_mode=runs needs train_runs and test_runs", None),
    ("simulate_into_non_empty_out", lambda era, tmp: ["simulate", "--pd", "ZeroBias", "--n-ls",
                                                      "100", "--out", str(era)],
     "output folder exists and is not empty", "era"),
    ("simulate_unknown_pd", lambda era, tmp: ["simulate", "--pd", "Foo", "--out", str(tmp / "o")],
     "parameter pd: must be one of", None),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return write_small_era(tmp_path_factory.mktemp("template") / "era")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tracking store for all cases (creating one costs seconds): it must stay empty."""
    import mlflow
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_tracking_uri(uri)
        yield uri
        mlflow.set_tracking_uri(None)


@pytest.fixture
def tracking(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a case writes lands in the repository
    return store


def test_the_template_era_is_valid(tmp_path_factory, template, capsys):
    # its own store: this run is meant to exist
    import mlflow
    uri = f"sqlite:///{tmp_path_factory.mktemp('valid') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        mlflow.set_tracking_uri(uri)
        try:
            assert cli_main(_pre(template)) == 0, capsys.readouterr().err
        finally:
            mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_no_output_no_run(tracking, template, tmp_path, capsys,
                                                        case):
    _, build, fragment, names = case
    era = tmp_path / "era"
    shutil.copytree(template, era)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                    if "mlflow.db" not in p.name)
    argv = build(era, scratch)
    capsys.readouterr()
    code = cli_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert fragment in err[0], err[0]
    if names is not None:
        assert names in err[0], err[0]
    # no output: nothing new beside what the case itself wrote, no hidden staging folders
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if "mlflow.db" not in p.name and p.relative_to(tmp_path) not in before)
    written = {p for p in after if p.parts[0] in ("era", "scratch")}
    assert set(after) == written, after
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")]
    client = MlflowClient()
    exps = [e.experiment_id for e in client.search_experiments()]
    assert not client.search_runs(exps), "an MLflow run was left behind"


def test_the_table_has_the_cases_the_issue_lists():
    ids = {c[0] for c in CASES}
    assert {"golden_run_twice", "golden_not_utf8", "golden_overlap", "golden_fractional_ls",
            "failures_first_after_last", "failures_fractional_ls", "failures_run_minus_one",
            "features_nan_lumi", "features_negative_events", "features_fractional_run",
            "features_duplicate_ls", "legacy_lumisections_truncated", "histograms_truncated",
            "histograms_duplicate_ls", "legacy_lumisections_duplicate", "meta_malformed",
            "histograms_missing_me", "histograms_extra_me", "histograms_empty", "unknown_pd",
            "conditions_partial"} <= ids
    assert len(CASES) >= 40

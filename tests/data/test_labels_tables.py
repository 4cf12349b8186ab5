import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import get_feature_set
from dc_mlops.data.labels import LabelSources, assign_labels, read_bad_list
from dc_mlops.data.tables import feature_matrix, read_table, validate_features
from dc_mlops.errors import DataError


def test_labels_keep_origin_and_subsystem():
    runs = np.array([1, 1, 1, 1, 2, 2])
    ls = np.array([1, 2, 3, 4, 1, 2])
    golden = CertJSON.from_dict({"1": [[1, 1]], "2": [[2, 2]]})
    failures = pd.DataFrame({"run": [1], "first_ls": [2], "last_ls": [2],
                             "subsystem": ["MUON"], "scenario": ["muon_chamber_off"]})
    dcs = pd.DataFrame({"run": [2], "first_ls": [1], "last_ls": [-1], "subsystem": ["PIXEL"],
                        "scenario": [""]})
    out = assign_labels(runs, ls, LabelSources(golden, dcsonly=CertJSON.from_dict(
        {"1": [[1, 3]], "2": [[1, 2]]}), dcs_bad=dcs, failures=failures))
    assert out["label"].tolist() == [0, 1, 1, 1, 1, 0]
    assert out["origin"].tolist() == ["good", "failure", "human", "dcs", "dcs", "good"]
    assert out["subsystem"].tolist() == ["", "MUON", "", "", "PIXEL", ""]
    assert out["scenario"].tolist()[:2] == ["", "muon_chamber_off"]


def test_bad_list_errors_name_the_row(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("run,first_ls,last_ls,subsystem\n1,2,3,ECAL\nx,1,2,HCAL\n")
    with pytest.raises(DataError, match=r"bad.csv: row 3: column 'run'"):
        read_bad_list(p)
    p.write_text("run,first_ls,subsystem\n1,2,ECAL\n")
    with pytest.raises(DataError, match="missing column 'last_ls'"):
        read_bad_list(p)


def _table(n=5):
    fs = get_feature_set("ZeroBias")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(n, len(fs.feature_names()))), columns=fs.feature_names())
    df.insert(0, "runId", 1)
    df.insert(1, "lumiId", np.arange(1, n + 1))
    df["lumi"] = 1.0
    df["EventsPerLs"] = 1000
    return fs, df


def test_feature_table_accepts_trailing_underscore_spelling():
    fs, df = _table()
    df = df.rename(columns={"qpVtxX_3": "qpVtxX__3"})
    out = validate_features(df, fs, "t.csv")
    assert "qpVtxX_3" in out.columns


@pytest.mark.parametrize("mutate, words", [
    (lambda df: df.drop(columns=["qgTkPt_2"]), "missing feature column 'qgTkPt_2'"),
    (lambda df: df.assign(qFoo_0=1.0), "column 'qFoo_0' is not a feature of PD ZeroBias"),
    (lambda df: df.assign(qgTkN_1=np.where(df.index == 3, np.nan, 1.0)),
     "row 3 (run 1, LS 4): column 'qgTkN_1' is NaN or inf"),
    (lambda df: df.assign(qgTkN_1=np.where(df.index == 2, np.inf, 1.0)), "NaN or inf"),
    (lambda df: df.assign(lumiId=[1, 2, 2, 4, 5]), "duplicated (run, LS) = (1, 2)"),
])
def test_feature_table_errors(mutate, words):
    fs, df = _table()
    with pytest.raises(DataError) as err:
        validate_features(mutate(df), fs, "t.csv")
    assert "t.csv" in str(err.value) and words in str(err.value)


def test_feature_matrix_refuses_other_features():
    fs, df = _table()
    with pytest.raises(DataError, match="lacks feature 'qPFJetN_0'"):
        feature_matrix(df, get_feature_set("JetHT").feature_names())


def test_empty_and_unknown_tables(tmp_path):
    (tmp_path / "e.csv").write_text("runId,lumiId\n")
    with pytest.raises(DataError, match="empty input"):
        read_table(tmp_path / "e.csv")
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(DataError, match="unknown table format"):
        read_table(tmp_path / "t.xlsx")

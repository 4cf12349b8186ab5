"""certify a new era with the Production certifier: outputs, atomicity, refusals."""
import json

import pandas as pd
import pytest

from dc_mlops.data.certjson import read_certjson
from dc_mlops.errors import DataError
from dc_mlops.settings import (CertifySettings, EvaluateSettings, PreprocessSettings,
                               PromoteSettings)
from dc_mlops.steps import certify as certify_step
from dc_mlops.steps.certify import run_certify
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from tests.steps.test_preprocess import make_era


@pytest.fixture
def production(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=12, n_ls=40)
    pre = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id
    run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0", preprocess_run=pre,
                                  max_good_as_bad=0.05))
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    return make_era(tmp_path / "new_era", n_runs=5, n_ls=40, seed=7)


def test_certify_writes_consistent_outputs(production, tmp_path):
    res = run_certify(CertifySettings(pd="ZeroBias", data=str(production), out=str(tmp_path / "cert")))
    out = tmp_path / "cert"
    assert {p.name for p in out.iterdir()} == {"certified_golden.json", "bad_ls.csv", "grey_zone.csv",
                                              "low_statistics.csv", "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    c = summary["counts"]
    assert c["ls_total"] == 200 and c["ls_low_statistics"] == 5
    assert c["ls_good"] + c["ls_bad"] + c["ls_grey"] == 195
    certified = read_certjson(out / "certified_golden.json")
    assert certified.n_ls == c["ls_good"]
    bad = pd.read_csv(out / "bad_ls.csv")
    grey = pd.read_csv(out / "grey_zone.csv")
    t = summary["thresholds"]
    assert (bad["score"] > t["t_bad"]).all() and len(bad) == c["ls_bad"]
    assert grey["score"].between(t["t_good"], t["t_bad"]).all() and len(grey) == c["ls_grey"]
    assert not certified.contains(bad["run"], bad["ls"]).any()
    if len(grey):
        assert grey["top_histograms"].str.contains(r"q\w+ \(\d+%\)").all()
    assert summary["automation_rate"] == pytest.approx((c["ls_good"] + c["ls_bad"]) / 195)
    assert "agreement_with_golden" in summary and "in_domain" in summary["domain"]
    # the era's failures (last 4 LS of each run, a 1.5-sigma shift of every histogram) are caught
    assert summary["agreement_with_golden"]["era_bad_as_good_rate"] <= 0.05
    assert res.run_id


def test_certify_refuses_existing_output_and_other_pd(production, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataError, match="exists and is not empty"):
        run_certify(CertifySettings(pd="ZeroBias", data=str(production), out=str(tmp_path / "full")))
    with pytest.raises(DataError, match="dc-certifier-JetHT"):
        run_certify(CertifySettings(pd="JetHT", data=str(production), out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_certify_failing_midway_leaves_no_output(production, tmp_path, monkeypatch):
    real_write = certify_step._write

    def write_then_die(folder, *args):
        real_write(folder, *args)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(certify_step, "_write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_certify(CertifySettings(pd="ZeroBias", data=str(production), out=str(tmp_path / "cert")))
    assert not (tmp_path / "cert").exists()
    assert not list(tmp_path.glob(".cert.partial-*"))

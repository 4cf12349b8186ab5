"""certify a new era with the Production certifier: outputs, domain, DCS, atomicity."""
import json
import stat

import mlflow
import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.errors import DataError
from dc_mlops.settings import CertifySettings
from dc_mlops.steps import certify as certify_step
from dc_mlops.steps.certify import run_certify

FILES = {"certified_golden.json", "bad_ls.csv", "grey_zone.csv", "low_statistics.csv",
         "summary.json", "flags.parquet"}


def test_certify_writes_consistent_outputs(production, tmp_path):
    res = run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                      out=str(tmp_path / "cert")))
    out = tmp_path / "cert"
    assert FILES <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    c = summary["counts"]
    assert c["ls_total"] == 200 and c["ls_low_statistics"] == 5
    assert c["ls_good"] + c["ls_bad"] + c["ls_grey"] == 195
    golden_text = (out / "certified_golden.json").read_text()
    certified = read_certjson(out / "certified_golden.json")
    assert certified.n_ls == c["ls_good"] and golden_text.count("\n") == certified.n_runs + 2
    assert stat.S_IMODE((out / "certified_golden.json").stat().st_mode) == 0o644
    bad = pd.read_csv(out / "bad_ls.csv")
    assert bad["n_ls"].sum() == c["ls_bad"] and (bad["last_ls"] >= bad["first_ls"]).all()
    for r in bad.itertuples():  # no BAD range is certified
        assert not certified.contains(np.full(r.n_ls, r.run), np.arange(r.first_ls,
                                                                         r.last_ls + 1)).any()
    grey = pd.read_csv(out / "grey_zone.csv", keep_default_na=False)
    assert len(grey) == c["ls_grey"] and grey["p_value"].is_monotonic_increasing
    assert "verdict" in grey.columns
    if len(grey):
        assert grey["top_histograms"].str.contains(r"q\w+ \(\d+%\)").all()
    flags = pd.read_parquet(out / "flags.parquet")
    assert set(flags["subsystem"]) == {"TRACKER", "PIXEL"} and len(flags) == 2 * 200
    assert summary["models"][0]["pd"] == "ZeroBias" and summary["models"][0]["version"] == "1"
    assert summary["automation"] == pytest.approx((c["ls_good"] + c["ls_bad"]) / 195)
    # the era's failures (last 4 LS of each run, a 1.5-sigma shift of every histogram)
    assert summary["in_domain"] and summary["bad_as_good_rate"] <= 0.05
    assert summary["contamination"] is None or summary["contamination"] <= 0.05
    assert res.run_id


def test_out_of_domain_decides_nothing_unless_forced(production, tmp_path, monkeypatch):
    real = certify_step.domain_report

    def foreign(*args, **kwargs):
        return real(*args, **kwargs) | {"in_domain": False, "reasons": ["test: foreign era"]}

    monkeypatch.setattr(certify_step, "domain_report", foreign)
    res = run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                      out=str(tmp_path / "cert")))
    # neither cut-off holds outside the domain: no GOOD and no BAD from the model (DCS-bad
    # and low-statistics LS are decided without it)
    counts = res.summary["counts"]
    assert counts["ls_good"] == 0 and counts["ls_bad"] == 0 and not res.summary["in_domain"]
    forced = run_certify(CertifySettings(pd="ZeroBias", data=str(production), force=True,
                                         out=str(tmp_path / "forced")))
    assert forced.summary["counts"]["ls_good"] > 0 and forced.summary["forced"]
    assert forced.summary["counts"]["ls_bad"] > 0


def test_ls_outside_the_dcs_json_are_never_good(production, tmp_path):
    dcs = CertJSON.from_lumisections(np.full(20, 315300), np.arange(1, 21))
    dcs.write(tmp_path / "dcs.json")
    res = run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                      dcs_json=str(tmp_path / "dcs.json"),
                                      out=str(tmp_path / "cert")))
    certified = read_certjson(tmp_path / "cert" / "certified_golden.json")
    r, l = certified.lumisections()
    assert dcs.contains(r, l).all()
    assert res.summary["counts"]["ls_dcs_bad"] == 200 - 20


def test_certify_refuses_existing_or_impossible_output_and_other_pd(production, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataError, match="output already exists"):
        run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                    out=str(tmp_path / "full")))
    with pytest.raises(DataError, match="is not a folder"):
        run_certify(CertifySettings(pd="ZeroBias", data=str(production), out="/dev/null/x"))
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
        run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                    out=str(tmp_path / "cert")))
    assert not (tmp_path / "cert").exists()
    assert not list(tmp_path.glob(".cert.partial-*"))


def test_certifier_fitted_with_time_in_fill_names_it_when_the_era_lacks_it(
        production, tmp_path, monkeypatch):
    real_load = certify_step._load_certifier

    def with_t_fill(s, pd_name):  # as if fitted on an era whose conditions carried t_fill
        cert = real_load(s, pd_name)
        cert.spec.update(conditions="pileup", condition_columns=["pileup", "lumi", "t_fill"])
        return cert

    monkeypatch.setattr(certify_step, "_load_certifier", with_t_fill)
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(DataError, match=r"ZeroBias certifier \(v1\) was fitted on the "
                                        r"conditions pileup, lumi, t_fill.*no 't_fill' "
                                        r"\(time in fill.*give conditions_table a t_fill"):
        run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                    out=str(tmp_path / "cert")))
    assert not (tmp_path / "cert").exists()
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before


@pytest.mark.integration
def test_two_certify_to_one_new_out_one_wins_the_other_starts_no_run(production, tmp_path,
                                                                      tracking):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    dc = str(Path(sys.executable).parent / "dc-mlops")
    cmd = [dc, "-q", "certify", "--pd", "ZeroBias", "--data", str(production), "--out",
           str(tmp_path / "same")]
    procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1].strip().splitlines()
    assert len(loser) == 1 and ("is writing this output" in loser[0]
                                or "output already exists" in loser[0]), loser
    exp = MlflowClient().get_experiment_by_name("dc-mlops-ZeroBias")
    runs = MlflowClient().search_runs([exp.experiment_id], "tags.`dc_mlops.step` = 'certify'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_pd_all_without_every_certifier_certifies_nothing_good(production, tmp_path):
    """The Golden JSON needs every subsystem judged: with only ZeroBias in Production,
    `pd=all` flags BAD and fills the grey list, but no LS is GOOD, and it says why."""
    one = run_certify(CertifySettings(pd="ZeroBias", data=str(production),
                                      out=str(tmp_path / "one")))
    assert one.summary["counts"]["ls_good"] > 0  # the per-PD certification has GOOD LS
    every = run_certify(CertifySettings(pd="all", data=str(production),
                                        out=str(tmp_path / "all")))
    c = every.summary["counts"]
    assert c["ls_good"] == 0 and c["ls_bad"] == one.summary["counts"]["ls_bad"]
    assert set(every.summary["not_judged"]) == {"JetHT", "EGamma", "SingleMuon"}
    assert "MUON" in every.summary["not_judged"]["SingleMuon"]
    assert read_certjson(tmp_path / "all" / "certified_golden.json").n_ls == 0


def test_the_certify_command_prints_the_outcome_and_where_to_review(production, tmp_path,
                                                                    capsys):
    from dc_mlops.cli import main
    out = tmp_path / "cert"
    assert main(["certify", "--pd", "ZeroBias", "--data", str(production), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    c = json.loads((out / "summary.json").read_text())["counts"]
    assert f"Outcome of cert ({production.name}, {c['ls_total']} LS)" in printed
    assert f"({c['ls_good']} certified GOOD, {c['ls_bad']} flagged BAD); {c['ls_grey']} LS " \
        "to review" in printed
    assert "decided by ZeroBias: " in printed and "against the era's Golden JSON" in printed
    assert f"dc-mlops review --verdicts {out / 'grey_zone.csv'}" in printed

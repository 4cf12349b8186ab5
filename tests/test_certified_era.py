"""The certification folder read back for the DC expert: on a real certification (the small
era of tests/conftest.py, certified by its promoted certifier)."""
from __future__ import annotations

import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dc_mlops import certified_era as ce  # noqa: E402
from dc_mlops.cli import main as cli  # noqa: E402
from dc_mlops.data.histograms import read_histograms  # noqa: E402
from dc_mlops.settings import CertifySettings  # noqa: E402
from dc_mlops.steps.certify import run_certify  # noqa: E402
from dc_mlops.steps.review import read_verdicts  # noqa: E402
from dc_mlops.tracking import registry as reg  # noqa: E402
from dc_mlops.tracking.models import (example_from_spec, load_detector_and_spec,  # noqa: E402
                                      log_detector_model)


@pytest.fixture(scope="module")
def certified_store(tmp_path_factory) -> dict:
    """A tracking store and a certification folder as `certify` writes them, built once for
    this module (the chain of tests/conftest.py: a small era, preprocess, a walk-forward
    evaluation, then certify a new era).

    The small era's detectors separate its failures perfectly (t_good == t_bad: no grey
    zone), so the pca candidate's certifier (pca explains its scores per histogram) gets
    its cut-offs moved as `review` moves them, as the Production version: GOOD below the
    median calibration score, BAD above the lowest known-bad score. The upper half of the
    good LS is then grey, the failures BAD."""
    from dc_mlops.settings import EvaluateSettings, PreprocessSettings
    from dc_mlops.steps.evaluate import run_evaluate
    from dc_mlops.steps.preprocess import run_preprocess
    from tests.conftest import SMALL_WALK
    from tests.steps.test_preprocess import make_era
    root = tmp_path_factory.mktemp("certified")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        pre = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(
            make_era(root / "era", n_runs=16, n_ls=40)))).run_id
        ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                           preprocess_run=pre, **SMALL_WALK))
        det, spec = load_detector_and_spec(ev.candidates["model_uri"].iat[0])
        t_good = float(np.median(spec["calibration_scores"]))
        t_bad = float(min(spec["known_bad_scores"]))
        assert t_good < t_bad
        spec["thresholds"] = {"t_good": t_good, "t_bad": t_bad}
        spec["cutoffs"] = spec["cutoffs"] | spec["thresholds"]
        example = example_from_spec(spec)
        name = reg.certifier_name("ZeroBias")
        with mlflow.start_run():
            model = log_detector_model(det, spec, example, name="certifier")
        reg.make_production(name, str(reg.register(model, name, {}, "with a grey zone").version))
        out = root / "outputs" / "certify-ZeroBias-new"
        run_certify(CertifySettings(pd="ZeroBias", data=str(
            make_era(root / "new_era", n_runs=5, n_ls=40, seed=7)), out=str(out)))
        mlflow.set_tracking_uri(None)
    return {"uri": uri, "folder": out}


@pytest.fixture
def cert(certified_store, tmp_path, monkeypatch):
    """A copy of the certification (tests write verdicts into it), under tmp_path/outputs."""
    monkeypatch.delenv(ce.CERT_DIR_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", certified_store["uri"])
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(certified_store["uri"])
    out = tmp_path / "outputs" / certified_store["folder"].name
    shutil.copytree(certified_store["folder"], out)
    yield ce.load(out)
    mlflow.set_tracking_uri(None)
    plt.close("all")


def test_the_newest_certification_is_found_from_below_or_named(cert, tmp_path, monkeypatch):
    newer = tmp_path / "outputs" / "certify-all-later"
    shutil.copytree(cert.folder, newer)
    os.utime(newer / "summary.json", (2e9, 2e9))
    (tmp_path / "outputs" / ".certify-x.partial-1").mkdir()  # staging: never chosen
    (tmp_path / "notebooks").mkdir()
    assert ce.find_certification(tmp_path / "notebooks") == newer  # a notebook one level down
    monkeypatch.setenv(ce.CERT_DIR_ENV, str(cert.folder))
    assert ce.find_certification(tmp_path / "notebooks") == cert.folder
    monkeypatch.setenv(ce.CERT_DIR_ENV, str(tmp_path / "notebooks"))
    with pytest.raises(ce.ReviewError, match="not a certification folder .no summary.json"):
        ce.find_certification()


def test_without_a_certification_one_line_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.delenv(ce.CERT_DIR_ENV, raising=False)
    with pytest.raises(ce.ReviewError) as err:
        ce.find_certification(tmp_path)
    text = str(err.value)
    assert "\n" not in text and ce.CERT_DIR_ENV in text and "dc-mlops main" in text
    assert err.value._render_traceback_() == [f"error: {text}"]  # a notebook shows just this


def test_the_outcome_comes_first_with_the_summarys_figures(cert):
    s, n = cert.summary, cert.summary["counts"]
    lines = ce.outcome_lines(cert)
    judged = n["ls_total"] - n["ls_low_statistics"] - n["ls_dcs_bad"]
    assert lines[0].startswith(f"Outcome of {cert.folder.name}")
    assert f"automation {s['automation']:.1%}: {n['ls_good'] + n['ls_bad']} of {judged} " \
        f"judged LS" in lines[0]
    assert f"({n['ls_good']} certified GOOD, {n['ls_bad']} flagged BAD); {n['ls_grey']} LS to " \
           "review" in lines[0]
    golden = next(line for line in lines if "Golden JSON" in line)  # the era has one
    assert f"good->BAD {s['good_as_bad_rate']:.2%} (target 1.00%)" in golden
    assert s["models"][0]["name"] == "pca"
    assert f"bad->GOOD {s['bad_as_good_rate']:.2%}" in golden
    assert any("decided by ZeroBias: " in line and "of dc-certifier-ZeroBias" in line
               for line in lines)
    assert "the era is in the domain of the certifier of ZeroBias" in "\n".join(lines)
    assert f"of the {n['ls_good']} LS certified GOOD are bad (contamination)" in golden


def test_the_outcome_raises_the_alarms(cert):
    s = cert.summary
    s.pop("good_as_bad_rate"), s.pop("bad_as_good_rate"), s.pop("contamination")
    s["domain"]["ZeroBias"] |= {"in_domain": False, "reasons": ["pile-up 60-70 never seen"]}
    s["counts"]["ls_good"] = 0
    s["models"][0]["cutoffs"] |= {"t_good_supported": False, "n_known_bad": 12,
                                  "bad_needed": 299}
    text = "\n".join(ce.outcome_lines(cert))
    assert "no Golden JSON for this era yet" in text
    assert "!! ZeroBias: the era is OUTSIDE the certifier's domain (pile-up 60-70 never seen)" \
        in text
    assert "!! ZeroBias: t_good rests on 12 known bad LS; 299 are needed" in text
    assert "!! no LS was certified GOOD" in text


def test_review_reasons_account_for_every_grey_ls_per_subsystem(cert):
    table = ce.review_reasons(cert)
    assert not cert.grey.empty
    assert set(table["subsystem"]) == {"PIXEL", "TRACKER"} and set(table["PD"]) == {"ZeroBias"}
    assert (table["LS to review"] == len(cert.grey)).all()  # one PD: undecided for both
    assert (table[ce.BETWEEN] + table[ce.OUT_OF_DOMAIN] + table[ce.ALONE]
            == table["LS to review"]).all()
    # a certifier that saw the era as foreign holds back the LS it would certify GOOD
    t = cert.summary["models"][0]["thresholds"]
    t_good, t_bad = t["t_good"], t["t_bad"]
    t["t_good"] = float(cert.flags["score"].max()) + 1
    held = ce.review_reasons(cert)
    assert (held[ce.OUT_OF_DOMAIN] == len(cert.grey)).all()
    # inside its domain, an LS above t_bad left GREY was ordinary on its own
    t["t_good"], t["t_bad"] = -np.inf, float(cert.flags["score"].min()) - 1
    domain = cert.summary["domain"]["ZeroBias"]
    was_inside, domain["in_domain"] = domain["in_domain"], True
    alone = ce.review_reasons(cert)
    assert (alone[ce.ALONE] == len(cert.grey)).all()
    t["t_good"], t["t_bad"], domain["in_domain"] = t_good, t_bad, was_inside
    top = cert.grey["top_histograms"].str.split(" \\(").str[0]
    assert table["leading histograms (LS)"].iat[0].startswith(
        f"{top.value_counts().index[0]} ({top.value_counts().iat[0]})")


def test_the_grey_list_pages_most_anomalous_first(cert):
    first = ce.grey_page(cert, 1, size=3)
    assert list(first["rank"]) == [1, 2, 3][:len(first)]
    assert list(first["run"]) == list(cert.grey["run"][:3])
    assert first["p_value"].is_monotonic_increasing
    flags = cert.flags_of("ZeroBias").set_index(["run", "ls"])["score"]
    assert np.allclose(first["score ZeroBias"], [flags[(r, l)] for r, l in
                                                 zip(first["run"], first["ls"])])
    assert (first["why"] == "ZeroBias: between the cut-offs").all()
    last = ce.n_pages(cert, 3)
    assert len(ce.grey_page(cert, last, size=3)) == len(cert.grey) - 3 * (last - 1)
    with pytest.raises(ce.ReviewError, match=f"pages 1 to {last}"):
        ce.grey_page(cert, last + 1, size=3)


def test_histograms_of_a_few_runs_read_as_the_data_layer_reads_them(cert):
    run = int(cert.grey["run"].iat[0])
    path = ce._histograms_file(cert.data, "ZeroBias")
    mine = ce._read_runs(path, [run])
    full = read_histograms(path)
    keep = full.runs == run
    assert set(mine.runs) == {run} and np.array_equal(mine.ls, full.ls[keep])
    for name in full.names:
        assert np.array_equal(mine.counts[name], full.counts[name][keep]), name
        assert np.allclose(mine.edges[name], full.edges[name])


def test_a_bad_ls_departs_from_its_reference_and_a_good_one_does_not(cert):
    f = cert.flags_of("ZeroBias")
    bad = f[(f["decision"] == "BAD")].iloc[0]
    good = f[(f["decision"] == "GOOD")].iloc[0]
    shifted = ce.compare(cert, "ZeroBias", int(bad["run"]), int(bad["ls"]))
    calm = ce.compare(cert, "ZeroBias", int(good["run"]), int(good["ls"]))
    assert "certified GOOD" in shifted.reference.text
    assert (int(bad["run"]), int(bad["ls"])) not in shifted.reference.keys
    # every histogram of the era's failures is shifted by 1.5 sigma; good LS are alike
    assert min(shifted.departures.values()) > 2 * max(calm.departures.values())
    assert np.median(list(calm.departures.values())) < 2
    for shape in shifted.ls_shapes.values():
        assert shape.sum() == pytest.approx(1.0)


def test_the_ls_figure_draws_the_top_histograms_against_the_reference(cert):
    row = cert.grey.iloc[0]
    panels, refs = ce.ls_panels(cert, int(row["run"]), int(row["ls"]))
    top = [h.split(" (")[0] for h in row["top_histograms"].split(", ")]
    assert [p.title for p in panels] == [f"ZeroBias: {h}" for h in top]
    assert all("of the score" in p.note and "reference LS's departure" in p.note for p in panels)
    assert all(p.ref_low is not None and (p.ref_low <= p.ref_high).all() for p in panels)
    assert refs[0].startswith("ZeroBias (GREY, decision value")
    fig = ce.ls_figure(cert, int(row["run"]), int(row["ls"]))
    assert f"run {row['run']} LS {row['ls']}" in fig._suptitle.get_text()
    fig = ce.run_figure(cert, int(row["run"]))
    assert "t_bad" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_without_the_detectors_explanation_the_furthest_histograms_are_drawn(cert):
    bad = cert.flags[cert.flags["decision"] == "BAD"].iloc[0]
    cert.flags["top_histograms"] = ""
    panels, _ = ce.ls_panels(cert, int(bad["run"]), int(bad["ls"]))
    cmp = ce.compare(cert, "ZeroBias", int(bad["run"]), int(bad["ls"]))
    furthest = sorted(cmp.departures, key=lambda n: -cmp.departures[n])[:ce.TOP_HISTOGRAMS]
    assert [p.title for p in panels] == [f"ZeroBias: {n}" for n in furthest]
    assert all(p.note.startswith("not explained by the detector") for p in panels)


def test_a_thin_era_falls_back_to_the_runs_least_anomalous_ls(cert):
    f = cert.flags
    f.loc[f["decision"] == "GOOD", "decision"] = "GREY"  # nothing certified GOOD
    row = cert.grey.iloc[0]
    ref = ce.reference_of(cert, "ZeroBias", int(row["run"]), int(row["ls"]))
    assert "least anomalous LS of run" in ref.text and "only 0 LS" in ref.text
    scores = cert.flags_of("ZeroBias").set_index(["run", "ls"])["score"]
    chosen = [scores[k] for k in ref.keys]
    assert ref.keys and max(chosen) <= np.nanmedian(  # low-statistics LS have no score
        scores[scores.index.get_level_values(0) == row["run"]])


def test_verdicts_are_saved_where_review_reads_them_and_review_takes_them(cert):
    first, second = cert.grey.iloc[0], cert.grey.iloc[1]
    bad_ls = cert.flags[cert.flags["decision"] == "BAD"].iloc[0]
    ce.set_verdict(cert, first["run"], first["ls"], "good")
    ce.set_verdict(cert, second["run"], second["ls"], "BAD", subsystems="pixel")
    path = ce.set_verdict(cert, bad_ls["run"], bad_ls["ls"], "BAD")  # a checked BAD LS
    assert path == cert.folder / "grey_zone.csv"
    assert not list(cert.folder.glob(".grey_zone.csv.tmp"))
    back = read_verdicts(path)
    got = {(r, l): (v, s) for r, l, v, s in back.itertuples(index=False)}
    assert got == {(first["run"], first["ls"]): ("GOOD", first["subsystems"]),
                   (second["run"], second["ls"]): ("BAD", "PIXEL"),
                   (bad_ls["run"], bad_ls["ls"]): ("BAD", "PIXEL;TRACKER")}
    assert "3 of" in ce.review_progress(cert) and "dc-mlops review --verdicts" in \
        ce.review_progress(cert)
    ce.set_verdict(cert, first["run"], first["ls"], "")  # undo
    assert len(read_verdicts(path)) == 2
    assert cli(["review", "--verdicts", str(path)]) == 0


@pytest.mark.parametrize("args, message", [
    ((1, 1, "GOOD"), "run 1 LS 1 is not in"),
    ((None, None, "maybe"), "verdict 'maybe': use 'GOOD', 'BAD'"),
    ((None, None, "BAD", "ECAL"), "subsystem.s. ECAL were not judged here"),
    ((None, None, "GOOD", "PIXEL"), "only with a BAD verdict"),
])
def test_a_wrong_verdict_is_one_line_and_changes_nothing(cert, args, message):
    before = (cert.folder / "grey_zone.csv").read_bytes()
    run, ls = (args[0], args[1]) if args[0] else (cert.grey["run"].iat[0], cert.grey["ls"].iat[0])
    with pytest.raises(ce.ReviewError, match=message):
        ce.set_verdict(cert, run, ls, *args[2:])
    assert (cert.folder / "grey_zone.csv").read_bytes() == before


def test_a_folder_that_is_not_a_certification_is_one_line(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({}))
    with pytest.raises(ce.ReviewError, match="no grey_zone.csv, flags.parquet"):
        ce.load(tmp_path)
    pd.DataFrame({"run": [1]}).to_csv(tmp_path / "grey_zone.csv", index=False)
    pd.DataFrame({"run": [1]}).to_parquet(tmp_path / "flags.parquet")
    with pytest.raises(ce.ReviewError, match="grey_zone.csv: missing column 'ls'"):
        ce.load(tmp_path)


def test_the_outcome_names_the_failures_that_hold_the_combined_cutoff(cert):
    cert.summary["joint_cutoff"] = {
        "p_good": 0.3, "bound": 0.009, "n_failures": 1607, "n_blocks": 57, "confidence": 0.95,
        "supported": True, "bad_needed": 299, "max_bad_as_good": 0.01,
        "hardest": [{"run": 320710, "first_ls": 758, "last_ls": 760, "n_ls": 3, "max_p": 0.54,
                     "pd": "EGamma", "n_ls_above": 3}]}
    text = "\n".join(ce.outcome_lines(cert))
    assert "GOOD where every PD's p-value exceeds 0.3, resting on 1\u2009607 known failure LS in " \
        "57 blocks" in text
    assert "held there by the known failures the detectors see least: run 320710 LS 758-760 " \
        "(3 of 3 LS pass, p up to 0.54 in EGamma)" in text
    # nothing certified GOOD: no cut-off is held anywhere, the alarm says why
    cert.summary["joint_cutoff"] |= {"supported": False, "p_good": 1.0}
    text = "\n".join(ce.outcome_lines(cert))
    assert "held there" not in text and "cannot support the bad->GOOD target" in text

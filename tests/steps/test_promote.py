"""promote: targets first, champion/challenger on the same LS, no-op repeats, races."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError
from dc_mlops.settings import EvaluateSettings, PreprocessSettings, PromoteSettings
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from dc_mlops.tracking.registry import production_version
from tests.conftest import SMALL_WALK

NAME = "dc-certifier-ZeroBias"


def _stages():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {str(mv.version): mv.current_stage
                for mv in MlflowClient().search_model_versions(f"name = '{NAME}'")}


def test_first_promote_registers_the_best_candidate_and_a_repeat_is_a_no_op(evaluated):
    _, ev = evaluated
    first = run_promote(PromoteSettings(pd="ZeroBias"))
    assert first.promoted and first.version == "1" and first.production == "1"
    assert _stages() == {"1": "Production"}
    mv = production_version(NAME)
    best = ev.comparison.iloc[0]["model"]
    assert mv.tags["dc_mlops.model"] == best
    assert mv.tags["dc_mlops.candidate_run"] in set(ev.candidates["candidate_run_id"])
    assert float(mv.tags["dc_mlops.test_correct_automation_rate"]) > 0.8
    # the version's source is the candidate run that trained it
    assert mv.run_id == mv.tags["dc_mlops.candidate_run"]
    spec = mlflow.pyfunc.load_model(f"models:/{NAME}@production").unwrap_python_model().spec
    assert {"thresholds", "cutoffs", "calibration_scores", "feature_min", "feature_max"} <= set(spec)
    again = run_promote(PromoteSettings(pd="ZeroBias"))
    assert not again.promoted and "already is production version 1" in again.reason
    assert _stages() == {"1": "Production"}


def test_an_equal_challenger_on_the_same_ls_does_not_replace_the_champion(evaluated):
    pre, ev = evaluated
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    best = ev.comparison.iloc[0]["model"]
    other = run_evaluate(EvaluateSettings(pd="ZeroBias", models=best, seeds="3",
                                          preprocess_run=pre, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=other.run_id))
    assert "same certified LS" in res.reason
    if best in ("pca", "mahalanobis"):  # deterministic: the same figures, never better
        assert not res.promoted and "does not beat" in res.reason
    assert list(_stages().values()).count("Production") == 1


def test_nothing_is_promoted_when_no_detector_meets_the_targets(preprocessed, monkeypatch):
    import numpy as np

    from dc_mlops.detectors import registry
    from dc_mlops.detectors.baselines import PCADetector

    class Coin(PCADetector):  # ranks failures at chance: must never certify
        def _score_batch(self, X):
            return np.random.default_rng(len(X)).random(len(X))

    monkeypatch.setattr(registry, "build", lambda name, **p: Coin(**p))
    ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                       preprocess_run=preprocessed, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id))
    assert not res.promoted and "no detector meets the targets" in res.reason
    assert production_version(NAME) is None


def test_a_bins_challenger_compares_with_a_summary_champion(evaluated, tmp_path):
    """Another representation cannot score the champion's data: no crash, a stated reason."""
    from tests.steps.test_preprocess import make_era
    pre, _ = evaluated
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    era = make_era(tmp_path / "era_bins", n_runs=16, n_ls=40, seed=3)
    pre_bins = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era),
                                                 representation="bins")).run_id
    ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                       preprocess_run=pre_bins, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id))
    assert "champion v1" in res.reason
    assert list(_stages().values()).count("Production") == 1


def test_unknown_evaluation_run_is_the_users_error(evaluated):
    with pytest.raises(DataError, match="nope"):
        run_promote(PromoteSettings(pd="ZeroBias", evaluation_run="nope"))


@pytest.mark.integration
def test_concurrent_promotes_leave_the_better_one_in_production(evaluated, tracking):
    pre, ev = evaluated
    worse = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca,iforest", seeds="0",
                                          preprocess_run=pre, max_good_as_bad=0.02,
                                          **SMALL_WALK))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    dc = str(Path(sys.executable).parent / "dc-mlops")
    procs = [subprocess.Popen([dc, "-q", "promote", "--pd", "ZeroBias", "--evaluation-run",
                               run], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for run in (ev.run_id, worse.run_id)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    stages = _stages()
    assert list(stages.values()).count("Production") == 1, stages
    assert stages[str(production_version(NAME).version)] == "Production"
    assert len(stages) <= 2


# ---- pd=all: the combination that is best for the Golden JSON

@pytest.fixture
def evaluated_all(tracking, tmp_path):
    """The four PDs on the same 16 runs, each failing in its own subsystem on 4 LS per run
    (tests/data/eras.py), each evaluated with pca and mahalanobis."""
    from tests.data.eras import write_small_era
    from dc_mlops.settings import PDS
    era = write_small_era(tmp_path / "era_all", n_runs=16, n_ls=40, low_stats_ls=5, pds=PDS)
    runs = {}
    for p in PDS:
        pre = run_preprocess(PreprocessSettings(pd=p, data=str(era))).run_id
        runs[p] = run_evaluate(EvaluateSettings(pd=p, models="pca,mahalanobis", seeds="0",
                                                preprocess_run=pre, **SMALL_WALK)).run_id
    return runs


def test_pd_all_promotes_the_best_combination_for_the_golden_json(evaluated_all, monkeypatch):
    import pandas as pd

    from dc_mlops.evaluation.greyzone import decision_metrics
    from dc_mlops.evaluation.combined import combined_walk
    from dc_mlops.settings import PDS
    from dc_mlops.tracking import runs as tr

    res = run_promote(PromoteSettings(pd="all"))
    assert res.promoted and set(res.per_pd) == set(PDS), res.reason
    assert set(res.combination) == set(PDS)
    ranking = tr.read_csv_artifact(res.run_id, "combinations.csv")
    assert len(ranking) == 2 ** 4  # every combination of the candidates that met their targets
    top = ranking.iloc[0]
    assert top["meets_targets"] and top["walk_correct_automation_rate"] == \
        ranking.loc[ranking["meets_targets"], "walk_correct_automation_rate"].max()
    # what is in Production is the chosen combination, and its figures are the combined
    # walk's, recomputed here from the candidates' own walks
    walks, known = {}, {}
    for p in PDS:
        mv = MlflowClient().get_model_version_by_alias(f"dc-certifier-{p}", "production")
        assert mv.tags["dc_mlops.model"] == res.combination[p] == top[p]
        assert res.per_pd[p].production_run == mv.tags["dc_mlops.candidate_run"]
        walks[p] = tr.read_parquet_artifact(mv.tags["dc_mlops.candidate_run"],
                                            "decisions.parquet")
        known[p] = tr.read_parquet_artifact(mv.tags["dc_mlops.candidate_run"],
                                            tr.KNOWN_FAILURES)
    # p_good of each step rests on every failure known before it, as certify's
    d = combined_walk(walks, 0.15, EvaluateSettings().max_good_as_bad, failures=known)
    m = decision_metrics(d["decision"], d["label"], d["failure"], "walk")
    assert m["walk_correct_automation_rate"] == pytest.approx(res.figures[
        "walk_correct_automation_rate"])
    assert m["walk_bad_as_good_rate"] <= 0.15 and m["walk_good_as_bad_rate"] <= 0.01
    assert m["walk_good_certified_rate"] > 0.3, m  # the combination certifies GOOD for real
    assert pd.Series(d["failure"]).sum() > 50
    # a repeat keeps the champions: the same combination is already Production
    again = run_promote(PromoteSettings(pd="all"))
    assert not again.promoted and "already is Production" in again.reason
    for p in PDS:
        assert again.per_pd[p].production == res.per_pd[p].production == "1"

    # a PD without a target-meeting candidate: no combination can certify the Golden JSON,
    # so each PD is promoted by its own rule and the reason names the PD
    from dataclasses import replace

    from dc_mlops.steps import promote as step
    real = step._evaluation

    def egamma_misses(pd_name, run, metric):
        e = real(pd_name, run, metric)
        return replace(e, ranking=e.ranking.assign(meets_targets=False, why_not="made to miss")
                       ) if pd_name == "EGamma" else e

    monkeypatch.setattr(step, "_evaluation", egamma_misses)
    each = run_promote(PromoteSettings(pd="all"))
    assert "EGamma has no candidate meeting its targets" in each.reason, each.reason
    assert not each.combination and set(each.per_pd) == set(PDS)
    assert all(r.production == "1" for r in each.per_pd.values())  # nothing worse replaced them


def test_pd_all_needs_an_evaluation_of_every_pd(evaluated):
    pre, ev = evaluated
    with pytest.raises(DataError, match="no finished evaluate run for JetHT, EGamma, SingleMuon"):
        run_promote(PromoteSettings(pd="all"))
    with pytest.raises(DataError, match="has no evaluation of JetHT, EGamma, SingleMuon"):
        run_promote(PromoteSettings(pd="all", evaluation_run=ev.run_id))
    with pytest.raises(DataError, match="no combined figure for pd=all"):
        run_promote(PromoteSettings(pd="all", metric="test_roc_auc"))

"""evaluate: the walk-forward protocol, candidate runs with the SPEC §4.2 metrics, reuse."""
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError
from dc_mlops.settings import EvaluateSettings
from dc_mlops.steps.evaluate import run_evaluate
from tests.conftest import SMALL_WALK

METRICS = {"test_roc_auc", "test_automation_rate", "test_correct_automation_rate",
           "test_good_as_bad_rate", "test_bad_as_good_rate", "test_contamination"}


def _artifact(run_id, path):
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)


def test_rolling_certifies_each_later_ls_once_and_logs_every_candidate(evaluated):
    pre, res = evaluated
    c = res.candidates
    assert sorted(c["model"]) == ["mahalanobis", "pca"]
    client = MlflowClient()
    for row in c.itertuples():
        run = client.get_run(row.candidate_run_id)
        assert run.data.tags["mlflow.parentRunId"] == res.run_id
        assert run.info.run_name == f"rolling {row.model} ZeroBias seed 0"
        assert METRICS <= set(run.data.metrics)
        d = pd.read_parquet(_artifact(row.candidate_run_id, "decisions.parquet"))
        # runs 315306..315315 (after the 6-run window) are certified, each LS exactly once
        assert sorted(d["runId"].unique()) == list(range(315306, 315316))
        assert not d.duplicated(["runId", "lumiId"]).any()
        steps = pd.read_csv(_artifact(row.candidate_run_id, "steps.csv"))
        assert len(steps) == 3 and (steps["n_calib_good"] > 0).all()
        assert {"n_known_bad", "bad_as_good_bound", "t_good_supported"} <= set(steps.columns)
        spec = mlflow.pyfunc.load_model(row.model_uri).unwrap_python_model().spec
        assert spec["train_runs"] and max(spec["calib_runs"]) == 315315  # the newest window
    # the failures of this toy era (a 1.5-sigma shift of every histogram) are easy: a working
    # detector certifies most LS and meets both targets; the comparison says so
    comp = res.comparison
    assert comp["meets_targets"].all()
    assert (comp["test_correct_automation_rate_mean"] > 0.8).all()
    assert (comp["test_roc_auc_mean"] > 0.95).all()
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"candidates.csv", "comparison.csv", "comparison.md", "roc_curves.png",
            "drift.csv"} <= arts


def test_a_second_call_reuses_the_evaluation(evaluated):
    pre, res = evaluated
    again = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca,mahalanobis", seeds="0",
                                          preprocess_run=pre, **SMALL_WALK))
    assert again.reused and again.run_id == res.run_id


def test_a_detector_that_cannot_see_failures_does_not_meet_the_targets(preprocessed,
                                                                       monkeypatch):
    """A constant or random scorer must not pass for a certifier (the tests can fail)."""
    from dc_mlops.detectors import registry
    from dc_mlops.detectors.baselines import PCADetector

    class Coin(PCADetector):
        def _score_batch(self, X):
            return np.random.default_rng(len(X)).random(len(X))

    monkeypatch.setattr(registry, "build", lambda name, **p: Coin(**p))
    res = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0,1",
                                        preprocess_run=preprocessed, **SMALL_WALK))
    row = res.comparison.iloc[0]
    assert not row["meets_targets"]
    assert row["test_roc_auc_mean"] < 0.7


def test_protocol_runs_certifies_the_preprocess_test_split(preprocessed):
    res = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                        preprocess_run=preprocessed, protocol="runs",
                                        conditions="none"))
    d = pd.read_parquet(_artifact(res.candidates.iloc[0]["candidate_run_id"],
                                  "decisions.parquet"))
    test = pd.read_parquet(_artifact(preprocessed, "splits/test.parquet"))
    assert len(d) == len(test) and set(d["runId"]) == set(test["runId"])


def test_impossible_plans_fail_before_any_run(preprocessed):
    with pytest.raises(DataError, match="needs more than window_runs=30 runs"):
        run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                      preprocess_run=preprocessed, conditions="none"))
    with pytest.raises(DataError, match="at least two eras"):
        run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0", protocol="era",
                                      preprocess_run=preprocessed, conditions="none",
                                      window_runs=6, calib_runs=2))
    exp = MlflowClient().get_experiment_by_name("dc-mlops-ZeroBias")
    assert not MlflowClient().search_runs([exp.experiment_id],
                                          "tags.`dc_mlops.step` = 'evaluate'")


def test_a_model_spec_is_a_candidate_of_its_own(preprocessed):
    """``mahalanobis:score_mode=histogram`` beside ``mahalanobis``: two candidates, each
    built, logged and kept as a certifier with its own parameters."""
    spec = "mahalanobis:score_mode=histogram"
    res = run_evaluate(EvaluateSettings(pd="ZeroBias", models=f"mahalanobis,{spec}",
                                        seeds="0", preprocess_run=preprocessed, **SMALL_WALK))
    assert sorted(res.candidates["model"]) == ["mahalanobis", spec]
    client = MlflowClient()
    for row in res.candidates.itertuples():
        run = client.get_run(row.candidate_run_id)
        mode = "histogram" if row.model == spec else "sum"
        assert run.data.params["model"] == row.model and run.data.params["score_mode"] == mode
        assert run.data.tags["dc_mlops.model"] == row.model
        model = mlflow.pyfunc.load_model(row.model_uri).unwrap_python_model()
        assert model.detector.score_mode == mode and model.spec["model"] == row.model

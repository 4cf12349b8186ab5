"""evaluate on a tiny era: reuse of train runs, grey-zone metrics, comparison artifacts."""
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.settings import EvaluateSettings, PreprocessSettings, TrainSettings
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.train import run_train
from tests.steps.test_preprocess import make_era


@pytest.fixture
def preprocessed(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=12, n_ls=40)
    return run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id


def test_evaluate_reuses_runs_and_logs_the_comparison(preprocessed):
    first = run_train(TrainSettings(model="pca", pd="ZeroBias", seed=0, preprocess_run=preprocessed))
    res = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca,iforest", seeds="0,1",
                                        preprocess_run=preprocessed, max_good_as_bad=0.05,
                                        max_bad_as_good=0.0))
    c = res.candidates
    assert len(c) == 4 and set(c["model"]) == {"pca", "iforest"}
    assert first.run_id in set(c["train_run_id"])  # the finished run was reused, not retrained
    exp = MlflowClient().get_experiment_by_name("dc-mlops-ZeroBias")
    assert len(MlflowClient().search_runs([exp.experiment_id], "tags.`dc_mlops.step` = 'train'")) == 4
    assert (c["t_good"] <= c["t_bad"]).all()
    for col in ("test_automation_rate", "test_bad_as_good_rate", "test_good_as_bad_rate"):
        assert c[col].between(0, 1).all()
    arts = {a.path for a in MlflowClient().list_artifacts(res.run_id)}
    assert {"comparison.csv", "comparison.md", "candidates.csv", "roc_curves.png", "drift.csv",
            "score_distributions", "runs_with_failures"} <= arts
    comp = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=res.run_id,
                                                           artifact_path="comparison.csv"))
    assert set(comp["model"]) == {"pca", "iforest"} and (comp["n_seeds"] == 2).all()
    metrics = MlflowClient().get_run(res.run_id).data.metrics
    assert "pca.test_automation_rate_mean" in metrics

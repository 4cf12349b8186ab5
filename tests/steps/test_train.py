"""The train step on a tiny era: one tracked run per detector, artifacts and a loadable model."""
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError
from dc_mlops.settings import PreprocessSettings, TrainSettings
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.train import run_train
from tests.steps.test_preprocess import make_era


@pytest.fixture
def preprocessed(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=10, n_ls=40)
    return run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id


@pytest.mark.parametrize("model", ["vanilla_ae", "pca"])
def test_train_logs_metrics_artifacts_and_model(preprocessed, model):
    res = run_train(TrainSettings(model=model, pd="ZeroBias", epochs=3, batch_size=64,
                                  learning_rate=1e-3, preprocess_run=preprocessed))
    client = MlflowClient()
    run = client.get_run(res.run_id)
    m = run.data.metrics
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == model and run.data.params["preprocess_run"] == preprocessed
    for key in ("test_roc_auc", "test_pr_auc", "test_roc_auc_tracker", "fit_seconds",
                "score_ls_per_second"):
        assert key in m, key
    assert m["test_roc_auc"] > 0.9  # the tiny era's failures shift every histogram
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"roc_curve.png", "roc_curve.csv", "score_distribution.png", "scores.parquet",
            "histogram_errors.png", "histogram_errors.csv"} <= arts
    if model == "vanilla_ae":
        hist = client.get_metric_history(res.run_id, "val_loss")
        assert [h.step for h in hist] == [0, 1, 2]
        assert len(client.get_metric_history(res.run_id, "train_loss")) == 3
    scores = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=res.run_id, artifact_path="scores.parquet"))
    assert {"runId", "lumiId", "label", "origin", "subsystem", "score"} <= set(scores.columns)
    # the pyfunc model scores the raw feature table exactly as the run's test scores
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=preprocessed, artifact_path="splits/test.parquet"))
    model_fn = mlflow.pyfunc.load_model(res.model_uri)
    out = model_fn.predict(test)
    np.testing.assert_allclose(out["score"].to_numpy(), scores["score"].to_numpy(), rtol=1e-6)
    assert model_fn.metadata.signature is not None
    # the conditions fit is on by default; this era's splits carry lumi (pile-up when the
    # data layer provides it), and the model reads that column from its input
    assert run.data.params["conditions"] in ("pileup", "lumi")
    assert run.data.params["conditions"] in model_fn.metadata.signature.inputs.input_names()
    cond = run.data.params["conditions"]
    with pytest.raises(Exception, match=f"missing inputs \\['{cond}'\\]"):
        model_fn.predict(test.drop(columns=[cond]))
    if model == "vanilla_ae":
        assert m["val_output_spread"] > 0


def test_conditions_none_trains_without_a_correction(preprocessed):
    res = run_train(TrainSettings(model="pca", pd="ZeroBias", conditions="none",
                                  preprocess_run=preprocessed))
    assert MlflowClient().get_run(res.run_id).data.params["conditions"] == "none"
    model_fn = mlflow.pyfunc.load_model(res.model_uri)
    assert model_fn.unwrap_python_model().detector.conditions_range_ is None


def test_constant_conditions_are_a_one_line_error_naming_the_run(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=10, n_ls=40)
    info = pd.read_parquet(era / "lumisections.parquet").assign(lumi=0.0, pileup=np.nan)
    info.to_parquet(era / "lumisections.parquet")
    pre = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id
    with pytest.raises(DataError, match=f"preprocess run {pre} .*conditions=none"):
        run_train(TrainSettings(model="pca", pd="ZeroBias", preprocess_run=pre))


def test_model_refuses_data_of_another_pd(preprocessed):
    res = run_train(TrainSettings(model="pca", pd="ZeroBias", preprocess_run=preprocessed))
    model_fn = mlflow.pyfunc.load_model(res.model_uri)
    other = pd.DataFrame(np.ones((3, 5)), columns=[f"qPFJetN_{i}" for i in range(5)])
    with pytest.raises(Exception, match="qpVtxChi2_0"):
        model_fn.predict(other)


def test_unknown_model_and_missing_preprocess_run(tracking):
    with pytest.raises(DataError, match="parameter model: unknown detector"):
        run_train(TrainSettings(model="resnet", pd="ZeroBias"))
    with pytest.raises(DataError, match="preprocess run 'abc' not found"):
        run_train(TrainSettings(model="pca", pd="ZeroBias", preprocess_run="abc"))

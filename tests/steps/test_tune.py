"""The tune step on a tiny era: nested trial runs, pruning, divergence, workers, resume."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.settings import PreprocessSettings, TuneSettings
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.tune import run_tune
from dc_mlops.tracking.studies import trial_runs
from dc_mlops.tracking.runs import ensure_experiment, experiment_name
from dc_mlops.tuning.study import TuneOptions
from tests.steps.test_preprocess import make_era

TINY = {"epochs": 3, "hidden": [16], "batch_size": 32}
#: everything but the learning rate pinned: enqueued trials differ only in it
ONLY_LR = {**TINY, "latent_dim": 8, "activation": "relu", "score_mode": "sum"}


@pytest.fixture
def preprocessed(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=10, n_ls=40)
    return run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id


def _study(name, tmp_path):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def _children(run_id):
    return {r.data.tags["dc_mlops.trial"]: r
            for r in trial_runs(ensure_experiment(experiment_name("ZeroBias")), run_id)}


def test_four_trial_study_end_to_end_then_resume(preprocessed, tmp_path):
    s = TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=4, seed=1,
                     preprocess_run=preprocessed)
    res = run_tune(s, TuneOptions(fixed=TINY, prune_startup_trials=10))
    client = MlflowClient()
    parent = client.get_run(res.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["storage"] == "sqlite:///optuna.db"
    assert parent.data.params["study_name"] == "dc-mlops-ZeroBias-vanilla_ae"
    assert parent.data.metrics["best_val_roc_auc"] == pytest.approx(res.best_value)
    assert parent.data.metrics["n_complete"] == 4
    assert parent.data.params["best_learning_rate"] == str(res.best_params["learning_rate"])
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"optimization_history.png", "param_importances.png", "trials.csv"} <= arts
    # one nested run per trial: name with number and state, params, curves, final metrics
    children = _children(res.run_id)
    assert sorted(children) == ["0", "1", "2", "3"]
    for number, run in children.items():
        assert run.info.run_name.startswith(f"trial-00{number} COMPLETE ")
        assert run.info.status == "FINISHED"
        assert {"learning_rate", "hidden", "activation"} <= set(run.data.params)
        assert {"val_roc_auc", "val_pr_auc", "best_val_recon"} <= set(run.data.metrics)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1, 2]
    # the best trial, retrained as an ordinary train run, loads as a pyfunc model
    train = client.get_run(res.train_run_id)
    assert train.data.tags["dc_mlops.step"] == "train"
    assert train.data.tags["dc_mlops.tune_run"] == res.run_id
    assert train.data.params["learning_rate"] == str(res.best_params["learning_rate"])
    assert "test_roc_auc" in train.data.metrics
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=preprocessed, artifact_path="splits/test.parquet"))
    out = mlflow.pyfunc.load_model(res.model_uri).predict(test)
    assert len(out) == len(test) and out["score"].notna().all()
    assert client.get_run(res.run_id).data.tags["dc_mlops.best_model_uri"] == res.model_uri
    # a rerun resumes the same study and runs n_trials more
    again = run_tune(TuneSettings(**{**s.__dict__, "n_trials": 2}),
                     TuneOptions(fixed=TINY, prune_startup_trials=10, retrain=False))
    assert again.trial_numbers == [4, 5]
    study = _study("dc-mlops-ZeroBias-vanilla_ae", tmp_path)
    assert len(study.trials) == 6 and study.best_value >= res.best_value


def test_pruning_stops_a_deliberately_bad_configuration(preprocessed, tmp_path):
    good, bad = {"learning_rate": 1e-2}, {"learning_rate": 1e-6}  # bad: barely moves
    res = run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=3,
                                preprocess_run=preprocessed),
                   TuneOptions(fixed=ONLY_LR, enqueue=(good, good, bad),
                               prune_startup_trials=2, prune_warmup_epochs=0, retrain=False))
    states = [t.state.name for t in _study("dc-mlops-ZeroBias-vanilla_ae", tmp_path).trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = _children(res.run_id)["2"]
    assert pruned.info.run_name == "trial-002 PRUNED" and pruned.info.status == "KILLED"
    assert "lags the median" in pruned.data.tags["dc_mlops.trial_reason"]
    assert res.counts["pruned"] == 1


def test_diverging_trial_fails_and_the_study_goes_on(preprocessed, tmp_path):
    # a variational AE with a huge learning rate reaches NaN in its first epoch
    res = run_tune(TuneSettings(model="variational_ae", pd="ZeroBias", n_trials=3,
                                preprocess_run=preprocessed),
                   TuneOptions(fixed=ONLY_LR, enqueue=({"learning_rate": 1e4},),
                               prune_startup_trials=10, retrain=False))
    trials = _study("dc-mlops-ZeroBias-variational_ae", tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    run = _children(res.run_id)["0"]
    assert run.info.run_name == "trial-000 FAIL" and run.info.status == "FAILED"
    assert "not finite" in run.data.tags["dc_mlops.trial_reason"]
    assert MlflowClient().get_run(res.run_id).info.status == "FINISHED"
    assert res.best_value is not None


@pytest.mark.integration
def test_two_worker_processes_share_one_study(preprocessed, tmp_path):
    res = run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=4, n_jobs=2,
                                preprocess_run=preprocessed),
                   TuneOptions(fixed=TINY, prune_startup_trials=10, retrain=False))
    trials = _study("dc-mlops-ZeroBias-vanilla_ae", tmp_path).trials
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert MlflowClient().get_run(res.run_id).data.params["workers"] == "2"
    assert len(_children(res.run_id)) == 4


KILLED_WORKER = textwrap.dedent("""
    import logging
    from dc_mlops.settings import TuneSettings
    from dc_mlops.steps.tune import run_tune
    from dc_mlops.tuning.study import TuneOptions
    if __name__ == "__main__":
        logging.basicConfig(level=logging.INFO)
        run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=20,
                              preprocess_run="{pre}"),
                 TuneOptions(fixed={{"hidden": [16], "batch_size": 32, "patience": 500}},
                             enqueue=({{"epochs": 20}}, {{"epochs": 200}}),  # short, then long
                             prune_startup_trials=100, heartbeat_interval=1, grace_period=2))
""")


@pytest.mark.integration
def test_resume_after_a_worker_is_killed_mid_trial(preprocessed, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(KILLED_WORKER.format(pre=preprocessed))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # kill once a trial is done and the next is mid-way
            try:
                trials = optuna.load_study(study_name="dc-mlops-ZeroBias-vanilla_ae",
                                           storage=storage).trials
            except KeyError:  # not created yet
                trials = []
            done = [t for t in trials if t.state.name == "COMPLETE"]
            running = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
            if done and running:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never got mid-trial")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    completed = {t.number: t.value for t in done}
    killed = running[0].number
    time.sleep(3)  # past the grace period: the killed trial's heartbeat is stale
    res = run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=2,
                                preprocess_run=preprocessed),
                   TuneOptions(fixed=TINY, prune_startup_trials=100, heartbeat_interval=1,
                               grace_period=2, retrain=False))
    trials = {t.number: t for t in _study("dc-mlops-ZeroBias-vanilla_ae", tmp_path).trials}
    assert trials[killed].state.name == "FAIL"  # only the running trial is lost
    for number, value in completed.items():
        assert trials[number].state.name == "COMPLETE" and trials[number].value == value
    assert [trials[n].state.name for n in res.trial_numbers] == ["COMPLETE", "COMPLETE"]
    assert len(trials) == len(completed) + 1 + 2
    lost = MlflowClient().get_run(trials[killed].user_attrs["mlflow_run_id"])
    assert lost.info.status == "FAILED" and "FAIL" in lost.info.run_name

"""dc_mlops against shared infrastructure: an MLflow server over PostgreSQL and S3 (moto).

train -> evaluate -> promote -> certify through the server; artifacts land in the bucket;
the production model loads through the registry; no credential leaks into MLflow; the
server going away gives a clear error quickly and leaves no output behind.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.settings import (CertifySettings, EvaluateSettings, PreprocessSettings,
                               PromoteSettings, TrainSettings)
from dc_mlops.steps.certify import run_certify
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from dc_mlops.steps.train import run_train
from tests.integration import infra
from tests.steps.test_preprocess import make_era

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not infra.postgres_available(),
                                 reason="PostgreSQL 15 binaries not installed (.ci/run installs them)")]


@pytest.fixture(scope="module")
def shared():
    with infra.postgres() as dbs, infra.s3() as endpoint:
        server = infra.TrackingServer(dbs["mlflow"], endpoint).start()
        try:
            yield {"server": server, "s3": endpoint, "optuna": dbs["optuna"]}
        finally:
            server.stop()


@pytest.fixture(scope="module")
def chain(shared, tmp_path_factory):
    """What a user on a worker node does, once: the server URL and S3 settings in the
    environment, then train -> evaluate -> promote -> certify through the server."""
    tmp = tmp_path_factory.mktemp("chain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", shared["server"].url)
        mp.setenv("MLFLOW_S3_ENDPOINT_URL", shared["s3"])
        for k, v in infra.AWS.items():
            mp.setenv(k, v)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.chdir(tmp)
        mlflow.set_tracking_uri(shared["server"].url)
        era = make_era(tmp / "era", n_runs=12, n_ls=40)
        pre = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id
        run_train(TrainSettings(model="sparse_ae", pd="ZeroBias", epochs=2, batch_size=64,
                                preprocess_run=pre))
        ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="sparse_ae,pca", seeds="0",
                                           preprocess_run=pre, max_good_as_bad=0.05))
        promo = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id))
        new = make_era(tmp / "new", n_runs=4, n_ls=40, seed=5)
        cert = run_certify(CertifySettings(pd="ZeroBias", data=str(new), out=str(tmp / "cert")))
        yield {**shared, "promoted": promo.promoted, "cert": tmp / "cert", "cert_run": cert.run_id}
        mlflow.set_tracking_uri(None)


def test_whole_chain_through_the_server(chain):
    assert chain["promoted"] and (chain["cert"] / "certified_golden.json").is_file()
    # the production model loads through the registry of the server
    model = mlflow.pyfunc.load_model("models:/dc-certifier-ZeroBias@production")
    assert model.unwrap_python_model().spec["thresholds"]
    # every artifact went to the S3 bucket
    keys = infra.bucket_keys(chain["s3"])
    for name in ("splits/train.parquet", "roc_curve.png", "comparison.csv",
                 "certification/summary.json", "MLmodel"):
        assert any(k.endswith(name) for k in keys), name


def test_no_credential_in_params_tags_or_artifacts(chain):
    import boto3
    secrets = [v for k, v in infra.AWS.items() if k != "AWS_DEFAULT_REGION"]
    client = MlflowClient()
    exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) >= 6
    for run in runs:
        text = str(run.data.params) + str(run.data.tags)
        assert not any(s in text for s in secrets), run.info.run_id
    s3 = boto3.client("s3", endpoint_url=chain["s3"], **infra._boto_kwargs())
    for key in infra.bucket_keys(chain["s3"]):
        if key.endswith((".json", ".csv", ".md", ".yaml", ".txt", "MLmodel")):
            body = s3.get_object(Bucket="dc-mlops-artifacts", Key=key)["Body"].read()
            assert not any(s.encode() in body for s in secrets), key


def test_server_gone_gives_a_clear_error_fast_and_no_output(shared, tmp_path):
    with infra.postgres(("mlflow",)) as dbs:
        server = infra.TrackingServer(dbs["mlflow"], shared["s3"]).start()
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
        env.pop("MLFLOW_RUN_ID", None)
        era = make_era(tmp_path / "era", n_runs=12, n_ls=40)
        dc = str(Path(sys.executable).parent / "dc-mlops")
        subprocess.run([dc, "-q", "preprocess", "--pd", "ZeroBias", "--data", str(era)], env=env,
                       check=True, capture_output=True, timeout=300, cwd=tmp_path)
        train = subprocess.Popen([dc, "train", "--pd", "ZeroBias", "--model", "vanilla_ae",
                                  "--epochs", "400", "--batch-size", "16"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(20)  # inside the epoch loop by now
        server.stop()
        killed = time.time()
        _, err = train.communicate(timeout=120)
        assert time.time() - killed < 30, "train hung after the server went away"
        assert train.returncode != 0
        assert "error: the MLflow tracking server failed during train" in err
        # a new step against the dead server fails at once, in one line, writing nothing
        t0 = time.time()
        proc = subprocess.run([dc, "certify", "--pd", "ZeroBias", "--data", str(era),
                               "--out", str(tmp_path / "cert")], env=env, capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert time.time() - t0 < 30 and proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(
            "error: cannot reach the MLflow tracking server at http://127.0.0.1:")
        assert not (tmp_path / "cert").exists()


TUNE_WORKER = """
import logging
from dc_mlops.settings import TuneSettings
from dc_mlops.steps.tune import run_tune
from dc_mlops.tuning.study import TuneOptions
if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials={n}, storage="{storage}",
                          study_name="pg-study", preprocess_run="{pre}"),
             TuneOptions(fixed={{"hidden": [16], "batch_size": 32, "patience": 500,
                                 "epochs": {epochs}}},
                         prune_startup_trials=100, heartbeat_interval=1, grace_period=2,
                         retrain=False))
"""


def test_two_tune_workers_on_postgres_one_killed_then_resumed(chain, tmp_path):
    import optuna

    from dc_mlops.settings import TuneSettings
    from dc_mlops.steps.train import resolve_preprocess_run
    from dc_mlops.steps.tune import run_tune
    from dc_mlops.tuning.study import TuneOptions

    storage, pre = chain["optuna"], resolve_preprocess_run("ZeroBias")
    opts = TuneOptions(fixed={"hidden": [16], "batch_size": 32, "epochs": 3},
                       prune_startup_trials=100, heartbeat_interval=1, grace_period=2,
                       retrain=False)
    # the study and the experiment exist before any worker starts
    run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=0, storage=storage,
                          study_name="pg-study", preprocess_run=pre), opts)
    procs = []
    for name, n, epochs in (("slow", 4, 300), ("fast", 3, 3)):
        script = tmp_path / f"{name}.py"
        script.write_text(TUNE_WORKER.format(n=n, storage=storage, pre=pre, epochs=epochs))
        procs.append(subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                                      env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    slow, fast = procs
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # kill the slow worker mid-trial, after a completed trial
            trials = optuna.load_study(study_name="pg-study", storage=storage).trials
            done = [t for t in trials if t.state.name == "COMPLETE"]
            # only the slow worker's trials (300 epochs) get past 3 reported epochs
            running = [t for t in trials if t.state.name == "RUNNING" and
                       len(t.intermediate_values) >= 5]
            if done and running:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the slow worker never got mid-trial")
        slow.send_signal(9)
        assert fast.wait(timeout=300) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    killed = running[0].number
    time.sleep(3)  # past the grace period
    run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=1, storage=storage,
                          study_name="pg-study", preprocess_run=pre), opts)
    trials = {t.number: t for t in optuna.load_study(study_name="pg-study", storage=storage).trials}
    assert trials[killed].state.name == "FAIL"  # only the running trial is lost
    complete = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(complete) >= len(done) + 1
    client = MlflowClient()
    for t in complete:  # every completed trial is a finished run on the tracking server
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED"

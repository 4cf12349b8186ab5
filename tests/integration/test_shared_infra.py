"""dc_mlops against shared infrastructure: an MLflow server over PostgreSQL and S3 (moto).

train -> evaluate -> promote -> certify through the server; artifacts land in the bucket;
the production model loads through the registry; no credential leaks into MLflow; the
server going away gives a clear error quickly and leaves no output behind.
"""
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.settings import (CertifySettings, EvaluateSettings, PreprocessSettings,
                               PromoteSettings, TrainSettings)
from dc_mlops.steps.certify import run_certify
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from dc_mlops.steps.train import run_train
from tests.conftest import SMALL_WALK
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
                                           preprocess_run=pre, epochs=3,
                                           **(SMALL_WALK | {"max_good_as_bad": 0.05})))
        # the metric every evaluate has logged so far (this test is about infrastructure)
        promo = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id,
                                            metric="test_roc_auc"))
        new = make_era(tmp / "new", n_runs=4, n_ls=40, seed=5)
        cert = run_certify(CertifySettings(pd="ZeroBias", data=str(new), out=str(tmp / "cert")))
        yield {**shared, "promoted": promo.promoted, "cert": tmp / "cert", "cert_run": cert.run_id,
               "preprocess_run": pre}
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


def test_server_gone_gives_a_clear_error_and_no_output(shared, tmp_path):
    """No timed assertion (the machine is loaded): a hang fails through the subprocess
    timeouts, generous but far below MLflow's default retries of several minutes."""
    with infra.postgres(("mlflow",)) as dbs:
        server = infra.TrackingServer(dbs["mlflow"], shared["s3"]).start()
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
        env.pop("MLFLOW_RUN_ID", None)
        era = make_era(tmp_path / "era", n_runs=12, n_ls=40)
        dc = str(Path(sys.executable).parent / "dc-mlops")
        subprocess.run([dc, "-q", "preprocess", "--pd", "ZeroBias", "--data", str(era)], env=env,
                       check=True, capture_output=True, timeout=600, cwd=tmp_path)
        train = subprocess.Popen([dc, "train", "--pd", "ZeroBias", "--model", "vanilla_ae",
                                  "--epochs", "2000", "--batch-size", "16"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            client = MlflowClient(tracking_uri=server.url)
            exp = client.get_experiment_by_name("dc-mlops-ZeroBias").experiment_id

            def training() -> bool:  # inside the epoch loop: an epoch's loss is logged
                assert train.poll() is None, "train ended before the server was stopped"
                runs = client.search_runs([exp], "tags.`dc_mlops.step` = 'train' and "
                                                 "attributes.status = 'RUNNING'")
                return any("train_loss" in r.data.metrics for r in runs)

            infra.wait_for(training, what="train to log its first epoch")
            server.stop()
            _, err = train.communicate(timeout=240)  # a hang fails here
        finally:
            train.kill()
            train.wait()
        assert train.returncode == 3
        assert err.strip().splitlines()[-1].startswith(
            "error: the MLflow tracking server failed during train")
        # a new step against the dead server fails at once, in one line, writing nothing
        proc = subprocess.run([dc, "certify", "--pd", "ZeroBias", "--data", str(era),
                               "--out", str(tmp_path / "cert")], env=env, capture_output=True,
                              text=True, timeout=240, cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(
            "error: cannot reach the MLflow tracking server at http://127.0.0.1:")
        assert not (tmp_path / "cert").exists()


def test_credentials_in_the_tracking_uri_are_never_printed(chain, tmp_path):
    """A user who puts the password in MLFLOW_TRACKING_URI: a missing run is exit 2 naming
    it, a step that runs prints our run link, redacted, and the password appears nowhere."""
    secret = "S3CRETpw"
    uri = chain["server"].url.replace("http://", f"http://alice:{secret}@")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", None)
    dc = str(Path(sys.executable).parent / "dc-mlops")
    missing = subprocess.run([dc, "promote", "--pd", "ZeroBias", "--evaluation-run", "nope"],
                             env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == \
        f"error: run 'nope' not found in {uri.replace(secret, '***')}"
    era = make_era(tmp_path / "era", n_runs=6, n_ls=40, seed=3)
    ran = subprocess.run([dc, "preprocess", "--pd", "ZeroBias", "--data", str(era)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "View run preprocess ZeroBias" in ran.stderr
    assert f"at: {uri.replace(secret, '***')}/#/experiments/" in ran.stderr
    for proc in (missing, ran):
        assert secret not in proc.stdout + proc.stderr


def test_a_missing_run_on_the_server_is_the_users_error(chain):
    from dc_mlops.errors import DataError
    from dc_mlops.tracking import runs as tr
    with pytest.raises(DataError, match="^run 'nope' not found in http://127.0.0.1:"):
        tr.read_csv_artifact("nope", "candidates.csv")
    with pytest.raises(DataError, match=rf"^run {chain['cert_run']} \(certify\) has no artifact"):
        tr.read_csv_artifact(chain["cert_run"], "candidates.csv")


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
    """Two tune processes on one PostgreSQL study, one SIGKILLed mid-trial: only its running
    trial is lost, the resumed study goes on, and nobody leaks database connections (the test
    watches the study through one storage of its own, as a user's script should)."""
    from dc_mlops.settings import TuneSettings
    from dc_mlops.steps.tune import run_tune
    from dc_mlops.tuning import study as st

    # the chain's run: other tests of this module add preprocess runs of ZeroBias
    storage_url, pre = chain["optuna"], chain["preprocess_run"]
    opts = st.TuneOptions(fixed={"hidden": [16], "batch_size": 32, "epochs": 3},
                          prune_startup_trials=100, heartbeat_interval=1, grace_period=2,
                          retrain=False)
    # the study and the experiment exist before any worker starts
    run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=0, storage=storage_url,
                          study_name="pg-study", preprocess_run=pre), opts)
    assert infra.pg_connections(storage_url, "optuna") == 0  # the launcher closed its engine
    per_process = st.POOL_SIZE + st.MAX_OVERFLOW
    procs = []
    for name, n, epochs in (("slow", 4, 300), ("fast", 3, 3)):
        script = tmp_path / f"{name}.py"
        script.write_text(TUNE_WORKER.format(n=n, storage=storage_url, pre=pre, epochs=epochs))
        procs.append(subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                                      env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    slow, fast = procs
    peak = 0
    with st.open_storage(storage_url, opts) as storage:
        study = optuna.load_study(study_name="pg-study", storage=storage)

        def slow_mid_trial() -> bool:
            """The slow worker is mid-trial, after a completed trial (only its 300-epoch
            trials get past 3 reported epochs)."""
            nonlocal peak
            assert slow.poll() is None, "the slow worker died before it was killed"
            peak = max(peak, infra.pg_connections(storage_url, "optuna"))
            trials = study.get_trials(deepcopy=False)
            return (any(t.state.name == "COMPLETE" for t in trials) and
                    any(t.state.name == "RUNNING" and len(t.intermediate_values) >= 5
                        for t in trials))

        try:
            infra.wait_for(slow_mid_trial, seconds=600, what="the slow worker to be mid-trial")
            trials = study.get_trials()
            done = [t for t in trials if t.state.name == "COMPLETE"]
            killed = next(t.number for t in trials if t.state.name == "RUNNING" and
                          len(t.intermediate_values) >= 5)
            slow.send_signal(9)
            assert fast.wait(timeout=600) == 0
        finally:
            for p in procs:
                p.kill()
                p.wait()
        # two tune processes and this test's storage, each within its pool
        assert 0 < peak <= 3 * per_process

        def lost_trial_failed() -> bool:  # once its heartbeat is older than the grace period
            st.fail_stale(study)
            return {t.number: t.state.name for t in study.get_trials()}[killed] == "FAIL"

        infra.wait_for(lost_trial_failed, what="the killed worker's trial to be failed")
    run_tune(TuneSettings(model="vanilla_ae", pd="ZeroBias", n_trials=1, storage=storage_url,
                          study_name="pg-study", preprocess_run=pre), opts)
    # every process is done: no connection left open to the study's database
    infra.wait_for(lambda: infra.pg_connections(storage_url, "optuna") == 0,
                   what="every Optuna connection to be closed")
    with st.open_storage(storage_url, opts) as storage:
        trials = {t.number: t for t in optuna.load_study(study_name="pg-study",
                                                         storage=storage).trials}
    assert trials[killed].state.name == "FAIL"  # only the running trial is lost
    complete = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(complete) >= len(done) + 1
    client = MlflowClient()
    assert client.get_run(trials[killed].user_attrs["mlflow_run_id"]).info.status == "FAILED"
    for t in complete:  # every completed trial is a finished run on the tracking server
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED"
    # the killed worker's own tune run was closed by the next tune (dead pid on this host)
    exp = client.get_experiment_by_name("dc-mlops-ZeroBias").experiment_id
    assert client.search_runs([exp], "tags.`dc_mlops.step` = 'tune' and "
                                     "attributes.status = 'RUNNING'") == []
    orphaned = client.search_runs([exp], f"tags.`dc_mlops.pid` = '{slow.pid}' and "
                                         "tags.`dc_mlops.step` = 'tune'")
    assert orphaned and all(r.info.status == "FAILED" and "dc_mlops.orphaned" in r.data.tags
                            for r in orphaned)
    # the tracking server's own pool stays within its documented budget
    assert infra.pg_connections(chain["optuna"], "mlflow") <= server_budget()


def server_budget(workers: int = 2) -> int:
    """The tracking server's worst case: workers x 2 engines (tracking, registry) x pool,
    plus a few for start-up (docs/shared_infrastructure.md)."""
    pool = sum(int(v) for v in infra.SERVER_POOL.values())
    return workers * 2 * pool + 4

"""`mlflow run . -e <entry>` exactly as the README says, then read the runs back."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.steps.test_preprocess import make_era

pytestmark = pytest.mark.integration


def _mlflow_run(entry: str, params: dict, uri: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", entry,
           "--env-manager", "local"]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_mlflow_run_preprocess_then_train_sparse_ae(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=10, n_ls=40)
    _mlflow_run("preprocess", {"pd": "ZeroBias", "data": era}, tracking, tmp_path)
    client = MlflowClient()
    exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
    assert exp is not None
    _mlflow_run("train", {"model": "sparse_ae", "pd": "ZeroBias", "epochs": 2, "batch_size": 64},
                tracking, tmp_path)
    runs = client.search_runs([exp.experiment_id], "tags.`dc_mlops.step` = 'train'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["model"] == "sparse_ae"
    assert "test_roc_auc" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    assert "roc_curve.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    model = mlflow.pyfunc.load_model(run.data.tags["dc_mlops.model_uri"])
    assert model.metadata.signature is not None

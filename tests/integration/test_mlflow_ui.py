"""The MLflow UI in a real browser: the detector runs of `main` and their test_roc_auc.

Starts `mlflow server` on 127.0.0.1 over the store that `main` filled, renders the
experiment's runs and the run comparison in headless Chromium (Debian's `chromium`, installed
by .ci/run), saves screenshots and asserts on the rendered DOM.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from dc_mlops.steps.main import MAIN_MODELS

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui_server(main_store):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
         main_store["uri"], "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=main_store["root"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _chromium(url: str, *, screenshot: Path | None = None) -> str:
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tempfile.mkdtemp()}",
            "--virtual-time-budget=15000", "--window-size=1400,900"]
    if screenshot:
        subprocess.run(args + [f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True,
                          timeout=120).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it: apt-get install chromium)")
def test_ui_lists_detector_runs_and_their_roc_auc(main_store, ui_server, tmp_path):
    mlflow.set_tracking_uri(main_store["uri"])
    exp = mlflow.get_experiment_by_name("dc-mlops-ZeroBias")
    runs = mlflow.search_runs([exp.experiment_id], "tags.`dc_mlops.step` = 'train'")
    mlflow.set_tracking_uri(None)
    shot = tmp_path / "runs.png"
    dom = _chromium(f"{ui_server}/#/experiments/{exp.experiment_id}/runs", screenshot=shot)
    assert shot.is_file() and shot.stat().st_size > 10_000
    for model in MAIN_MODELS:
        assert model in dom, f"run {model} not listed in the MLflow UI"
    ids = urllib.parse.quote(json.dumps(list(runs["run_id"])))
    compare = _chromium(f"{ui_server}/#/compare-runs?runs={ids}&experiments="
                        + urllib.parse.quote(json.dumps([exp.experiment_id])),
                        screenshot=tmp_path / "compare.png")
    assert "test_roc_auc" in compare
    shown = [v for v in runs["metrics.test_roc_auc"].dropna() if f"{v:.3f}" in compare]
    assert shown, "no test_roc_auc value rendered in the run comparison"

"""The MLflow UI in a real browser, on the pages a DC expert lands on after `main`.

Starts `mlflow server` on 127.0.0.1 over the store that `main` filled and renders, in headless
Chromium (Debian's `chromium`, installed by .ci/run), the link `main` prints
(tracking.ui.runs_url) and the certifier's registered-model page; saves screenshots and
asserts on the rendered DOM what a person looks for:

* the runs table, in the model-training workflow (not the GenAI one), lists the detector
  runs by their names and shows the decisive metrics as columns: every metric of
  ``ui.DECISIVE_METRICS`` that some run of the experiment carries (read from the store, so
  the test follows what evaluate logs), with a value rendered and, once runs carry
  ``test_correct_automation_rate``, the best run by it listed first;
* the registered model's page shows the ``production`` alias on a version.
"""
import json
import os
import re
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
from mlflow.tracking import MlflowClient

from dc_mlops.steps.main import MAIN_MODELS
from dc_mlops.tracking import ui
from dc_mlops.tracking.registry import ALIAS, certifier_name

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: wide enough that the runs grid renders every metric column (it virtualises off-screen ones)
WINDOW = "2400,1000"


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
            "--virtual-time-budget=15000", f"--window-size={WINDOW}"]
    if screenshot:
        subprocess.run(args + [f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True,
                          timeout=120).stdout


def _column_header(col_id: str, dom: str) -> bool:
    """The runs grid has a header cell for this column (not just the name in some text)."""
    return re.search(r'role="columnheader"[^>]*col-id="' + re.escape(col_id) + '"', dom) \
        is not None


def _rendered(value: float, dom: str) -> bool:
    """The UI writes a metric in full (JavaScript's shortest form) or rounded."""
    forms = {repr(value), f"{value:.3g}", f"{value:.3f}", f"{value:.4f}"}
    if float(value).is_integer():
        forms.add(str(int(value)))
    return any(f in dom for f in forms)


@pytest.fixture
def store_facts(main_store) -> dict:
    """What the store holds, read through the tracking API (not from the page)."""
    mlflow.set_tracking_uri(main_store["uri"])
    try:
        client = MlflowClient()
        exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
        runs = client.search_runs([exp.experiment_id])
        production = client.get_model_version_by_alias(certifier_name("ZeroBias"), ALIAS)
    finally:
        mlflow.set_tracking_uri(None)
    carried = [m for m in ui.DECISIVE_METRICS if any(m in r.data.metrics for r in runs)]
    return {"experiment_id": exp.experiment_id, "runs": runs, "metrics": carried,
            "production_version": production.version}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it: apt-get install chromium)")
def test_the_printed_link_lands_on_the_runs_with_the_decisive_metrics(
        main_store, ui_server, store_facts, tmp_path):
    printed = ui.runs_url(store_facts["experiment_id"], main_store["uri"])
    assert printed in main_store["stdout"], "main does not print the link to the runs view"
    link = ui.runs_url(store_facts["experiment_id"], ui_server)  # the same page, our port
    shot = tmp_path / "runs.png"
    dom = _chromium(link, screenshot=shot)
    assert shot.is_file() and shot.stat().st_size > 10_000
    # the model-training navigation (Runs, Models), not the GenAI one (Judges, Prompts...)
    assert ">Judges<" not in dom and ">Prompts<" not in dom and ">Models<" in dom, \
        "the page is in the GenAI workflow, not model training"
    names = [r.info.run_name for r in store_facts["runs"]
             if r.data.tags.get("dc_mlops.step") == "train"]
    assert {r.data.params.get("model") for r in store_facts["runs"]
            if r.data.tags.get("dc_mlops.step") == "train"} == set(MAIN_MODELS)
    for name in names:
        assert name in dom, f"run {name!r} is not listed on the landing page"
    assert store_facts["metrics"], "no run carries any of the decisive metrics"
    for metric in store_facts["metrics"]:
        assert _column_header(f"metrics.`{metric}`", dom), \
            f"column {metric} is not shown on the landing page"
    sort = store_facts["metrics"][0]
    carrying = [r for r in store_facts["runs"] if sort in r.data.metrics]
    assert any(_rendered(r.data.metrics[sort], dom) for r in carrying), \
        f"no value of {sort} is rendered"
    if sort == ui.SORT_METRIC:  # the best run by the sort metric is the first row
        best = max(carrying, key=lambda r: r.data.metrics[sort]).info.run_name
        others = [r.info.run_name for r in carrying if r.info.run_name != best]
        assert all(dom.index(best) < dom.index(n) for n in others if n in dom), \
            f"{best} (highest {sort}) is not listed first"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_model_page_shows_the_production_alias(main_store, ui_server, store_facts,
                                                   tmp_path):
    name = certifier_name("ZeroBias")
    dom = _chromium(ui.model_url(name, ui_server), screenshot=tmp_path / "model.png")
    assert name in dom
    assert re.search(rf"@(&nbsp;|\s){ALIAS}\b", dom), \
        "the production alias is not visible on the model page"  # rendered as "@ production"
    assert f"Version {store_facts['production_version']}" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_run_comparison_shows_each_detectors_metrics(main_store, ui_server, store_facts,
                                                         tmp_path):
    train = [r for r in store_facts["runs"] if r.data.tags.get("dc_mlops.step") == "train"]
    ids = urllib.parse.quote(json.dumps([r.info.run_id for r in train]))
    exp = urllib.parse.quote(json.dumps([store_facts["experiment_id"]]))
    compare = _chromium(f"{ui_server}/#/compare-runs?runs={ids}&experiments={exp}",
                        screenshot=tmp_path / "compare.png")
    assert "test_roc_auc" in compare
    shown = [r.data.metrics["test_roc_auc"] for r in train if "test_roc_auc" in r.data.metrics]
    assert any(_rendered(v, compare) for v in shown), \
        "no test_roc_auc value rendered in the run comparison"

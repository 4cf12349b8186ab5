"""The MLflow UI in a real browser, on the pages a DC expert lands on after `main`.

Starts `mlflow server` on 127.0.0.1 over the store that `main` filled and renders, in headless
Chromium (Debian's `chromium`, installed by .ci/run), the link `main` prints
(tracking.ui.runs_url) and the certifier's registered-model page; saves screenshots and
asserts on the rendered DOM what a person looks for:

* the runs table, in the model-training workflow (not the GenAI one), lists the candidate
  runs of the evaluation (one per detector and seed, by name) and only them, and shows the
  decisive metrics as columns: every metric of ``ui.DECISIVE_METRICS`` (each candidate
  carries them all), with values rendered and the best candidate by
  ``test_correct_automation_rate`` listed first;
* the registered model's page shows the ``production`` alias on the Production version.
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
from tests.integration.conftest import certified

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
    """The UI writes a metric in full (JavaScript's shortest form) or rounded (to 3 or 4
    decimals, trailing zeros dropped: 0.0597 shows as 0.06)."""
    forms = {repr(value), f"{value:.3g}"}
    for decimals in (3, 4):
        fixed = f"{value:.{decimals}f}"
        forms |= {fixed, fixed.rstrip("0").rstrip(".")}
    if float(value).is_integer():
        forms.add(str(int(value)))
    return any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", dom) for f in forms if f)


@pytest.fixture
def store_facts(main_store) -> dict:
    """What the store holds, read through the tracking API (not from the page)."""
    mlflow.set_tracking_uri(main_store["uri"])
    try:
        client = MlflowClient()
        exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
        runs = client.search_runs([exp.experiment_id])
        try:
            production = client.get_model_version_by_alias(certifier_name("ZeroBias"), ALIAS)
        except mlflow.exceptions.MlflowException:
            production = None
    finally:
        mlflow.set_tracking_uri(None)
    candidates = [r for r in runs if r.data.tags.get("dc_mlops.step") == ui.CANDIDATE_STEP]
    return {"experiment_id": exp.experiment_id, "runs": runs, "candidates": candidates,
            "production_version": production.version if production else None}


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
    candidates = store_facts["candidates"]
    assert {r.data.params.get("model") for r in candidates} == set(MAIN_MODELS.split(","))
    for run in candidates:
        assert run.info.run_name in dom, f"candidate {run.info.run_name!r} is not listed"
    others = {r.info.run_name for r in store_facts["runs"]} - {r.info.run_name for r in candidates}
    assert others and not [n for n in others if f">{n}<" in dom], \
        "runs other than the candidates are listed"
    for metric in ui.DECISIVE_METRICS:
        assert all(metric in r.data.metrics for r in candidates), metric
        assert _column_header(f"metrics.`{metric}`", dom), \
            f"column {metric} is not shown on the landing page"
        assert any(_rendered(r.data.metrics[metric], dom) for r in candidates), \
            f"no value of {metric} is rendered"
    best = max(candidates, key=lambda r: r.data.metrics[ui.SORT_METRIC]).info.run_name
    assert all(dom.index(best) <= dom.index(r.info.run_name) for r in candidates), \
        f"{best} (highest {ui.SORT_METRIC}) is not listed first"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_model_page_shows_the_production_alias(main_store, ui_server, store_facts,
                                                   tmp_path):
    certified(main_store)  # main promoted a certifier and certified with it
    name = certifier_name("ZeroBias")
    dom = _chromium(ui.model_url(name, ui_server), screenshot=tmp_path / "model.png")
    assert name in dom
    assert re.search(rf"@(&nbsp;|\s){ALIAS}\b", dom), \
        "the production alias is not visible on the model page"  # rendered as "@ production"
    assert f"Version {store_facts['production_version']}" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_run_comparison_shows_each_detectors_metrics(main_store, ui_server, store_facts,
                                                         tmp_path):
    train = store_facts["candidates"]
    ids = urllib.parse.quote(json.dumps([r.info.run_id for r in train]))
    exp = urllib.parse.quote(json.dumps([store_facts["experiment_id"]]))
    compare = _chromium(f"{ui_server}/#/compare-runs?runs={ids}&experiments={exp}",
                        screenshot=tmp_path / "compare.png")
    for metric in (ui.SORT_METRIC, "test_roc_auc"):
        assert metric in compare
        assert all(_rendered(r.data.metrics[metric], compare) for r in train), \
            f"a candidate's {metric} is not rendered in the run comparison"

"""The DC-expert notebook, executed as a user runs it: Jupyter started in the folder where
`main` ran, no environment variable pointing at anything."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from dc_mlops import certified_era
from tests.conftest import REPO
from tests.integration.conftest import certified

pytestmark = pytest.mark.integration
NOTEBOOK = REPO / "notebooks" / "certified_era.ipynb"


def _execute(cwd: Path, extra: list[str] = (), allow_errors: bool = False):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(code) for code in extra]
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


@pytest.fixture
def user_folder(main_store, tmp_path, monkeypatch) -> Path:
    """A copy of the folder main ran in (its certification and store), so the verdicts and
    the review stay out of the store the other tests read (artifacts stay where the
    store's runs say they are)."""
    cert = certified(main_store)
    monkeypatch.delenv(certified_era.CERT_DIR_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    shutil.copytree(cert, tmp_path / "outputs" / cert.name)
    shutil.copy(main_store["root"] / "mlflow.db", tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_the_notebook_states_the_outcome_pages_the_grey_list_and_writes_verdicts(user_folder):
    folder = next((user_folder / "outputs").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    grey = certified_era.load(folder).grey
    assert len(grey), "main's certification has no LS to review: nothing to page through"
    first = grey.iloc[0]
    cells = _execute(user_folder / "outputs", extra=[  # Jupyter started one level down
        f'verdict({first["run"]}, {first["ls"]}, "BAD")'])
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]
    assert all(c.get("execution_count") for c in cells), "a cell did not run"
    # the outcome first, with main's figures
    n = summary["counts"]
    outcome = _text(cells[0]).splitlines()[0]
    assert outcome.startswith(f"Outcome of {folder.name}") and \
        f"automation {summary['automation']:.1%}" in outcome and \
        f"{n['ls_grey']:,}".replace(",", "\u2009") + " LS to review" in outcome
    assert "decided by ZeroBias" in _text(cells[0])
    # why: the table per PD and subsystem and the certification map
    reasons = cells[1]["outputs"]
    assert "between the cut-offs" in reasons[0]["data"]["text/plain"]
    assert "image/png" in reasons[1]["data"]
    # the first page: five LS, most anomalous first, each drawn against its reference
    page = cells[2]["outputs"]
    assert _text(cells[2]).startswith(f"page 1 of {certified_era.n_pages(certified_era.load(folder))}")
    table = next(o for o in page if "text/html" in o.get("data", {}))["data"]["text/plain"]
    assert str(first["run"]) in table and str(first["ls"]) in table
    figures = [o for o in page if "image/png" in o.get("data", {})]
    assert len(figures) == min(5, len(grey))
    assert any("image/png" in o.get("data", {}) for o in cells[3]["outputs"])  # along the run
    # the verdict is in the file review reads, and review takes it
    assert f"run {first['run']} LS {first['ls']}: BAD. 1 of" in _text(cells[-1])
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{user_folder / 'mlflow.db'}"}
    review = subprocess.run([str(Path(sys.executable).parent / "dc-mlops"), "review",
                             "--verdicts", str(folder / "grey_zone.csv")], cwd=user_folder,
                            env=env, capture_output=True, text=True, timeout=600)
    assert review.returncode == 0, review.stderr[-3000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        runs = MlflowClient().search_runs(
            [e.experiment_id for e in MlflowClient().search_experiments()],
            filter_string="tags.`dc_mlops.step` = 'review'")
        assert len(runs) == 1
        labels = mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/verdicts.csv")
    finally:
        mlflow.set_tracking_uri(None)
    assert f"{first['run']},{first['ls']},BAD" in labels


def test_without_a_certification_the_notebook_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.delenv(certified_era.CERT_DIR_ENV, raising=False)
    cells = _execute(tmp_path, allow_errors=True)
    error = next(o for o in cells[0]["outputs"] if o.get("output_type") == "error")
    assert error["ename"] == "ReviewError"
    assert len(error["traceback"]) == 1, "a traceback instead of one line"
    assert error["traceback"][0].startswith("error: no certification found") and \
        certified_era.CERT_DIR_ENV in error["traceback"][0]

"""The DC-expert notebook runs top to bottom on a store filled by `main`."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_certified_era_notebook_executes(main_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", main_store["uri"])
    monkeypatch.setenv("DC_MLOPS_CERT_DIR", str(main_store["cert_dir"]))
    nb = nbformat.read(REPO / "notebooks" / "certified_era.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "automation rate" in text and "dc-certifier-ZeroBias version" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2

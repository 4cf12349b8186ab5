"""A tracking store filled once by the `main` chain (tiny settings), shared by the tests that
need a realistic store: the notebook and the MLflow UI in a real browser."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MAIN_PD = "ZeroBias"
MAIN_N_LS = 6000


@pytest.fixture(scope="session")
def main_store(tmp_path_factory) -> dict:
    """Run `dc-mlops main` in a fresh folder; returns its tracking URI, folder and outputs."""
    root = tmp_path_factory.mktemp("main")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    dc = str(Path(sys.executable).parent / "dc-mlops")
    proc = subprocess.run([dc, "main", "--pd", MAIN_PD, "--n-ls", str(MAIN_N_LS)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    certs = sorted((root / "outputs").glob(f"certify-{MAIN_PD}-*"))
    assert certs, proc.stdout[-2000:]
    return {"uri": uri, "root": root, "stdout": proc.stdout, "cert_dir": certs[-1],
            "summary": json.loads((certs[-1] / "summary.json").read_text())}

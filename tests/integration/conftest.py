"""A tracking store filled once by the `main` chain, shared by the tests that need a realistic
store: the notebook, the MLflow UI in a real browser, the chain itself.

`main` runs exactly as README command 1 runs it (`dc-mlops main` with its defaults: the four
PDs, 40 000 LS of 2018D as history, in an empty folder, the store in that folder), so these
tests see what a user sees. On 2 cores that takes about 4 minutes. (A smaller history
certifies nothing GOOD: the combined GOOD cut-off needs 299 known failure LS before the
steps it decides.)

On two workers (the README's test command, ``-n 2 --dist loadfile``) the first worker to
need the store runs `main` in a folder both workers see, under a lock; the other waits and
reads it, so `main` runs once.

Set ``DC_MLOPS_TEST_MAIN_DIR`` to a folder where this fixture (or `dc-mlops main ... >
main_stdout.txt`) already ran, to reuse it instead while working on these tests.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MAIN_PD = "all"
REUSE_ENV = "DC_MLOPS_TEST_MAIN_DIR"
STDOUT = "main_stdout.txt"
FAILED = "main_failed.txt"


def _uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def _run_main(root: Path) -> str:
    """`dc-mlops main` in ``root`` with its store there; its stdout (also in ``STDOUT``), or
    the test fails with its stderr (also in ``FAILED``, for the other worker)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": _uri(root)}
    for name in ("MLFLOW_RUN_ID", "DC_MLOPS_CERT_DIR"):
        env.pop(name, None)
    dc = str(Path(sys.executable).parent / "dc-mlops")
    proc = subprocess.run([dc, "main"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        (root / FAILED).write_text(proc.stderr[-4000:])
        pytest.fail(f"dc-mlops main failed (exit {proc.returncode}): {proc.stderr[-4000:]}")
    (root / STDOUT).write_text(proc.stdout)
    return proc.stdout


@pytest.fixture(scope="session")
def main_store(tmp_path_factory) -> dict:
    """`dc-mlops main` in a fresh folder: its tracking URI, folder, console output and the
    certification it wrote (``cert_dir`` None when it certified nothing)."""
    reuse = os.environ.get(REUSE_ENV, "")
    if reuse:
        root = Path(reuse)
        if not (root / STDOUT).is_file():
            pytest.fail(f"{REUSE_ENV}={reuse}: no {STDOUT} from a finished main there")
        stdout = (root / STDOUT).read_text()
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker
        root = shared / "main"
        with open(shared / "main.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
            if (root / FAILED).is_file():
                pytest.fail("dc-mlops main failed on the other worker: "
                            + (root / FAILED).read_text())
            if (root / STDOUT).is_file():
                stdout = (root / STDOUT).read_text()
            else:
                root.mkdir(exist_ok=True)
                stdout = _run_main(root)
    else:
        root = tmp_path_factory.mktemp("main")
        stdout = _run_main(root)
    uri = _uri(root)
    certs = sorted((root / "outputs").glob(f"certify-{MAIN_PD}-*/summary.json"),
                   key=lambda p: p.stat().st_mtime)
    cert_dir = certs[-1].parent if certs else None
    return {"uri": uri, "root": root, "stdout": stdout, "cert_dir": cert_dir,
            "summary": json.loads(certs[-1].read_text()) if certs else None}


def certified(store: dict) -> Path:
    """The certification `main` wrote; a test that needs one fails, saying why there is none
    (main prints its alarms: no detector meets the targets, ...)."""
    if store["cert_dir"] is None:
        alarms = [line for line in store["stdout"].splitlines() if line.startswith("!!")]
        pytest.fail("main certified nothing: " + " / ".join(alarms))
    return store["cert_dir"]

"""The tracking layer: missing runs are the user's error, orphaned runs of killed processes
are closed by the next step (real SIGKILLed subprocesses), run links carry no password."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError
from dc_mlops.tracking import runs as tr
from tests.conditions import wait_for

REPO = Path(__file__).resolve().parents[2]

#: a step in its own process: opens its run, tells the test (argv[1] appears, whole: written
#: aside and renamed, so the test never reads it half-written), then works until killed
HOLDER = """
import sys, time
from pathlib import Path
from dc_mlops.tracking import runs as tr
from tests.conditions import wait_for
exp = tr.ensure_experiment("dc-mlops-ZeroBias")
with tr.tracked_run(exp, sys.argv[2], "holder") as run:
    part = Path(sys.argv[1] + ".part")
    part.write_text(run.info.run_id)
    part.replace(sys.argv[1])
    while True:
        time.sleep(0.05)
"""


def start_holder(tmp_path: Path, tracking: str, step: str, tag: str) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"run-{tag}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking}
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(marker), step], env=env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, marker


def status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status


def test_a_killed_step_run_is_marked_failed_by_the_next_step(tracking, tmp_path):
    exp = tr.ensure_experiment("dc-mlops-ZeroBias")  # the store exists before the processes
    killed, killed_marker = start_holder(tmp_path, tracking, "certify", "killed")
    alive, alive_marker = start_holder(tmp_path, tracking, "certify", "alive")
    try:
        wait_for(lambda: (killed_marker.exists() and alive_marker.exists())
                 or killed.poll() is not None or alive.poll() is not None, what="both runs")
        assert killed.poll() is None and alive.poll() is None, "a run holder crashed"
        killed_run, alive_run = killed_marker.read_text(), alive_marker.read_text()
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=60) == -signal.SIGKILL
        assert status(killed_run) == "RUNNING"  # what a kill leaves behind
        with tr.tracked_run(exp, "certify", "next"):
            pass
        run = MlflowClient().get_run(killed_run)
        assert run.info.status == "FAILED"
        assert f"pid {killed.pid} on " in run.data.tags[tr.TAG_ORPHANED]
        assert "orphaned" in run.data.tags["mlflow.note.content"]
        assert status(alive_run) == "RUNNING"  # a live process's run is left alone
    finally:
        for p in (killed, alive):
            p.kill()
            p.wait()


def test_runs_of_other_hosts_are_never_judged(tracking):
    exp = tr.ensure_experiment("dc-mlops-ZeroBias")
    client = MlflowClient()
    other = client.create_run(exp, tags={tr.TAG_HOST: "another-node", tr.TAG_PID: "1",
                                         tr.TAG_PID_STARTED: "0.0"}).info.run_id
    untagged = client.create_run(exp).info.run_id  # not a dc_mlops run of this host
    assert tr.close_orphaned_runs(exp) == []
    assert status(other) == "RUNNING" and status(untagged) == "RUNNING"


def test_every_run_records_its_owner(tracking):
    exp = tr.ensure_experiment("dc-mlops-ZeroBias")
    with tr.tracked_run(exp, "train", "x") as run:
        pass
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags[tr.TAG_PID] == str(os.getpid()) and tags[tr.TAG_HOST]
    assert tr._owner_of(tags) is not None and not tr._owner_of(tags).is_dead()


def test_a_missing_run_is_a_data_error_naming_it(tracking):
    with pytest.raises(DataError, match=r"^run 'nope' not found in sqlite:///"):
        tr.run_info("nope")
    with pytest.raises(DataError, match=r"^preprocess run 'nope' not found"):
        tr.load_preprocessed("nope")
    with pytest.raises(DataError, match=r"^run 'nope' not found"):
        tr.read_csv_artifact("nope", "candidates.csv")
    with pytest.raises(DataError, match="no run id given"):
        tr.run_info("")


def test_a_missing_artifact_of_an_existing_run_names_both(tracking):
    exp = tr.ensure_experiment("dc-mlops-ZeroBias")
    with tr.tracked_run(exp, "train", "x") as run:
        pass
    with pytest.raises(DataError, match=rf"run {run.info.run_id} \(train\) has no artifact "
                                        r"'candidates.csv'"):
        tr.read_csv_artifact(run.info.run_id, "candidates.csv")


def test_a_server_that_is_down_is_not_a_missing_run(monkeypatch):
    """Exit 3 (infrastructure), not exit 2: the lookup's own exception goes through."""
    from tests.tuning.test_study import free_port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    mlflow.set_tracking_uri(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Exception) as err:
            tr.run_info("0123456789abcdef0123456789abcdef")
        assert not isinstance(err.value, DataError)
    finally:
        mlflow.set_tracking_uri(None)


def test_an_unreachable_server_message_hides_the_password(monkeypatch):
    from tests.tuning.test_study import free_port
    mlflow.set_tracking_uri(f"http://alice:S3CRET@127.0.0.1:{free_port()}")
    try:
        with pytest.raises(DataError) as err:
            tr.check_tracking()
    finally:
        mlflow.set_tracking_uri(None)
    assert "cannot reach the MLflow tracking server at http://alice:***@127.0.0.1:" in str(err.value)
    assert "S3CRET" not in str(err.value)


def test_run_links_are_ours_and_redacted(tracking, monkeypatch):
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    exp = tr.ensure_experiment("dc-mlops-ZeroBias")
    with tr.tracked_run(exp, "train", "x"):
        # MLflow's own "View run ... at <URI>" line is off for the runs we start
        assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert tr.run_link("1", "abc") == ""  # a local store has no page
    mlflow.set_tracking_uri("https://alice:S3CRET@mlflow.example.cern.ch/")
    assert tr.run_link("1", "abc") == "https://alice:***@mlflow.example.cern.ch/#/experiments/1/runs/abc"

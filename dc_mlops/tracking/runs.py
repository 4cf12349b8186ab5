"""Runs: one MLflow experiment per PD, reuse of finished runs, and runs that fail cleanly.

A step's run is reused when a FINISHED run of the same step carries the same cache key
(a digest of the step's settings, its input data and the dc_mlops version), the way MLflow's
multistep example reuses ``_already_ran``: running ``preprocess`` twice recomputes nothing.
A step that raises leaves its run FAILED, never FINISHED, so a broken run is not reused.

A step killed outright (SIGKILL, a lost batch node) cannot close its run. Every run records
its owner (``dc_mlops.host``, ``dc_mlops.pid``, ``dc_mlops.pid_started``); each new step's run
first marks the RUNNING runs of its experiment whose owner is a dead process of this host as
FAILED, with a note saying so. Runs of other hosts are left to those hosts.

A run id that does not exist is the user's error (:class:`DataError` naming it, exit 2); a
tracking server that fails is not (MLflow's exception, exit 3). URLs in our messages never
show a password (:func:`dc_mlops.errors.redact`); MLflow's own "View run at" line is
replaced by ours, redacted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

import dc_mlops
from dc_mlops.errors import DataError, redact
from dc_mlops.processes import Owner

log = logging.getLogger("dc_mlops")

EXPERIMENT_PREFIX = "dc-mlops-"
#: the experiment of the steps that span several PDs (certify/review/promote pd=all, main)
MULTI_PD_EXPERIMENT = "dc-mlops"
TAG_STEP = "dc_mlops.step"
TAG_KEY = "dc_mlops.cache_key"
TAG_PD = "dc_mlops.pd"
TAG_HOST = "dc_mlops.host"
TAG_PID = "dc_mlops.pid"
TAG_PID_STARTED = "dc_mlops.pid_started"
TAG_ORPHANED = "dc_mlops.orphaned"
#: MLflow error codes that mean "no such run / artifact" (the user's error, not the server's)
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def tracking_uri() -> str:
    return mlflow.get_tracking_uri()


def set_tracking_uri(uri: str) -> None:
    mlflow.set_tracking_uri(uri)


#: a shared tracking server that goes away must give a clear error in seconds, not a hang:
#: MLflow's defaults retry for minutes. Users can still override each through the environment.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def check_tracking() -> None:
    """Fail fast, in one line, when the tracking server is unreachable."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import requests
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        raise DataError(f"cannot reach the MLflow tracking server at {redact(uri)}: "
                        f"{type(exc).__name__}") from None


def owner_tags(owner: Owner | None = None) -> dict[str, str]:
    """The tags that let a later process tell that this run's process died."""
    owner = owner or Owner.me()
    return {TAG_HOST: owner.host, TAG_PID: str(owner.pid), TAG_PID_STARTED: repr(owner.started)}


def _owner_of(tags: dict[str, str]) -> Owner | None:
    try:
        return Owner(tags[TAG_HOST], int(tags[TAG_PID]), float(tags[TAG_PID_STARTED]))
    except (KeyError, ValueError):
        return None


def close_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs of this experiment whose process (on this host) is dead;
    returns their ids. Each gets a note and the tag ``dc_mlops.orphaned`` saying why."""
    me = Owner.me()
    client = MlflowClient()
    try:
        runs = client.search_runs([experiment_id], max_results=1000, filter_string=(
            f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{me.host}'"))
    except mlflow.exceptions.MlflowException as exc:  # housekeeping never blocks a step
        log.warning("could not look for orphaned runs: %s", redact(str(exc).splitlines()[0]))
        return []
    closed = []
    for run in runs:
        owner = _owner_of(run.data.tags)
        if owner is None or not owner.is_dead():
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        why = (f"orphaned: its process ({owner}) died while the run was RUNNING (killed?); "
               f"marked FAILED at {when} by dc_mlops ({me})")
        note = run.data.tags.get("mlflow.note.content", "")
        client.set_tag(run.info.run_id, TAG_ORPHANED, why)
        client.set_tag(run.info.run_id, "mlflow.note.content", f"{note}\n\n{why}".strip())
        client.set_terminated(run.info.run_id, "FAILED")
        log.warning("run %s (%s) was left RUNNING by a dead process (%s): marked FAILED",
                    run.info.run_id, run.data.tags.get("mlflow.runName", ""), owner)
        closed.append(run.info.run_id)
    return closed


def own_run_links() -> None:
    """MLflow prints "View run <name> at: <tracking URI>/..." when a run ends on a server,
    password included; dc_mlops prints its own line (:func:`run_link`) instead."""
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def run_link(experiment_id: str, run_id: str) -> str:
    """The run's page on the tracking server, without credentials ("" for local stores)."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return ""
    return redact(f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")


def experiment_name(pd_name: str) -> str:
    return f"{EXPERIMENT_PREFIX}{Path(pd_name).stem if pd_name.endswith(('.yaml', '.yml', '.json')) else pd_name}"


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it if needed (races with another process are fine),
    with the tags that make it open as a dashboard in the MLflow UI (tracking.ui)."""
    from dc_mlops.tracking import ui
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        ui.ensure_dashboard(exp)
        return exp.experiment_id
    try:
        return ui.create_experiment(name, name.removeprefix(EXPERIMENT_PREFIX))
    except mlflow.exceptions.MlflowException:
        return client.get_experiment_by_name(name).experiment_id


def cache_key(step: str, settings: dict, data_digest: str) -> str:
    payload = json.dumps({"step": step, "settings": settings, "data": data_digest,
                          "version": dc_mlops.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def find_finished_run(experiment_id: str, step: str, key: str) -> str | None:
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_KEY}` = '{key}' "
                      "and attributes.status = 'FINISHED'",
        max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


@contextmanager
def tracked_run(experiment_id: str, step: str, run_name: str, key: str = "",
                tags: dict[str, str] | None = None, nested: bool = False
                ) -> Iterator[mlflow.ActiveRun]:
    """Start the step's run; FINISHED on success, FAILED (and re-raised) on any error.

    Under ``mlflow run`` the launcher's run (MLFLOW_RUN_ID) is used when it lives in this
    experiment; otherwise the work gets its own run here and the launcher's run is tagged
    with a pointer to it, so `mlflow run . -e train` always lands in the PD's experiment.
    """
    launcher = os.environ.get("MLFLOW_RUN_ID")
    own_run_links()
    if not nested:
        close_orphaned_runs(experiment_id)
    run_kwargs: dict = {"run_name": run_name, "nested": nested}
    if launcher and not nested and mlflow.active_run() is None:
        launcher_exp = MlflowClient().get_run(launcher).info.experiment_id
        if launcher_exp == experiment_id:
            run_kwargs = {"run_id": launcher}
        else:
            os.environ.pop("MLFLOW_RUN_ID")
    all_tags = {TAG_STEP: step, TAG_KEY: key, **owner_tags(), **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, **run_kwargs) as run:
        if "run_id" in run_kwargs:
            mlflow.set_tag("mlflow.runName", run_name)
        mlflow.set_tags(all_tags)
        if launcher and run.info.run_id != launcher:
            _point_launcher(launcher, run)
        try:
            yield run
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    link = run_link(experiment_id, run.info.run_id)
    if link:
        log.info("View run %s at: %s", run_name, link)


def _point_launcher(launcher: str, run: mlflow.ActiveRun) -> None:
    client = MlflowClient()
    client.set_tag(launcher, "dc_mlops.tracked_run_id", run.info.run_id)
    client.set_tag(launcher, "mlflow.note.content",
                   f"dc_mlops logged this step in experiment {run.info.experiment_id}, "
                   f"run {run.info.run_id}.")


def log_frame(frame: pd.DataFrame, artifact_path: str, name: str, fmt: str = "parquet") -> None:
    """A table as a Parquet or CSV artifact (written to a temp dir first, then logged)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path or None)


def log_artifacts(folder: Path, artifact_path: str) -> None:
    mlflow.log_artifacts(str(folder), artifact_path)


def set_tag(key: str, value: str) -> None:
    mlflow.set_tag(key, value)


def latest_finished_run(experiment_id: str, step: str) -> str | None:
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_STEP}` = '{step}' and attributes.status = 'FINISHED'",
        max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def finished_runs(experiment_id: str, step: str, max_results: int = 200) -> list:
    """FINISHED runs of a step in an experiment, newest first (MLflow Run objects)."""
    return MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_STEP}` = '{step}' and attributes.status = 'FINISHED'",
        max_results=max_results, order_by=["attributes.start_time DESC"])


def find_train_run(experiment_id: str, model: str, preprocess_run: str, seed: int) -> str | None:
    """A finished train run of this model and seed on this preprocessed data, if any."""
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_STEP}` = 'train' and tags.`dc_mlops.model` = '{model}' and "
                      f"tags.`dc_mlops.preprocess_run` = '{preprocess_run}' and "
                      f"params.seed = '{seed}' and attributes.status = 'FINISHED'",
        max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


@dataclass
class Preprocessed:
    """The splits and feature spec a preprocess run logged."""

    run_id: str
    splits: dict[str, pd.DataFrame]
    spec: dict
    digest: str
    source: str


def load_preprocessed(run_id: str, parts: tuple[str, ...] = ("train", "val", "calib", "test",
                                                               "known_bad")) -> Preprocessed:
    run = run_info(run_id, "preprocess run")
    if run.data.tags.get(TAG_STEP) != "preprocess" or run.info.status != "FINISHED":
        raise DataError(f"run {run_id} is not a finished preprocess run")
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(download(run_id, "features.json", tmp).read_text())
        splits = {p: pd.read_parquet(download(run_id, f"splits/{p}.parquet", tmp)) for p in parts}
    return Preprocessed(run_id, splits, spec, run.data.tags.get("dc_mlops.data_digest", ""),
                        run.data.params.get("data", ""))


def log_dataset_ref(run_id: str, data: Preprocessed, context: str) -> None:
    """Record which preprocessed data a run used, as an MLflow dataset input."""
    train = data.splits["train"]
    log_dataset(train[data.spec["feature_names"]], source=data.source or f"runs:/{run_id}/splits",
                name=f"{Path(data.source).name or 'preprocessed'}-train", digest=data.digest,
                context=context)


def log_params(params: dict) -> None:
    mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})


def log_run_metrics(run_id: str, metrics: dict[str, float]) -> None:
    """Metrics on a run that is not the active one (e.g. a finished candidate run)."""
    client = MlflowClient()
    for k, v in metrics.items():
        client.log_metric(run_id, k, float(v))


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_figure(fig, artifact_file: str) -> None:
    import matplotlib.pyplot as plt
    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_dataset(frame: pd.DataFrame, source: str, name: str, digest: str, context: str) -> None:
    """The input as an MLflow dataset (name, digest, source) so runs show what they saw."""
    with warnings.catch_warnings():  # "source can be interpreted in multiple ways": a path
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest)
        mlflow.log_input(dataset, context=context)


def download(run_id: str, artifact_path: str, dst: str | None = None) -> Path:
    """A run's artifact as a local file; DataError naming the run (or the artifact) when
    either does not exist."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                        dst_path=dst))
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in _MISSING:
            raise
    info = run_info(run_id)  # DataError when the run itself is missing
    raise DataError(f"run {run_id} ({info.data.tags.get(TAG_STEP, 'no dc_mlops step')}) has no "
                    f"artifact {artifact_path!r}")


def read_csv_artifact(run_id: str, path: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_csv(download(run_id, path, tmp))


#: a candidate run's artifact (evaluate) that main and promote read: per walk step, the
#: p-values of the failure LS known before it, what the combined GOOD cut-off of all PDs
#: rests on (:func:`dc_mlops.evaluation.combined.combined_walk`)
KNOWN_FAILURES = "known_failures.parquet"


def read_parquet_artifact(run_id: str, path: str, missing_ok: bool = False
                          ) -> pd.DataFrame | None:
    """A run's parquet artifact; with ``missing_ok``, None when the run has none (an
    artifact added after the run was logged)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return pd.read_parquet(download(run_id, path, tmp))
        except DataError:
            if missing_ok:
                return None
            raise


def run_info(run_id: str, what: str = "run"):
    """The run, or DataError naming it when it does not exist (the server failing is not a
    missing run: its exception goes through)."""
    if not run_id or not str(run_id).strip():
        raise DataError(f"no {what} id given")
    try:
        return MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in _MISSING:
            raise
    raise DataError(f"{what} {run_id!r} not found in {redact(mlflow.get_tracking_uri())}")

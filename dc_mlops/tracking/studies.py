"""MLflow side of tuning: the study's run and one nested run per Optuna trial.

Trial runs are written with :class:`MlflowClient` and nested under the study's run through
the ``mlflow.parentRunId`` tag, not with the fluent API: a trial may run in a worker process
where the study's run is not the active run (and where ``MLFLOW_RUN_ID`` of an enclosing
``mlflow run`` must not be picked up). The UI shows them as children of the study run, named
``trial-007 COMPLETE 0.9412``, ``trial-008 PRUNED``, ``trial-009 FAIL``.

Optuna states map to run statuses: COMPLETE → FINISHED, PRUNED → KILLED, FAIL → FAILED.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from dc_mlops.tracking.runs import TAG_PD, TAG_STEP, own_run_links, owner_tags

TAG_STUDY = "dc_mlops.study"
TAG_TRIAL = "dc_mlops.trial"
TAG_TRIAL_STATE = "dc_mlops.trial_state"
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def trial_run_name(number: int, state: str, value: float | None = None) -> str:
    return f"trial-{number:03d} {state}" + (f" {value:.4f}" if value is not None else "")


class TrialRun:
    """One trial's nested MLflow run: parameters, per-epoch curves, final metrics, state."""

    def __init__(self, run_id: str, number: int):
        self.run_id, self.number = run_id, number
        self.client = MlflowClient()

    @classmethod
    def start(cls, experiment_id: str, parent_run_id: str, number: int, params: dict,
              tags: dict[str, str]) -> "TrialRun":
        own_run_links()
        client = MlflowClient()
        run = client.create_run(experiment_id, run_name=trial_run_name(number, "RUNNING"), tags={
            MLFLOW_PARENT_RUN_ID: parent_run_id, TAG_STEP: "tune-trial",
            TAG_TRIAL: str(number), TAG_TRIAL_STATE: "RUNNING", **owner_tags(), **tags})
        client.log_batch(run.info.run_id, params=[
            Param(k, "" if v is None else str(v)) for k, v in params.items()])
        return cls(run.info.run_id, number)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), now, step) for k, v in metrics.items()])

    def finish(self, state: str, value: float | None = None, reason: str = "") -> None:
        """Close the run with the trial's final Optuna state (COMPLETE, PRUNED or FAIL)."""
        tags = [RunTag(MLFLOW_RUN_NAME, trial_run_name(self.number, state, value)),
                RunTag(TAG_TRIAL_STATE, state)]
        if reason:
            tags.append(RunTag("dc_mlops.trial_reason", reason[:4000]))
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, _RUN_STATUS.get(state, "FAILED"))


def mark_lost_trial(run_id: str, number: int, reason: str) -> None:
    """A trial whose worker died (heartbeat went stale): its run becomes FAIL, not RUNNING."""
    TrialRun(run_id, number).finish("FAIL", reason=reason)


def study_tags(study_name: str, pd_name: str, model: str) -> dict[str, str]:
    return {TAG_STUDY: study_name, TAG_PD: pd_name, "dc_mlops.model": model}


def active_run_id() -> str:
    return mlflow.active_run().info.run_id


def set_run_tags(run_id: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, v)


@contextmanager
def detached_from_launcher() -> Iterator[None]:
    """Start runs as top-level runs even under ``mlflow run`` (``MLFLOW_RUN_ID`` is set there
    and belongs to the study run): the retrained best model gets its own ``train`` run."""
    saved = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_RUN_ID"] = saved


def trial_runs(experiment_id: str, parent_run_id: str) -> list:
    """The nested trial runs of a study run (for reports and tests)."""
    return MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'",
        max_results=10_000)

"""The MLflow UI as a DC expert's dashboard: where a link lands and what it shows first.

MLflow 3.17 opens an experiment on its GenAI overview (traces, token usage) unless the page is
asked for the model-training workflow, and its runs table shows no metric column until the
user picks some. Both are fixed from here, with documented mechanisms only:

* the link carries ``workflowType=machine_learning`` (the UI's workflow switch, read from the
  URL before its local storage) and our experiments carry the tag
  ``mlflow.experimentKind = custom_model_development`` (what the UI's own "Machine learning"
  choice writes; older UIs read it instead of the URL);
* the link carries ``viewStateShareKey=<key>``: the UI's "share view" mechanism, which reads
  the view from the experiment tag ``mlflow.sharedViewState.<key>``, written here when the
  experiment is created (and refreshed by :func:`ensure_dashboard`). The view lists the
  candidate detectors of the walk-forward evaluations (a search filter on their step tag,
  which the user clears to see every run), the decisive metrics as the first columns, wide
  enough to read, best correct automation first;
* run names say what a run is (``rolling sparse_ae ZeroBias seed 0``), through one helper.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit, urlunsplit

from mlflow.tracking import MlflowClient


#: the runs-table columns a DC expert decides with, in reading order (SPEC §4.2 names)
DECISIVE_METRICS = ("test_correct_automation_rate", "test_automation_rate",
                    "test_good_as_bad_rate", "test_bad_as_good_rate", "test_contamination",
                    "test_roc_auc")
SORT_METRIC = DECISIVE_METRICS[0]
#: the step tag of a candidate run (one detector and seed of an evaluation): the rows of the
#: landing view. steps/evaluate.py tags its candidates with the same value (a test checks).
CANDIDATE_STEP = "evaluate-candidate"
#: pixels: the run name shows its seed; a metric column shows its whole name (about 8 px a
#: character in the UI's header font) and at least six digits of its value
NAME_WIDTH = 240
VIEW_KEY = "dc-mlops-decision"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"
#: where ``mlflow ui --port 5000`` serves a local store
LOCAL_UI = "http://127.0.0.1:5000"


def _column(kind: str, key: str) -> str:
    """The UI's canonical column key, e.g. ``metrics.`test_roc_auc```."""
    return f"{kind}.`{key}`"


def view_state() -> dict:
    """The runs-table view behind :data:`VIEW_KEY`: the UI's whole state, not a patch of it
    (the UI replaces its state with what it reads)."""
    from dc_mlops.tracking.runs import TAG_STEP
    metrics = [_column("metrics", m) for m in DECISIVE_METRICS]
    name = _column("attributes", "Run Name")
    return {
        # search facets: the candidates, best first
        "searchFilter": f'tags.{TAG_STEP} = "{CANDIDATE_STEP}"',
        "orderByKey": _column("metrics", SORT_METRIC), "orderByAsc": False,
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        # UI state: what the table shows (the run name already says model, PD and seed)
        "selectedColumns": metrics,
        "columnOrder": [name] + metrics,
        "columnWidths": {name: NAME_WIDTH} | {_column("metrics", m): max(140, 8 * len(m) + 10)
                                              for m in DECISIVE_METRICS},
        "runsExpanded": {}, "runsPinned": [],
        "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "FIRST_10_RUNS",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None,
        "groupsExpanded": {}, "autoRefreshEnabled": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0,
                                  "selectedXAxisMetricKey": ""},
    }


def experiment_tags(pd_name: str) -> dict[str, str]:
    """Tags that make an experiment open as a model-training dashboard."""
    return {
        KIND_TAG: KIND,
        VIEW_TAG: json.dumps(view_state(), separators=(",", ":")),
        NOTE_TAG: (f"dc_mlops runs for primary dataset {pd_name}. This view lists the candidate "
                   "detectors of each walk-forward evaluation (protocol, detector, PD, seed), "
                   f"best `{SORT_METRIC}` first: the share of LS decided automatically and "
                   "rightly, with the good->BAD and bad->GOOD rates beside it. Each candidate "
                   "holds its ROC, decision values, drift and the runs with failures; the "
                   "Production certifier is under Models. Clear the search filter to see the "
                   "preprocess, evaluate, promote and certify runs."),
    }


def create_experiment(name: str, pd_name: str) -> str:
    """Create the PD's experiment with the dashboard tags; returns its id."""
    return MlflowClient().create_experiment(name, tags=experiment_tags(pd_name))


def ensure_dashboard(experiment) -> None:
    """Add the dashboard tags to an experiment created before them (or by someone else);
    a no-op when they are there. ``experiment``: an mlflow Experiment entity."""
    pd_name = experiment.name.removeprefix("dc-mlops-")
    if experiment.lifecycle_stage != "active":
        return
    missing = {k: v for k, v in experiment_tags(pd_name).items()
               if k != NOTE_TAG and experiment.tags.get(k) != v}
    if NOTE_TAG not in experiment.tags:  # a user's own description is kept
        missing[NOTE_TAG] = experiment_tags(pd_name)[NOTE_TAG]
    client = MlflowClient()
    for key, value in missing.items():
        client.set_experiment_tag(experiment.experiment_id, key, value)


def ui_base_url(tracking_uri: str) -> str:
    """The UI's address: the tracking server itself, else a local ``mlflow ui``. Without
    the credentials a tracking URI may carry: a link is printed and pasted into a browser,
    which asks for them itself (a masked ``user:***@`` would be sent as the password)."""
    if tracking_uri.startswith(("http://", "https://")):
        parts = urlsplit(tracking_uri)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
    return LOCAL_UI


def runs_url(experiment_id: str, tracking_uri: str = "") -> str:
    """The link that lands on the experiment's runs table with the decisive metrics as
    columns, best correct automation first."""
    from dc_mlops.tracking.runs import tracking_uri as current
    base = ui_base_url(tracking_uri or current())
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def model_url(name: str, tracking_uri: str = "") -> str:
    """The registered model's page (its versions and the ``production`` alias)."""
    from dc_mlops.tracking.runs import tracking_uri as current
    base = ui_base_url(tracking_uri or current())
    return f"{base}/#/models/{name}?{urlencode({'workflowType': 'machine_learning'})}"


def open_hint(experiment_id: str, tracking_uri: str = "") -> list[str]:
    """What ``main`` prints last: how to start the UI (local store) and the exact link."""
    from dc_mlops.tracking.runs import tracking_uri as current
    uri = tracking_uri or current()
    lines = []
    if not uri.startswith(("http://", "https://")):
        lines.append(f"Start the MLflow UI:  mlflow ui --backend-store-uri {uri} --port 5000")
    lines.append(f"Open the results:     {runs_url(experiment_id, uri)}")
    return lines


def run_name(step: str, *, model: str = "", pd: str = "", seed: int | None = None,
             protocol: str = "", era: str = "", extra: str = "") -> str:
    """A run name a person recognises, the same shape for every step:
    ``train sparse_ae ZeroBias seed 0``, ``evaluate rolling ZeroBias``,
    ``certify all PDs 2018D``, ``promote ZeroBias``, ``tune vanilla_ae JetHT``."""
    where = "all PDs" if pd == "all" else pd
    parts = [step, model, protocol, where, era, "" if seed is None else f"seed {seed}", extra]
    return " ".join(p for p in parts if p)

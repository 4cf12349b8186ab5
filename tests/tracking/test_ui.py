"""The MLflow UI landing: experiments tagged as model-training dashboards, the exact link to
the runs table with the decisive metrics, and run names a person recognises."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from mlflow.tracking import MlflowClient

from dc_mlops.tracking import runs as tr
from dc_mlops.tracking import ui


def test_new_experiment_opens_as_a_model_training_dashboard(tracking):
    exp_id = tr.ensure_experiment("dc-mlops-ZeroBias")
    tags = MlflowClient().get_experiment(exp_id).tags
    assert tags[ui.KIND_TAG] == "custom_model_development"
    assert "ZeroBias" in tags[ui.NOTE_TAG]
    view = json.loads(tags[ui.VIEW_TAG])
    assert view["selectedColumns"] == [f"metrics.`{m}`" for m in ui.DECISIVE_METRICS]
    assert view["orderByKey"] == "metrics.`test_correct_automation_rate`"
    assert view["orderByAsc"] is False
    # the rows are the evaluation's candidates, the decisive metrics the first columns
    assert view["searchFilter"] == f'tags.{tr.TAG_STEP} = "{ui.CANDIDATE_STEP}"'
    assert view["columnOrder"] == ["attributes.`Run Name`"] + view["selectedColumns"]


def test_the_view_lists_the_candidates_evaluate_logs():
    from dc_mlops.steps.evaluate import CANDIDATE_STEP
    assert ui.CANDIDATE_STEP == CANDIDATE_STEP


def test_existing_experiment_gets_the_tags_and_keeps_its_description(tracking):
    client = MlflowClient()
    exp_id = client.create_experiment("dc-mlops-JetHT", tags={ui.NOTE_TAG: "my notes"})
    assert tr.ensure_experiment("dc-mlops-JetHT") == exp_id
    tags = client.get_experiment(exp_id).tags
    assert tags[ui.NOTE_TAG] == "my notes"
    assert ui.VIEW_TAG in tags and tags[ui.KIND_TAG] == ui.KIND


def test_runs_link_lands_on_the_runs_view_with_the_shared_columns():
    url = ui.runs_url("7", "http://user:secret@mlflow.example.org:5000/")
    parts = urlsplit(url)
    assert "secret" not in url
    assert parts.netloc == "mlflow.example.org:5000"
    path, _, query = parts.fragment.partition("?")
    assert path == "/experiments/7/runs"
    assert parse_qs(query) == {"workflowType": ["machine_learning"],
                               "viewStateShareKey": [ui.VIEW_KEY]}
    assert ui.VIEW_TAG == f"mlflow.sharedViewState.{ui.VIEW_KEY}"


def test_open_hint_says_how_to_start_the_ui_for_a_local_store():
    local = ui.open_hint("3", "sqlite:///mlflow.db")
    assert local[0].endswith("mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000")
    assert local[1].endswith("http://127.0.0.1:5000/#/experiments/3/runs?"
                             "workflowType=machine_learning&viewStateShareKey=dc-mlops-decision")
    server = ui.open_hint("3", "https://mlflow.cern.ch")
    assert len(server) == 1 and "https://mlflow.cern.ch/#/experiments/3/runs?" in server[0]
    assert ui.model_url("dc-certifier-JetHT", "sqlite:///x.db") == \
        "http://127.0.0.1:5000/#/models/dc-certifier-JetHT?workflowType=machine_learning"


def test_run_names_read_like_what_the_run_is():
    assert ui.run_name("train", model="sparse_ae", pd="ZeroBias", seed=0) == \
        "train sparse_ae ZeroBias seed 0"
    assert ui.run_name("evaluate", protocol="rolling", pd="ZeroBias") == "evaluate rolling ZeroBias"
    assert ui.run_name("certify", pd="all", era="2018D") == "certify all PDs 2018D"
    assert ui.run_name("promote", pd="JetHT") == "promote JetHT"

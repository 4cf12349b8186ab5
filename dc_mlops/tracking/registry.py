"""The model registry: one registered certifier per PD, its Production version and alias.

The alias ``production`` is the current mechanism (``models:/dc-certifier-JetHT@production``);
the ``Production`` stage is set too while this MLflow version still supports stages. After
every promotion the stages are reconciled with the alias, so two promotions racing each
other still leave exactly one Production version: the one the alias names.
"""
from __future__ import annotations

import warnings

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

ALIAS = "production"


def certifier_name(pd_name: str) -> str:
    return f"dc-certifier-{pd_name}"


def production_uri(pd_name: str) -> str:
    return f"models:/{certifier_name(pd_name)}@{ALIAS}"


def production_version(name: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def register(model_uri: str, name: str, tags: dict[str, str], description: str,
             run_id: str | None = None) -> ModelVersion:
    """A new version of ``name`` from a logged model (``models:/m-<id>``), linked to
    ``run_id`` when given (e.g. the training run). Through the client, not
    ``mlflow.register_model``, which prints "already exists" on stderr for every version."""
    client = MlflowClient()
    try:
        client.create_registered_model(name, description="dc_mlops certifier: per-LS decision "
                                       "values and GOOD/GREY/BAD for one primary dataset")
    except MlflowException:
        pass  # already there (or created by a concurrent promote)
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    return client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                       description=description, model_id=model_id)


def make_production(name: str, version: str) -> None:
    client = MlflowClient()
    client.set_registered_model_alias(name, ALIAS, version)
    reconcile_stages(name)


def reconcile_stages(name: str) -> None:
    """Stage Production for the alias's version only (stages are deprecated: no warnings)."""
    client = MlflowClient()
    current = production_version(name)
    if current is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mv in client.search_model_versions(f"name = '{name}'"):
            if str(mv.version) == str(current.version) and mv.current_stage != "Production":
                client.transition_model_version_stage(name, mv.version, "Production")
            elif str(mv.version) != str(current.version) and mv.current_stage == "Production":
                client.transition_model_version_stage(name, mv.version, "Archived")


def set_version_tags(name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))

"""The model registry: one registered certifier per PD, its Production version and alias.

The alias ``production`` is the current mechanism (``models:/dc-certifier-JetHT@production``);
the ``Production`` stage is set too while this MLflow version still supports stages, and is
reconciled with the alias after every change.

Two ``promote`` of one PD at the same time must not let the worse one win because it finished
last: the champion/challenger decision and the alias change happen under a registry-side lock
(:func:`promotion_lock`), a registered model ``<name>.promotion-lock`` whose creation is atomic
in the tracking store's database (a unique name), so it works with a local SQLite store and
with a shared tracking server alike. A lock whose holder died is taken over after
``STALE_SECONDS`` (or at once when its holder was a dead process on this host).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError

ALIAS = "production"
LOCK_SUFFIX = ".promotion-lock"
STALE_SECONDS = 600
WAIT_SECONDS = 900


def certifier_name(pd_name: str) -> str:
    return f"dc-certifier-{pd_name}"


def production_uri(pd_name: str) -> str:
    return f"models:/{certifier_name(pd_name)}@{ALIAS}"


def production_version(name: str) -> ModelVersion | None:
    """The version the ``production`` alias names, None when there is none (a tracking
    server that is down is not "no production version": its error propagates)."""
    try:
        return MlflowClient().get_model_version_by_alias(name, ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def version_uri(mv: ModelVersion) -> str:
    return f"models:/{mv.name}/{mv.version}"


@contextmanager
def promotion_lock(name: str) -> Iterator[None]:
    """Hold the registry-side lock of certifier ``name`` (see the module docstring)."""
    client = MlflowClient()
    lock = name + LOCK_SUFFIX
    me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    deadline = time.time() + WAIT_SECONDS
    while True:
        try:
            client.create_registered_model(lock, description=json.dumps(me))
            break
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and \
                    "already exists" not in str(exc):
                raise
        if _stale(client, lock):
            try:
                client.delete_registered_model(lock)
            except MlflowException:
                pass  # another waiter removed it first
            continue
        if time.time() > deadline:
            raise DataError(f"another promote of {name} has held the registry lock for over "
                            f"{WAIT_SECONDS} s; try again later")
        time.sleep(0.5)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(lock)
        except MlflowException:
            pass


def _stale(client: MlflowClient, lock: str) -> bool:
    try:
        holder = json.loads(client.get_registered_model(lock).description or "{}")
    except (MlflowException, ValueError):
        return False
    if time.time() - float(holder.get("time", 0)) > STALE_SECONDS:
        return True
    if holder.get("host") == socket.gethostname() and holder.get("pid"):
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def register(model_uri: str, name: str, tags: dict[str, str], description: str) -> ModelVersion:
    """A new version of ``name`` from a logged model (its source run stays the run that
    trained it); the registered model is created on first use."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description="dc_mlops certifier: per-LS "
                                           "decision values and GOOD/GREY/BAD for one PD")
        except MlflowException:
            pass  # created meanwhile by another process
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow's "already exists" chatter
        mv = mlflow.register_model(model_uri, name, tags=tags)
    client.update_model_version(name, mv.version, description=description)
    return mv


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

"""The objective: data → model → fit → one number, with pruning and one MLflow run per trial.

The number is ``val_roc_auc``: ROC AUC of the decision values on a labelled validation set
drawn from earlier runs only: the good LS of the ``val`` split and the ``known_bad`` split
(bad LS of the train/val/calib runs, with their origin, subsystem and failure scenario).
The test split is never read. Bad LS of the training runs are left out when there are at
least ``MIN_UNSEEN_BAD`` others: their conditions were seen in training, those of the val
runs were not, so mixing them measures era drift as much as detection (on a 3000-LS
simulated JetHT era with one val run, vanilla_ae trials scored ROC AUC 0.14, below chance,
against all known bad LS). Beside it each trial reports ``val_pr_auc``, the ROC AUC per
subsystem, and the good-LS reconstruction loss (``best_val_recon``, autoencoders) or the
mean good-LS decision value (baselines).

Conditions: each trial's detector fits the same conditions correction as ``train`` would
(the ``conditions`` setting of ``tune``, checked by
:func:`dc_mlops.data.correction.conditions_column`), so a tuned configuration is tuned for
the inputs it will see.

Pruning: an autoencoder reports ``-val_recon`` after every epoch (the study maximises, so
the intermediate value is "higher is better" too; the reconstruction term alone, so trials
with different λ compare on the same scale) and the pruner stops trials that lag the
median. A non-finite loss or score raises :class:`DivergedError`: the trial is recorded as
FAIL and the study goes on.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from dc_mlops.data.context import ls_order
from dc_mlops.data.correction import conditions_column, conditions_matrix
from dc_mlops.data.tables import feature_matrix
from dc_mlops.detectors import registry
from dc_mlops.errors import DataError
from dc_mlops.evaluation.metrics import detection_metrics
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.studies import TrialRun
from dc_mlops.tuning.spaces import suggest

log = logging.getLogger("dc_mlops")
OBJECTIVE_METRIC = "val_roc_auc"
#: fewest bad LS of non-training runs for the objective to use them alone (see TuningData)
MIN_UNSEEN_BAD = 20


class DivergedError(RuntimeError):
    """Training produced NaN/inf: the trial fails, the study continues."""


@dataclass
class TuningData:
    """Loaded once per process: training LS, good validation LS, the labelled set."""

    X_train: np.ndarray
    X_val: np.ndarray
    X_eval: np.ndarray
    y_eval: np.ndarray
    subsystem_eval: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    #: per-LS conditions of train / val / eval (None: no conditions correction)
    c_train: np.ndarray | None = None
    c_val: np.ndarray | None = None
    c_eval: np.ndarray | None = None
    conditions: str = "none"
    #: run context: LS on each side (0: off) and the run of each LS of train / val / eval
    context_ls: int = 0
    r_train: np.ndarray | None = None
    r_val: np.ndarray | None = None
    r_eval: np.ndarray | None = None

    def fit_kwargs(self) -> dict[str, Any]:
        """Feature names, conditions and run context of the training and validation LS, for
        ``fit``."""
        kw: dict[str, Any] = {"conditions": self.c_train, "conditions_val": self.c_val,
                              "feature_names": self.feature_names or None}
        if self.context_ls:
            kw.update(context_ls=self.context_ls, runs=self.r_train, runs_val=self.r_val)
        return kw

    @classmethod
    def load(cls, preprocess_run: str, conditions: str = "pileup",
             context_ls: int = 0) -> "TuningData":
        data = tr.load_preprocessed(preprocess_run, parts=("train", "val", "known_bad"))
        names = data.spec["feature_names"]
        val, bad = data.splits["val"], data.splits["known_bad"]
        unseen = bad[~bad["runId"].isin(data.splits["train"]["runId"])]
        if len(unseen) >= MIN_UNSEEN_BAD:
            bad = unseen  # bad LS of runs the detector never trained on, like the val LS
        else:
            log.warning("tune: only %d known bad LS outside the training runs; scoring trials "
                        "on all %d known bad LS (those of training runs included)",
                        len(unseen), len(bad))
        if len(bad) == 0:
            raise DataError(f"preprocess run {preprocess_run} has no known bad LS: tuning scores "
                            "trials on bad LS of earlier runs (Golden JSON / failure lists)")
        if len(val) == 0:
            raise DataError(f"preprocess run {preprocess_run} has an empty val split")
        # in (run, LS) order: run context reads each LS's neighbours in the same run
        val, bad, train = ls_order(val), ls_order(bad), ls_order(data.splits["train"])
        evalset = ls_order(pd.concat([val.assign(_y=0), bad.assign(_y=1)], ignore_index=True))
        y = evalset["_y"].to_numpy()
        subsystem = np.where(y == 0, "good", evalset["subsystem"].replace("", "unknown")
                             .to_numpy(dtype=object)).astype(object)
        col = conditions_column(conditions, train, {"validation": val, "known bad": bad},
                                where=f"preprocess run {preprocess_run}")

        def c(frame):
            return conditions_matrix(frame, col)

        return cls(X_train=feature_matrix(train, names, "train split"),
                   X_val=feature_matrix(val, names, "val split"),
                   X_eval=feature_matrix(evalset, names, "val and known_bad splits"), y_eval=y,
                   subsystem_eval=subsystem, feature_names=list(names),
                   c_train=c(train), c_val=c(val), c_eval=c(evalset), conditions=col,
                   context_ls=context_ls, r_train=train["runId"].to_numpy(),
                   r_val=val["runId"].to_numpy(), r_eval=evalset["runId"].to_numpy())


@dataclass
class Objective:
    """Callable for ``study.optimize``; one instance per worker, the data shared by trials."""

    model: str
    data: TuningData
    experiment_id: str
    parent_run_id: str
    seed: int = 0
    fixed: Mapping[str, Any] = field(default_factory=dict)
    worker: int = 0
    run_tags: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.model, self.fixed)
        trial.set_user_attr("detector_params", params)
        trial.set_user_attr("worker", self.worker)
        if registry.family(self.model) == "autoencoder":
            import keras
            keras.backend.clear_session()  # free the graphs of earlier trials
        seeded = {"seed": self.seed} if "seed" in registry.default_params(self.model) else {}
        detector = registry.build(self.model, **{**seeded, **params})
        run = TrialRun.start(self.experiment_id, self.parent_run_id, trial.number,
                             {"model": self.model, "trial": trial.number, "worker": self.worker,
                              **_flat(detector.get_params())}, dict(self.run_tags))
        trial.set_user_attr("mlflow_run_id", run.run_id)
        try:
            detector.fit(self.data.X_train, self.data.X_val, **self.data.fit_kwargs(),
                         on_epoch_end=_epoch_hook(trial, run))
            metrics = evaluate(detector, self.data)
        except optuna.TrialPruned as exc:
            run.finish("PRUNED", reason=str(exc))
            raise
        except BaseException as exc:
            run.finish("FAIL", reason=f"{type(exc).__name__}: {exc}")
            raise
        value = metrics[OBJECTIVE_METRIC]
        run.log_metrics(metrics)
        for key in ("val_pr_auc", "best_val_recon", "val_good_score_mean"):
            if key in metrics:
                trial.set_user_attr(key, metrics[key])
        run.finish("COMPLETE", value)
        return value


def _epoch_hook(trial: optuna.Trial, run: TrialRun):
    def hook(epoch: int, logs: dict[str, float]) -> None:
        run.log_metrics(logs, step=epoch)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            raise DivergedError(f"{', '.join(bad)} not finite at epoch {epoch}")
        recon = logs.get("val_recon", logs["val_loss"])
        trial.report(-recon, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val_recon {recon:.6g} at epoch {epoch} lags the median")
    return hook


def evaluate(detector, data: TuningData) -> dict[str, float]:
    """Detection metrics on the labelled validation set, and the good-LS loss beside them."""
    scores = detector.score(data.X_eval, data.c_eval, data.r_eval)
    if not np.isfinite(scores).all():
        raise DivergedError("non-finite decision values on the validation set")
    metrics = detection_metrics(data.y_eval, scores, "val", groups=data.subsystem_eval)
    metrics["fit_seconds"] = detector.fit_seconds_
    history = detector.history_
    if history.get("val_recon"):
        metrics["best_val_recon"] = float(np.min(history["val_recon"]))
        metrics["best_val_loss"] = float(np.min(history["val_loss"]))
        metrics["n_epochs"] = len(history["val_loss"])
    else:
        metrics["val_good_score_mean"] = float(scores[data.y_eval == 0].mean())
    return metrics


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    return {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in params.items()}

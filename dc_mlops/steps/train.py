"""The ``train`` step: fit one detector on good LS and track everything a DC expert compares.

One MLflow run per trained detector in the PD's experiment, with the same parameter and
metric names for every model: ``train_loss``/``val_loss`` per epoch (autoencoders),
``test_roc_auc``, ``test_pr_auc``, ``test_roc_auc_<subsystem>``, ``fit_seconds``,
``score_ls_per_second``, ``n_test_outside_conditions`` (test LS whose pile-up/luminosity
lies outside the range the conditions correction was fitted on), ``val_output_spread``
(autoencoders: how much the reconstruction varies across LS; ~0 is a collapsed model);
artifacts
``roc_curve.png``/``.csv``, ``score_distribution.png``,
``histogram_errors.png``/``.csv`` (where the model explains its score), ``scores.parquet``;
and the model itself as one pyfunc (``model/``).

Conditions (SPEC §3.1): ``conditions`` names the split column (``pileup``, ``lumi``) whose
dependence the detector removes first, or ``none``;
:func:`dc_mlops.data.correction.conditions_column` checks it (and falls back from an
unknown ``pileup`` to ``lumi`` with a logged note). The pyfunc's spec records the column,
and the model then reads it from its input.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops import console
from dc_mlops.data.correction import condition_columns, conditions_column, conditions_matrix
from dc_mlops.data.context import ls_order
from dc_mlops.data.features import histogram_of
from dc_mlops.data.tables import feature_matrix
from dc_mlops.detectors import registry
from dc_mlops.evaluation import plots
from dc_mlops.evaluation.metrics import detection_metrics, roc_table
from dc_mlops.settings import TrainSettings
from dc_mlops.steps.inputs import resolve_preprocess_run
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.ui import run_name
from dc_mlops.tracking.models import log_detector_model

log = logging.getLogger("dc_mlops")
STEP = "train"
SCORE_COLUMNS = ["runId", "lumiId", "label", "origin", "subsystem", "scenario", "era"]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]


def detector_params(s: TrainSettings) -> dict:
    """The step's shared knobs, passed only to detectors that have them."""
    accepted = registry.default_params(s.model)
    common = {"epochs": s.epochs, "batch_size": s.batch_size,
              "learning_rate": s.learning_rate, "seed": s.seed}
    # 0 means "the preset's value" (the detector's own default, or the study's numbers)
    return {k: v for k, v in common.items() if k in accepted and (k == "seed" or v)}


def _conditions(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    return conditions_matrix(frame, column)


def _runs(frame: pd.DataFrame) -> np.ndarray:
    """Each LS's run (read by detectors with run context, ignored by the others)."""
    return frame["runId"].to_numpy()


def run_train(s: TrainSettings, extra_params: dict | None = None) -> TrainResult:
    detector = registry.build(s.model, preset=s.preset, **detector_params(s),
                              **(extra_params or {}))
    pre_run = resolve_preprocess_run(s.pd, s.preprocess_run)
    data = tr.load_preprocessed(pre_run)
    spec = data.spec
    names = spec["feature_names"]
    # run context reads each LS's neighbours: every split in (run, LS) order
    train, val, test = (ls_order(data.splits[p]) for p in ("train", "val", "test"))
    X_train = feature_matrix(train, names, "train split")
    X_val = feature_matrix(val, names, "val split")
    cond = conditions_column(s.conditions, train, {"validation": val, "test": test},
                             where=f"preprocess run {pre_run}")
    context = {"context_ls": s.context_ls, "runs": _runs(train), "runs_val": _runs(val)} \
        if s.context_ls else {}
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    params = {"model": s.model, "family": registry.family(s.model), "pd": s.pd,
              "preprocess_run": pre_run, "n_features": len(names),
              "representation": spec["representation"], "conditions": cond,
              "context_ls": s.context_ls, "preset": s.preset,
              **{k: json.dumps(v) if isinstance(v, list) else v
                 for k, v in detector.get_params().items()}}
    with tr.tracked_run(exp, STEP, run_name(STEP, model=s.model, pd=s.pd, seed=s.seed),
                        tags={tr.TAG_PD: s.pd, "dc_mlops.model": s.model,
                              "dc_mlops.preprocess_run": pre_run}) as run:
        tr.log_params(params)
        tr.log_dataset_ref(pre_run, data, context="training")
        # the bar counts up to the epoch limit; early stopping may end it sooner
        with console.progress(int(getattr(detector, "epochs", 0)), f"train {s.model}",
                              "epoch") as bar:
            detector.fit(X_train, X_val, conditions=_conditions(train, cond),
                         conditions_val=_conditions(val, cond), **context,
                         feature_names=names, on_epoch_end=console.epoch_hook(
                             bar, then=lambda epoch, logs: tr.log_metrics(logs, epoch)))
        c_test = _conditions(test, cond)
        t0 = time.perf_counter()
        scores = detector.score(feature_matrix(test, names, "test split"), c_test, _runs(test))
        score_seconds = time.perf_counter() - t0
        judged = test["judged"].to_numpy(bool) if "judged" in test else None
        metrics = detection_metrics(test["label"].to_numpy(), scores, "test", judged,
                                    test["subsystem"].replace("", "unknown"))
        metrics.update(fit_seconds=detector.fit_seconds_,
                       score_ls_per_second=len(test) / max(score_seconds, 1e-9),
                       n_epochs=len(detector.history_.get("val_loss", [])),
                       n_train=len(X_train), n_test=len(test),
                       n_test_outside_conditions=int(
                           detector.conditions_outside(c_test).sum()) if c_test is not None else 0)
        if detector.history_.get("val_loss"):
            metrics["best_val_loss"] = float(np.min(detector.history_["val_loss"]))
        if hasattr(detector, "output_spread"):  # ~0: a collapsed, constant-output model
            metrics["val_output_spread"] = detector.output_spread(
                X_val, _conditions(val, cond), _runs(val))
        tr.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        _log_artifacts(detector, test, scores, names, s, c_test)
        model_spec = {**spec, "model": s.model, "conditions": cond,
                      "conditions_range": detector.conditions_range_,
                      "condition_columns": condition_columns(train.columns, cond),
                      "context_ls": detector.context_ls}
        uri = log_detector_model(detector, model_spec, val.head(50))
        tr.set_tag("dc_mlops.model_uri", uri)
    log.info("train %s: test ROC AUC %.4f, PR AUC %.4f, fit %.1f s, scoring %.0f LS/s",
             s.model, metrics.get("test_roc_auc", float("nan")),
             metrics.get("test_pr_auc", float("nan")), metrics["fit_seconds"],
             metrics["score_ls_per_second"])
    return TrainResult(run.info.run_id, uri, metrics)


def _log_artifacts(detector, test: pd.DataFrame, scores: np.ndarray, names: list[str],
                   s: TrainSettings, c_test: np.ndarray | None) -> None:
    labels = test["label"].to_numpy()
    roc = roc_table(labels, scores, test["judged"].to_numpy(bool) if "judged" in test else None)
    tr.log_frame(roc, "", "roc_curve.csv", fmt="csv")
    tr.log_figure(plots.roc_plot({s.model: roc}, f"{s.model} on {s.pd}: test ROC"), "roc_curve.png")
    tr.log_figure(plots.score_distribution(scores, labels, f"{s.model} on {s.pd}: test decision values",
                                           groups=test["subsystem"].replace("", "unknown").to_numpy()),
                  "score_distribution.png")
    out = test[[c for c in SCORE_COLUMNS if c in test.columns]].copy()
    out["score"] = scores
    tr.log_frame(out, "", "scores.parquet")
    if detector.supports_explain:
        contrib = pd.DataFrame(detector.explain(feature_matrix(test, names, "test split"),
                                                c_test, _runs(test)), columns=names)
        per_hist = contrib.T.groupby(histogram_of).sum().T
        table = pd.DataFrame({"good": per_hist[labels == 0].mean(), "bad": per_hist[labels == 1].mean()})
        table.index.name = "histogram"
        tr.log_frame(table.reset_index(), "", "histogram_errors.csv", fmt="csv")
        tr.log_figure(plots.histogram_errors(table, f"{s.model} on {s.pd}: which histograms drive "
                                             "the score"), "histogram_errors.png")

"""The ``evaluate`` step: compare detectors trained on the same data, over seeds.

For every (model, seed) it reuses the finished train run (or trains the missing one), sets the
grey zone on data that never touches the test set (BAD cut-off: conformal on the ``calib``
split; GOOD cut-off: the ``known_bad`` split), and measures on the test split the error rates,
the automation rate, the AUCs and the era drift. Logged as one evaluation run with
``comparison.csv``/``.md`` (mean and spread over seeds), ``candidates.csv`` (one row per
train run with its cut-offs: what ``promote`` reads), ``roc_curves.png`` (overlaid),
``score_distributions/<model>.png`` (both cut-offs drawn), ``drift.csv`` and
``runs_with_failures/*.png`` (score along runs that contain failures, best model).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.data.tables import feature_matrix
from dc_mlops.evaluation import plots
from dc_mlops.evaluation.drift import era_drift
from dc_mlops.evaluation.greyzone import fit_cutoffs, grey_zone_metrics
from dc_mlops.evaluation.metrics import detection_metrics, roc_table
from dc_mlops.settings import EvaluateSettings, TrainSettings
from dc_mlops.steps.train import resolve_preprocess_run, run_train
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import input_columns, load_model

log = logging.getLogger("dc_mlops")
STEP = "evaluate"
SUMMARY = ["test_automation_rate", "test_bad_as_good_rate", "test_good_as_bad_rate",
           "test_roc_auc", "test_pr_auc"]


@dataclass(frozen=True)
class EvaluateResult:
    run_id: str
    candidates: pd.DataFrame
    comparison: pd.DataFrame


def train_run_for(s: EvaluateSettings, pre_run: str, model: str, seed: int) -> str:
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    found = tr.find_train_run(exp, model, pre_run, seed)
    if found:
        return found
    log.info("evaluate: training %s seed %d (no finished run to reuse)", model, seed)
    return run_train(TrainSettings(model=model, pd=s.pd, seed=seed, epochs=s.epochs,
                                   conditions=s.conditions,
                                   preprocess_run=pre_run)).run_id


def score_parts(model_uri: str, parts: dict[str, pd.DataFrame], names: list[str]
                ) -> dict[str, np.ndarray]:
    model = load_model(model_uri)
    cols = input_columns(model.unwrap_python_model().spec)  # features (+ conditions)
    return {k: model.predict(v[cols].astype(np.float64))["score"].to_numpy()
            if len(v) else np.zeros(0) for k, v in parts.items()}


def run_evaluate(s: EvaluateSettings) -> EvaluateResult:
    pre_run = resolve_preprocess_run(s.pd, s.preprocess_run)
    data = tr.load_preprocessed(pre_run, parts=("calib", "test", "known_bad"))
    names = data.spec["feature_names"]
    for part in ("calib", "test"):
        feature_matrix(data.splits[part].head(1), names, f"{part} split")
    test = data.splits["test"]
    rows, scored = [], {}
    for model in s.model_list:
        for seed in s.seed_list:
            run_id = train_run_for(s, pre_run, model, seed)
            model_uri = tr.run_info(run_id).data.tags["dc_mlops.model_uri"]
            sc = score_parts(model_uri, data.splits, names)
            cut = fit_cutoffs(sc["calib"], sc["known_bad"], s.max_good_as_bad, s.max_bad_as_good)
            m = detection_metrics(test["label"].to_numpy(), sc["test"], "test")
            m.update(grey_zone_metrics(sc["test"], test["label"].to_numpy(), cut))
            rows.append({"model": model, "seed": seed, "train_run_id": run_id,
                         "model_uri": model_uri,
                         "t_good": cut.t_good, "t_bad": cut.t_bad, **m})
            scored[(model, seed)] = (sc, cut)
            log.info("evaluate %s seed %d: automation %.3f, bad->GOOD %.4f, good->BAD %.4f, "
                     "ROC AUC %.4f", model, seed, m["test_automation_rate"],
                     m["test_bad_as_good_rate"], m["test_good_as_bad_rate"],
                     m.get("test_roc_auc", float("nan")))
    candidates = pd.DataFrame(rows)
    comparison = _comparison(candidates)
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    with tr.tracked_run(exp, STEP, f"evaluate-{len(s.model_list)}-models",
                        tags={tr.TAG_PD: s.pd, "dc_mlops.preprocess_run": pre_run}) as run:
        tr.log_params({"pd": s.pd, "models": s.models, "seeds": s.seeds,
                       "max_bad_as_good": s.max_bad_as_good, "max_good_as_bad": s.max_good_as_bad,
                       "preprocess_run": pre_run})
        tr.log_metrics({f"{r.model}.{k}_mean": getattr(r, f"{k}_mean")
                        for r in comparison.itertuples() for k in SUMMARY
                        if hasattr(r, f"{k}_mean") and np.isfinite(getattr(r, f"{k}_mean"))})
        _log_artifacts(s, test, candidates, comparison, scored)
    return EvaluateResult(run.info.run_id, candidates, comparison)


def _comparison(candidates: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in SUMMARY if c in candidates.columns]
    agg = candidates.groupby("model", sort=False)[cols].agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg["n_seeds"] = candidates.groupby("model", sort=False).size()
    return agg.reset_index().sort_values(["test_automation_rate_mean", "test_roc_auc_mean"],
                                         ascending=False)


def _markdown(comparison: pd.DataFrame) -> str:
    head = ["model", "automation rate", "bad→GOOD", "good→BAD", "ROC AUC", "PR AUC", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in comparison.itertuples():
        cell = lambda k: f"{getattr(r, k + '_mean'):.4f} ± {np.nan_to_num(getattr(r, k + '_std')):.4f}"  # noqa: E731
        lines.append(f"| {r.model} | {cell('test_automation_rate')} | {cell('test_bad_as_good_rate')} | "
                     f"{cell('test_good_as_bad_rate')} | {cell('test_roc_auc')} | "
                     f"{cell('test_pr_auc')} | {r.n_seeds} |")
    return "\n".join(lines) + "\n"


def _log_artifacts(s: EvaluateSettings, test: pd.DataFrame, candidates: pd.DataFrame,
                   comparison: pd.DataFrame, scored: dict) -> None:
    labels = test["label"].to_numpy()
    tr.log_frame(comparison, "", "comparison.csv", fmt="csv")
    tr.log_text(_markdown(comparison), "comparison.md")
    tr.log_frame(candidates, "", "candidates.csv", fmt="csv")
    first_seed = s.seed_list[0]
    tr.log_figure(plots.roc_plot({m: roc_table(labels, scored[(m, first_seed)][0]["test"])
                                  for m in s.model_list}, f"{s.pd}: test ROC, seed {first_seed}"),
                  "roc_curves.png")
    drift = []
    for m in s.model_list:
        sc, cut = scored[(m, first_seed)]
        tr.log_figure(plots.score_distribution(
            sc["test"], labels, f"{m} on {s.pd}: test decision values and the grey zone",
            cutoffs={"t_good": cut.t_good, "t_bad": cut.t_bad},
            groups=test["subsystem"].replace("", "unknown").to_numpy()),
            f"score_distributions/{m}.png")
        d = era_drift(sc["calib"], sc["test"], test["era"].to_numpy(), labels)
        drift.append(d.assign(model=m))
    tr.log_frame(pd.concat(drift), "", "drift.csv", fmt="csv")
    best = comparison.iloc[0]["model"]
    sc, cut = scored[(best, first_seed)]
    frame = test.assign(score=sc["test"])
    bad_runs = frame.loc[frame["label"] == 1, "runId"].value_counts().index[:3]
    for run in bad_runs:
        tr.log_figure(plots.score_along_run(
            frame[frame["runId"] == run].sort_values("lumiId"),
            f"{best}: decision value along run {run}", {"t_good": cut.t_good, "t_bad": cut.t_bad}),
            f"runs_with_failures/{best}_run{run}.png")

"""The ``promote`` step: champion/challenger for the Production certifier of a PD.

The challenger is the best candidate of an evaluation run (by ``metric``, default the
automation rate at the target error rates; ties broken by ROC AUC). The champion, the current
``production`` version of ``dc-certifier-<PD>``, is scored with its own embedded cut-offs on
the same held-out test LS. The challenger is registered and made Production only if it is
strictly better; the decision and both sets of figures are written on the promote run and on
the new version. The registered model carries everything certify needs: the detector with
its scaler, the cut-offs, the calibration scores (for drift checks) and the feature ranges.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError
from dc_mlops.evaluation.greyzone import decision_metrics
from dc_mlops.evaluation.metrics import detection_metrics
from dc_mlops.settings import PromoteSettings
from dc_mlops.tracking import registry as reg
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import (input_columns, load_detector_and_spec, load_model,
                                      log_detector_model)

log = logging.getLogger("dc_mlops")
STEP = "promote"
MAX_CALIBRATION_SCORES = 20000


@dataclass(frozen=True)
class PromoteResult:
    run_id: str
    promoted: bool
    reason: str
    version: str | None


def _figures(row: dict, metric: str) -> tuple[float, float]:
    return float(row.get(metric, np.nan)), float(row.get("test_roc_auc", np.nan))


def champion_figures(uri: str, test: pd.DataFrame, names: list[str]) -> dict[str, float]:
    model = load_model(uri)
    cols = input_columns(model.unwrap_python_model().spec)  # features (+ conditions)
    out = model.predict(test[cols].astype(np.float64))
    labels = test["label"].to_numpy()
    figures = detection_metrics(labels, out["score"].to_numpy(), "test")
    figures.update(decision_metrics(out["decision"].to_numpy(), labels, "test"))
    return figures


def run_promote(s: PromoteSettings) -> PromoteResult:
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    eval_run = s.evaluation_run or tr.latest_finished_run(exp, "evaluate")
    if not eval_run:
        raise DataError(f"no finished evaluate run for PD {s.pd}: run `evaluate` first")
    candidates = tr.read_csv_artifact(eval_run, "candidates.csv")
    if s.metric not in candidates.columns:
        known = [c for c in candidates.columns if c.startswith("test_")]
        raise DataError(f"metric {s.metric!r} is not in the evaluation; use one of {', '.join(known)}")
    best = candidates.sort_values([s.metric, "test_roc_auc"], ascending=False).iloc[0].to_dict()
    info = tr.run_info(eval_run)
    pre_run = info.data.tags["dc_mlops.preprocess_run"]
    data = tr.load_preprocessed(pre_run)
    name = reg.certifier_name(s.pd)
    champion = reg.production_version(name)
    challenger = _figures(best, s.metric)
    promote, reason, champ = _decide(champion, best, challenger, data, s.metric)
    with tr.tracked_run(exp, STEP, f"promote-{best['model']}",
                        tags={tr.TAG_PD: s.pd, "dc_mlops.decision": "promoted" if promote else "kept",
                              "dc_mlops.reason": reason}) as run:
        tr.log_params({"pd": s.pd, "metric": s.metric, "evaluation_run": eval_run,
                       "challenger_train_run": best["train_run_id"], "challenger_model": best["model"],
                       "champion_version": champion.version if champion else ""})
        tr.log_metrics({f"challenger_{s.metric}": challenger[0], "challenger_test_roc_auc": challenger[1],
                        **({f"champion_{s.metric}": champ[0], "champion_test_roc_auc": champ[1]}
                           if champ else {})})
        version = _register(s, best, data, eval_run, reason, name) if promote else None
    log.info("promote %s: %s (%s)", name, f"version {version} is Production" if promote else
             "champion kept", reason)
    return PromoteResult(run.info.run_id, promote, reason, version)


def _decide(champion, best: dict, challenger: tuple[float, float], data, metric: str):
    if champion is None:
        return True, "no production certifier yet", None
    if champion.tags.get("dc_mlops.train_run_id") == best["train_run_id"]:
        return False, "the best candidate already is the production certifier", None
    try:
        figs = champion_figures(f"models:/{champion.name}/{champion.version}",
                                data.splits["test"], data.spec["feature_names"])
    except DataError as exc:
        return True, f"champion cannot score this data ({exc})", None
    champ = _figures(figs, metric)
    if np.nan_to_num(challenger[0], nan=-1) > np.nan_to_num(champ[0], nan=-1) or (
            challenger[0] == champ[0] and challenger[1] > champ[1]):
        return True, (f"challenger {metric}={challenger[0]:.4f} (ROC AUC {challenger[1]:.4f}) beats "
                      f"champion v{champion.version} {champ[0]:.4f} ({champ[1]:.4f})"), champ
    return False, (f"challenger {metric}={challenger[0]:.4f} (ROC AUC {challenger[1]:.4f}) does not "
                   f"beat champion v{champion.version} {champ[0]:.4f} ({champ[1]:.4f})"), champ


def _register(s: PromoteSettings, best: dict, data, eval_run: str, reason: str, name: str) -> str:
    detector, spec = load_detector_and_spec(best["model_uri"])
    names = spec["feature_names"]
    fitted = pd.concat([data.splits[p][names] for p in ("train", "val", "calib")])
    calib = load_model(best["model_uri"]).predict(data.splits["calib"][names].astype(np.float64))
    scores = np.sort(calib["score"].to_numpy())
    if len(scores) > MAX_CALIBRATION_SCORES:
        scores = scores[np.linspace(0, len(scores) - 1, MAX_CALIBRATION_SCORES).astype(int)]
    spec.update(
        thresholds={"t_good": float(best["t_good"]), "t_bad": float(best["t_bad"])},
        calibration_scores=scores.tolist(),
        feature_min=fitted.min().tolist(), feature_max=fitted.max().tolist(),
        train_run_id=best["train_run_id"], evaluation_run=eval_run, pd=s.pd)
    uri = log_detector_model(detector, spec, data.splits["calib"].head(50), name="certifier")
    tags = {"dc_mlops.train_run_id": best["train_run_id"], "dc_mlops.model": best["model"],
            "dc_mlops.evaluation_run": eval_run, "dc_mlops.reason": reason,
            f"dc_mlops.{s.metric}": f"{best[s.metric]:.6f}",
            "dc_mlops.test_roc_auc": f"{best['test_roc_auc']:.6f}",
            "dc_mlops.t_good": f"{best['t_good']:.6g}", "dc_mlops.t_bad": f"{best['t_bad']:.6g}"}
    mv = reg.register(uri, name, tags, f"{best['model']} (train run {best['train_run_id']}): {reason}")
    reg.make_production(name, str(mv.version))
    return str(mv.version)

"""Detection metrics on labelled LS (label 1 = bad): plain numpy/scikit-learn, no MLflow.

A PD's detector is judged on the bad LS it can answer for (``judged``: failures of the
subsystems the PD certifies; SPEC §2.5): ``<prefix>_roc_auc`` and ``<prefix>_pr_auc`` compare
those with the good LS, ``<prefix>_roc_auc_all`` every bad LS with the good LS. Per-group AUCs
(subsystem, scenario) compare the bad LS of one group with all good LS, so a DC expert sees
which failures a model catches and which it misses.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def metric_key(text: str) -> str:
    """A subsystem or scenario name as an MLflow-safe metric suffix."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", text or "unknown").strip("_").lower() or "unknown"


def _auc(labels: np.ndarray, scores: np.ndarray, keep: np.ndarray) -> tuple[float, float]:
    keep = keep & np.isfinite(scores)  # LS without a score (DCS-bad, low statistics)
    y = labels[keep]
    if len(y) == 0 or y.min() == y.max():
        return float("nan"), float("nan")  # one class only: undefined, not missing
    return float(roc_auc_score(y, scores[keep])), float(average_precision_score(y, scores[keep]))


def detection_metrics(labels: np.ndarray, scores: np.ndarray, prefix: str = "test",
                      judged: np.ndarray | None = None, groups: np.ndarray | None = None
                      ) -> dict[str, float]:
    """ROC/PR AUC on judged bad LS, ROC AUC on all bad LS, and ROC AUC per group of bad LS.

    ``judged`` None: every bad LS is judged. LS with label -1 (unknown) are ignored.
    """
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    good, bad = labels == 0, labels == 1
    judged_bad = bad if judged is None else bad & np.asarray(judged, dtype=bool)
    out: dict[str, float] = {}
    out[f"{prefix}_roc_auc"], out[f"{prefix}_pr_auc"] = _auc(labels, scores, good | judged_bad)
    out[f"{prefix}_roc_auc_all"] = _auc(labels, scores, good | bad)[0]
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        for g in sorted(set(groups[bad])):
            out[f"{prefix}_roc_auc_{metric_key(g)}"] = _auc(labels, scores,
                                                            good | (bad & (groups == g)))[0]
    return out


def roc_table(labels: np.ndarray, scores: np.ndarray, judged: np.ndarray | None = None
              ) -> pd.DataFrame:
    """The ROC curve (judged bad LS vs good LS) as a table: one row per threshold."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    keep = ((labels == 0) | ((labels == 1) & (True if judged is None
                                               else np.asarray(judged, dtype=bool)))) \
        & np.isfinite(scores)
    fpr, tpr, thr = roc_curve(labels[keep], scores[keep])
    return pd.DataFrame({"threshold": thr, "false_positive_rate": fpr, "true_positive_rate": tpr})


def run_rank_spread(runs: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> float:
    """Spread (max - min) over runs of the median score rank of their good LS, in [0, 1].

    A detector that learnt run conditions instead of failures ranks whole runs high or low
    (the issue saw 0.16-0.92); one that scores good LS alike keeps every run near 0.5.
    """
    good = np.asarray(labels) == 0
    s = pd.Series(np.asarray(scores)[good]).rank(pct=True).to_numpy()
    med = pd.Series(s).groupby(np.asarray(runs)[good]).median()
    return float(med.max() - med.min()) if len(med) else float("nan")

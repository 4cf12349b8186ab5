"""Detection metrics on labelled LS (label 1 = bad): plain numpy/scikit-learn, no MLflow.

Per-subsystem AUCs compare the bad LS of one subsystem against all good LS of the same set,
so a DC expert sees which failures a model catches and which it misses.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def metric_key(text: str) -> str:
    """A subsystem or scenario name as an MLflow-safe metric suffix."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", text or "unknown").strip("_").lower() or "unknown"


def detection_metrics(labels: np.ndarray, scores: np.ndarray, prefix: str = "test",
                      groups: pd.Series | None = None) -> dict[str, float]:
    """ROC AUC, PR AUC, and ROC AUC per group of bad LS (e.g. subsystem)."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, float] = {}
    if len(labels) == 0 or labels.min() == labels.max():
        # one class only (e.g. a test split without bad LS): AUCs are undefined, not missing
        return {f"{prefix}_roc_auc": float("nan"), f"{prefix}_pr_auc": float("nan")}
    out[f"{prefix}_roc_auc"] = float(roc_auc_score(labels, scores))
    out[f"{prefix}_pr_auc"] = float(average_precision_score(labels, scores))
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        good = labels == 0
        for g in sorted(set(groups[labels == 1])):
            m = good | ((labels == 1) & (groups == g))
            out[f"{prefix}_roc_auc_{metric_key(g)}"] = float(roc_auc_score(labels[m], scores[m]))
    return out


def roc_table(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The ROC curve as a table: one row per threshold (what roc_curve.csv holds)."""
    fpr, tpr, thr = roc_curve(np.asarray(labels).astype(int), scores)
    return pd.DataFrame({"threshold": thr, "false_positive_rate": fpr, "true_positive_rate": tpr})

"""Era drift: how the good-LS score distribution moves from era to era (SPEC §4).

A model trained on earlier eras meets new pile-up, beam-spot and detector conditions; the
first sign is its good LS scoring higher than the calibration LS did. Reported per era as
score quantiles and the Kolmogorov-Smirnov distance to the calibration scores.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp


#: the upward KS distance of new scores to the calibration scores beyond which the era is out
#: of the certifier's domain (loose: a block with a few per cent of failures stays in)
MAX_SCORE_KS = 0.3


def era_drift(calib_scores: np.ndarray, scores: np.ndarray, eras: np.ndarray,
              labels: np.ndarray) -> pd.DataFrame:
    """One row for the calibration LS and one per era of the good LS in ``scores``."""
    calib_scores = np.asarray(calib_scores, dtype=np.float64)
    rows = [_row("calibration", calib_scores, calib_scores)]
    eras = np.asarray(eras).astype(str)
    good = np.asarray(labels) == 0
    for era in sorted(set(eras[good])):
        rows.append(_row(era or "unknown", scores[good & (eras == era)], calib_scores))
    return pd.DataFrame(rows)


def _row(name: str, s: np.ndarray, ref: np.ndarray) -> dict:
    ks = ks_2samp(s, ref) if len(s) and len(ref) else None
    return {"era": name, "n_good_ls": len(s), "median": float(np.median(s)),
            "q90": float(np.quantile(s, 0.9)), "q99": float(np.quantile(s, 0.99)),
            "median_ratio_to_calib": float(np.median(s) / max(np.median(ref), 1e-300)),
            "ks_distance": float(ks.statistic) if ks is not None else 0.0}


def upward_ks(scores: np.ndarray, reference: np.ndarray) -> float:
    """One-sided KS distance: how far the new scores lie *above* the reference ones, the
    largest ``F_ref(x) - F_new(x)`` (0 when they lie below).

    One-sided because only an era that looks more anomalous than the calibration LS is
    outside what the cut-offs were set for. Scores lower than the calibration's are what a
    certifier fitted on its whole window gives beside the cross-fitted calibration scores
    of models that saw part of it (simulated 2018D, 2 run folds: new good LS at 0.83-0.91 of
    the calibration median, two-sided KS up to 0.31, on an era like its history)."""
    if not len(scores) or not len(reference):
        return 0.0
    # scipy's one-sided statistic with the reference first: max(F_ref - F_new); asymptotic
    # p-value, as only the statistic is used (the exact one is slow on large eras)
    d = ks_2samp(np.asarray(reference, dtype=np.float64), np.asarray(scores, dtype=np.float64),
                 alternative="greater", method="asymp").statistic
    return float(max(d, 0.0))


def domain_report(X: np.ndarray, names: list[str], feature_min: list[float],
                  feature_max: list[float], scores: np.ndarray, calib_scores: np.ndarray,
                  conditions: np.ndarray | None = None,
                  conditions_range: tuple[float, float] | None = None,
                  max_ks: float = MAX_SCORE_KS, max_outside: float = 0.25) -> dict:
    """Is a new era within the model's domain (SPEC §7)? Feature ranges, conditions range
    and score drift against the calibration LS (upward: :func:`upward_ks`).

    A LS is outside when any feature leaves the range seen in the fitted good LS (widened by
    10 % of that range), or when its condition (pile-up or lumi) leaves the fitted range; the
    era is out of domain when more than ``max_outside`` of its LS are outside either way, or
    when its scores' KS distance to the calibration scores exceeds ``max_ks``. ``reasons``
    says which, in words a DC expert can act on. The limits are loose on purpose: failures
    (a few per cent of LS) leave the ranges too, and must not make an era look foreign; a
    shifted era moves most of its LS.
    """
    lo, hi = np.asarray(feature_min), np.asarray(feature_max)
    pad = 0.1 * (hi - lo)
    outside = (X < lo - pad) | (X > hi + pad)
    per_feature = outside.mean(axis=0) if len(X) else np.zeros(len(names))
    worst = np.argsort(-per_feature)[:5]
    ks = upward_ks(scores, calib_scores)
    share = float(outside.any(axis=1).mean()) if len(X) else 0.0
    c_share = 0.0
    if conditions is not None and conditions_range is not None and len(conditions):
        c = np.asarray(conditions, dtype=np.float64)
        c_share = float(np.mean((c < conditions_range[0]) | (c > conditions_range[1])))
    reasons = []
    if share > max_outside:
        reasons.append(f"{share:.1%} of LS leave the trained feature ranges")
    if c_share > max_outside:
        reasons.append(f"{c_share:.1%} of LS lie outside the fitted conditions range "
                       f"{conditions_range[0]:.3g}-{conditions_range[1]:.3g}")
    if ks > max_ks:
        reasons.append(f"the score distribution moved from the calibration LS (KS distance "
                       f"{ks:.2f} > {max_ks})")
    return {
        "share_ls_outside_ranges": share,
        "share_ls_outside_conditions": c_share,
        "features_most_outside": {names[i]: float(per_feature[i]) for i in worst
                                  if per_feature[i] > 0},
        "score_ks_distance_to_calibration": ks,
        "median_score_ratio_to_calibration": float(np.median(scores) / max(np.median(
            calib_scores), 1e-300)) if len(scores) else 0.0,
        "in_domain": not reasons,
        "reasons": reasons,
    }

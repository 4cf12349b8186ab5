"""The grey zone: two cut-offs that split decision values into GOOD, GREY and BAD (SPEC §4).

* BAD cut-off ``t_bad`` from held-out good LS (the calibration split), as a conformal
  p-value: a LS is flagged BAD when p = (1 + #{calibration scores >= s}) / (n + 1) <= alpha.
  For exchangeable good LS this bounds the share of good LS flagged BAD by alpha in finite
  samples (not only on average over large n): the guarantee a DC expert can trust.
* GOOD cut-off ``t_good`` from known bad LS (bad LS of earlier runs): a LS is certified GOOD
  when its score is below the (floor(beta m) + 1)-th smallest known-bad score, so at most a
  share beta of the known bad LS would have been certified. Bad LS are neither exchangeable
  nor plentiful, so this side is empirical; its test-set rate is always reported beside it.

Both cut-offs are computed without the test set. Scores equal to a cut-off fall in the grey
zone: GOOD is ``s < t_good``, BAD is ``s > t_bad``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

GOOD, GREY, BAD = "GOOD", "GREY", "BAD"


@dataclass(frozen=True)
class Cutoffs:
    t_good: float
    t_bad: float
    max_good_as_bad: float
    max_bad_as_good: float
    n_calib_good: int
    n_known_bad: int

    def to_dict(self) -> dict:
        return asdict(self)


def conformal_bad_cutoff(calib_good: np.ndarray, alpha: float) -> float:
    """Smallest cut-off whose conformal p-value test flags at most alpha of good LS.

    With k = floor(alpha (n + 1)), flagging s > (k-th largest calibration score) is exactly
    p(s) <= alpha; k = 0 (too few calibration LS for this alpha) flags nothing.
    """
    s = np.sort(np.asarray(calib_good, dtype=np.float64))[::-1]
    k = int(np.floor(alpha * (len(s) + 1) + 1e-12))
    return float(s[k - 1]) if k >= 1 else float("inf")


def conformal_p_values(calib_good: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """p = (1 + #{calibration >= s}) / (n + 1) for each score: small = unlike good LS."""
    s = np.sort(np.asarray(calib_good, dtype=np.float64))
    above = len(s) - np.searchsorted(s, np.asarray(scores, dtype=np.float64), side="left")
    return (1.0 + above) / (len(s) + 1.0)


def empirical_good_cutoff(known_bad: np.ndarray, beta: float) -> float:
    """Certify GOOD below the (floor(beta m) + 1)-th smallest known-bad score."""
    b = np.sort(np.asarray(known_bad, dtype=np.float64))
    if len(b) == 0:
        return -float("inf")  # nothing known about failures: certify nothing automatically
    j = int(np.floor(beta * len(b) + 1e-12))
    return float(b[j]) if j < len(b) else float("inf")


def fit_cutoffs(calib_good: np.ndarray, known_bad: np.ndarray, max_good_as_bad: float,
                max_bad_as_good: float) -> Cutoffs:
    if not 0 <= max_good_as_bad < 1 or not 0 <= max_bad_as_good < 1:
        raise ValueError("error-rate targets must lie in [0, 1)")
    t_bad = conformal_bad_cutoff(calib_good, max_good_as_bad)
    t_good = min(empirical_good_cutoff(known_bad, max_bad_as_good), t_bad)
    return Cutoffs(t_good, t_bad, max_good_as_bad, max_bad_as_good,
                   len(calib_good), len(known_bad))


def decide(scores: np.ndarray, cut: Cutoffs) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(scores < cut.t_good, GOOD, np.where(scores > cut.t_bad, BAD, GREY))


def grey_zone_metrics(scores: np.ndarray, labels: np.ndarray, cut: Cutoffs,
                      prefix: str = "test") -> dict[str, float]:
    """Automation rate and the measured error rates of the two automatic decisions."""
    return decision_metrics(decide(scores, cut), labels, prefix)


def decision_metrics(d: np.ndarray, labels: np.ndarray, prefix: str = "test") -> dict[str, float]:
    """The same figures from GOOD/GREY/BAD decisions already made (e.g. by a pyfunc model)."""
    d = np.asarray(d).astype(str)
    labels = np.asarray(labels).astype(int)
    good, bad = labels == 0, labels == 1
    return {
        f"{prefix}_automation_rate": float(np.mean(d != GREY)),
        f"{prefix}_grey_fraction": float(np.mean(d == GREY)),
        f"{prefix}_good_fraction": float(np.mean(d == GOOD)),
        f"{prefix}_bad_fraction": float(np.mean(d == BAD)),
        f"{prefix}_bad_as_good_rate": float(np.mean(d[bad] == GOOD)) if bad.any() else 0.0,
        f"{prefix}_good_as_bad_rate": float(np.mean(d[good] == BAD)) if good.any() else 0.0,
        f"{prefix}_good_certified_rate": float(np.mean(d[good] == GOOD)) if good.any() else 0.0,
    }

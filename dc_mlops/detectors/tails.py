"""``tails``: how far into the good LS's tails each feature sits, summed over features.

What it is: ECOD (Li et al., "ECOD: Unsupervised Outlier Detection Using Empirical
Cumulative Distribution Functions", IEEE TKDE 2022), fitted once and then applied to new
LS. For every feature the good training LS give an empirical distribution; an LS scores
``sum_j -log p_j`` where ``p_j`` is the smaller of its two empirical tail probabilities in
feature j, ``(#{good <= x} + 1) / (n + 1)`` and ``(#{good >= x} + 1) / (n + 1)``.

Why it is here: PyOD's ECOD ranked the simulated SingleMuon failures above every other
detector (``benchmarks/results/detectors.md``), in the rolling walk and across eras. It
looks at each feature alone, so a failure that pushes a few features far out counts fully
even when the usual correlations between features changed (a new era, a new pile-up
range), where ``mahalanobis`` and ``pca`` weigh exactly those correlations.

Why not PyOD's class: its ``decision_function`` appends the LS being scored to the
training LS and recomputes the distributions, so the score of one LS depends on the
other LS of its batch (a failure scores lower when it arrives with many like it) and the
cost grows with the training set on every call. A certifier must give an LS the same
score whatever it is scored with; here the distributions are frozen at ``fit``.

Beyond the good LS: an empirical distribution puts every value beyond the most extreme
good LS at the same floor ``p = 1/(n+1)``, so a failure 10 spreads out would score like
one just past the last good LS (held-out real pixel data, half a run of training LS:
ROC AUC 0.96 against 1.00 with the tail below). Past the ``tail_share`` most extreme good
LS of each side, the tail is exponential, as extreme-value theory has it for light tails
(peaks over a threshold, generalised Pareto with shape 0): ``p = (m / (n+1)) exp(-(x-u)/b)``
with ``u`` the m-th most extreme good value and ``b`` the mean excess of the m values past
it. The score then keeps growing with the distance, continuous with the empirical part.
``tail="empirical"`` keeps ECOD's floor (it ranked the simulated SingleMuon failures a
little better, 0.999 against 0.995 in the rolling walk; the exponential tail did better on
ZeroBias and JetHT and on the real pixel data, ``benchmarks/results/detectors_tails.md``).

PyOD's skewness rule (one-sided tails for skewed features) is left out: it changes a
feature's term only when the feature's skewness is exactly 0. ``explain`` gives the
per-feature terms, which add up to the score. The good LS are subsampled to
``max_samples`` per fit.
"""
from __future__ import annotations

import numpy as np

from dc_mlops.detectors.baselines import _SklearnDetector, _subsample
from dc_mlops.errors import DataError


#: past the most extreme good LS: "exponential" keeps growing, "empirical" stays at the
#: floor p = 1/(n+1) as in ECOD
TAILS = ("exponential", "empirical")


class TailsDetector(_SklearnDetector):
    """Sum over features of -log(two-sided empirical tail probability among good LS)."""

    name = "tails"
    supports_explain = True
    _fitted = ("sorted_", "tail_m_", "tail_u_", "tail_b_")

    def __init__(self, *, tail: str = "exponential", tail_share: float = 0.01,
                 max_samples: int = 10_000, seed: int = 0):
        self.tail = tail
        self.tail_share = tail_share
        self.max_samples = max_samples
        self.seed = seed

    def _validate_params(self, X: np.ndarray) -> None:
        if self.max_samples < 1:
            raise DataError(f"tails: max_samples must be positive, got {self.max_samples!r}")
        if self.tail not in TAILS:
            raise DataError(f"tails: tail must be one of {', '.join(TAILS)}, got {self.tail!r}")
        if not 0 < self.tail_share < 0.5:
            raise DataError(f"tails: tail_share must be in (0, 0.5), got {self.tail_share!r}")

    def _fit_sklearn(self, X: np.ndarray) -> None:
        X = _subsample(X, self.max_samples, self.seed)
        S = np.ascontiguousarray(np.sort(X, axis=0).T)  # one sorted row per feature
        n = S.shape[1]
        # m values past each threshold (at least 5, at most half the LS)
        m = int(min(max(5, np.ceil(self.tail_share * n)), max(1, n // 2)))
        lo, hi = S[:, m - 1], S[:, n - m]
        b_lo = lo - S[:, :m].mean(axis=1)
        b_hi = S[:, n - m:].mean(axis=1) - hi
        # floor of the mean excess (ties in a tail, a constant feature): the feature's range
        # over n, or 1/n for a constant feature
        spread = np.where(S[:, -1] > S[:, 0], S[:, -1] - S[:, 0], 1.0) / max(n, 1)
        self.sorted_ = S
        self.tail_m_ = m
        self.tail_u_ = np.stack([lo, hi])
        self.tail_b_ = np.stack([np.maximum(b_lo, spread), np.maximum(b_hi, spread)])

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        S = self.sorted_
        n = S.shape[1]
        out = np.empty(X.shape, np.float64)
        for j in range(S.shape[0]):
            below = np.searchsorted(S[j], X[:, j], side="right")  # good LS <= x
            above = n - np.searchsorted(S[j], X[:, j], side="left")  # good LS >= x
            out[:, j] = np.minimum(below, above)
        # -log((count + 1) / (n + 1)), the smaller tail of the two
        out = np.log(n + 1.0) - np.log1p(out, out=out)
        if self.tail == "empirical":
            return out
        # past the m-th most extreme good value: the exponential tail
        base = np.log((n + 1.0) / self.tail_m_)
        (u_lo, u_hi), (b_lo, b_hi) = self.tail_u_, self.tail_b_
        past = np.maximum((u_lo - X) / b_lo, (X - u_hi) / b_hi)
        return np.where(past > 0, base + past, out)

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        return self._explain_batch(X).sum(axis=1)

"""``mahalanobis``: squared Mahalanobis distance to the good LS, with a shrunk covariance.

Why it is here: the 7 numbers of one histogram, and histograms of the same objects, move
together on good LS (pile-up, ageing and calibration move whole collections), so the
directions in which good LS vary most are where the conditions live. ``pca``'s
reconstruction error is blind inside its kept subspace, and a failure that thins a
collection (a pixel layer off: fewer hits per track) moves the features along just such a
direction, only further or against the usual correlations. The Mahalanobis distance
weighs every direction by how much good LS vary along it: a shift across the usual
correlations counts for much, a shift along the usual conditions direction counts for
little. On the simulated rolling walk (4 PDs of 2018D, ``benchmarks/results/detectors.md``)
it ranks the PDs' own failures above ``pca`` on every PD.

The covariance of the (standardised) features is estimated with Ledoit-Wolf shrinkage
(``sklearn.covariance.LedoitWolf``): with a few thousand LS and up to 200 correlated
features the plain sample covariance is near-singular and its inverse amplifies noise.
``explain`` splits the distance into per-feature terms that add up to the score (to the
float32 rounding of ``score``'s product, a few 1e-6 relative): the squares of the
ZCA-whitened deviation ``(C^-1/2 d)_j`` (the whitening closest to the original features),
i.e. how far feature j sits from where the other features say it should be, in units of
good-LS spread.

``score_mode="topn"``: the mean of the ``top_n`` largest of those terms instead of their sum,
as the autoencoders' option. A failure often moves a few features (one histogram of one
subsystem): summed over 98-203 features its shift competes with the spread of all the
others, while the largest few terms keep it. In ``sum`` mode a row of ``explain`` adds up
to the score; in ``topn`` mode its ``top_n`` largest terms average to it. Measured
(``benchmarks/results/score_modes.md``, 2026-12-07): ``topn`` ranks every PD's failures at
least as well on main's history and lifts what all PDs together decide there from 19 % to
34 %; on the simulated 2018 from 42 % to 47 %, but its good->BAD and bad->GOOD rates rise
from 1.3 % to 1.6 % and 1.8 % (both modes miss the 1 % targets there). ``sum`` stays the
default; ``tune`` tries both.
"""
from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from dc_mlops.detectors.base import top_n_mean
from dc_mlops.detectors.baselines import _SklearnDetector
from dc_mlops.errors import DataError

#: how the per-feature terms become the score: their sum (the squared distance) or the mean
#: of the ``top_n`` largest
SCORE_MODES = ("sum", "topn")


class MahalanobisDetector(_SklearnDetector):
    """Squared Mahalanobis distance of the standardised features to the good-LS mean."""

    name = "mahalanobis"
    supports_explain = True
    _fitted = ("mean_", "scale_", "whiten_")

    def __init__(self, *, shrinkage: float | str = "auto", score_mode: str = "sum",
                 top_n: int = 10):
        self.shrinkage = shrinkage
        self.score_mode = score_mode
        self.top_n = top_n

    def _validate_params(self, X: np.ndarray) -> None:
        s = self.shrinkage
        if not (s == "auto" or (isinstance(s, (int, float)) and 0 <= s <= 1)):
            raise DataError(f"mahalanobis: shrinkage must be 'auto' (Ledoit-Wolf) or a number "
                            f"in [0, 1], got {s!r}")
        if self.score_mode not in SCORE_MODES:
            raise DataError(f"mahalanobis: score_mode must be one of {', '.join(SCORE_MODES)}, "
                            f"got {self.score_mode!r}")
        if isinstance(self.top_n, bool) or not isinstance(self.top_n, (int, np.integer)) \
                or self.top_n < 1:
            raise DataError(f"mahalanobis: top_n must be a whole number >= 1, got "
                            f"{self.top_n!r}")
        if X.shape[0] < 2:
            raise DataError("mahalanobis: needs at least 2 good LS to estimate a covariance")

    def _fit_sklearn(self, X: np.ndarray) -> None:
        self.mean_ = X.mean(axis=0)
        # a constant feature has no spread to measure against: scale 1 keeps it harmless
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (X - self.mean_) / self.scale_
        if self.shrinkage == "auto":
            cov = LedoitWolf(assume_centered=True).fit(Z).covariance_
        else:
            emp = Z.T @ Z / len(Z)
            mu = np.trace(emp) / emp.shape[0]
            cov = (1 - self.shrinkage) * emp + self.shrinkage * mu * np.eye(emp.shape[0])
        # C^-1/2 by eigen-decomposition; directions without variance are left out
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        keep = vals > vals.max() * 1e-12
        self.whiten_ = (vecs[:, keep] / np.sqrt(vals[keep])) @ vecs[:, keep].T

    def _folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``whiten / scale`` (the division by the scale folded into the rows of the
        whitening matrix: one pass over each batch fewer) in float64 and float32; built
        once after fit or load, the saved model keeps the three parts."""
        folded = getattr(self, "_folded_cache", None)
        if folded is None or folded[0] is not self.whiten_:
            W = self.whiten_ / self.scale_[:, None]
            folded = (self.whiten_, W, W.astype(np.float32))
            self._folded_cache = folded
        return folded[1], folded[2]

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        return np.square((X - self.mean_) @ self._folded()[0])

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        """The distance from a float32 product: the (n, d) x (d, d) whitening is most of
        the scoring time and float32 halves it. The deviation from the mean is taken in
        float64 first (no cancellation); the score stays within 1e-5 relative of the
        float64 one (at most 4e-6 on the four simulated PDs, checked in
        ``tests/detectors/test_quality.py``), far below any threshold's resolution.
        ``explain`` stays float64."""
        D = np.subtract(X, self.mean_, out=np.empty(X.shape, np.float32), casting="same_kind")
        Y = D @ self._folded()[1]
        if self.score_mode == "sum":
            return np.einsum("ij,ij->i", Y, Y).astype(np.float64)
        return top_n_mean(np.square(Y, out=Y), self.top_n)

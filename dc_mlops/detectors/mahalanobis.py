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
``explain`` splits the distance into per-feature terms that add up to it (with
``score_mode=sum``, to the float32 rounding of ``score``'s product, a few 1e-6 relative): the
squares of the
ZCA-whitened deviation ``(C^-1/2 d)_j`` (the whitening closest to the original features),
i.e. how far feature j sits from where the other features say it should be, in units of
good-LS spread.

``score_mode="topn"``: the mean of the ``top_n`` largest of those terms instead of their sum,
as the autoencoders' option. A failure often moves a few features (one histogram of one
subsystem): summed over 98-203 features its shift competes with the spread of all the
others, while the largest few terms keep it. In ``topn`` mode a row of ``explain``'s
``top_n`` largest terms average to the score.

``score_mode="histogram"``: one distance per histogram, the largest scores. A failure
changes the shape of a few histograms (a pixel layer off thins the hits per track, a noisy
tower adds a bump to an energy spectrum), and a DC expert looks histogram by histogram. So
each histogram's 7 summary numbers (or its bins) get their own shrunk covariance and
whitening; the histogram's squared distance is chi-square-like with as many degrees of
freedom as it has numbers, put on one scale by :func:`chi2_to_z`, and the LS scores its
worst histogram. Summed over all features, a shape change of one histogram is diluted by
the spread of ~100 others; the largest few per-feature terms see one number at a time, not
the histogram's shape. Which features form a histogram comes from their names
(``<histogram>_<i>``, ``fit(..., feature_names=...)``, which every step gives); without
names all columns form one group, the whole distance again. A row of ``explain`` holds the
within-histogram whitened terms; a histogram's terms add up to its distance.

Measured (``benchmarks/results/score_modes.md``, with the time in fill as a condition and
the GOOD cut-off on in-domain failures): with ``histogram`` for every PD, all PDs together
decide 51 % of main's walk (``sum`` 21 %, ``topn`` 29 %) within both targets, and 35 % of
the simulated 2018 (``sum`` 27 %) at good->BAD 0.06 % (``sum`` 0.5 %). An oracle that
knows the noise covariance, in the same 17-LS run context, certifies at bad->GOOD 1 % 84 %
of main's good LS with one distance per PD and 95 % with one per histogram; on the
simulated 2018, 54 % and 50 % (``benchmarks/results/separability.md``). It is not
the default because, ZeroBias alone on main's walk, it lets 1.4 % of the failures through
(a faint pixel block; ``sum``: 0): ``promote --pd all`` wants every member within its own
PD's targets and keeps ZeroBias on ``sum``. (Before the time in fill was a condition, every
PD's good->BAD also sat at 0.9-1.1 % with it; now 0.04-0.09 %.) ``main`` compares both per
PD, and ``tune`` tries it.
"""
from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from dc_mlops.data.features import histogram_of
from dc_mlops.detectors.base import top_n_mean
from dc_mlops.detectors.baselines import _SklearnDetector
from dc_mlops.errors import DataError

#: how the per-feature terms become the score: their sum (the squared distance), the mean of
#: the ``top_n`` largest, or the largest distance of one histogram's features
SCORE_MODES = ("sum", "topn", "histogram")


def chi2_to_z(d2: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Wilson-Hilferty: a chi-square value with ``dof`` degrees of freedom as an approximate
    standard normal deviate, ((d2 / k)^(1/3) - (1 - 2 / 9k)) / sqrt(2 / 9k). It puts
    histograms with different numbers of features on one scale, and unlike -log of the tail
    probability it stays finite for any distance (a score of inf would drop out of the
    drift check)."""
    k = np.asarray(dof, dtype=np.float64)
    v = 2.0 / (9.0 * k)
    return (np.cbrt(np.asarray(d2, dtype=np.float64) / k) - (1.0 - v)) / np.sqrt(v)


class MahalanobisDetector(_SklearnDetector):
    """Mahalanobis distance of the standardised features to the good-LS mean: of all of them
    (default), of their largest terms, or of each histogram's features, the largest."""

    name = "mahalanobis"
    supports_explain = True
    _fitted = ("mean_", "scale_", "whiten_", "group_of_", "dof_")
    #: histogram mode: each feature's histogram (an index) and each histogram's degrees of
    #: freedom (0: no spread, left out); None in the other modes and in older saved models
    group_of_: np.ndarray | None = None
    dof_: np.ndarray | None = None

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
        if self.score_mode != "histogram":
            self.whiten_, _ = self._whitening(Z)
            self.group_of_ = self.dof_ = None
            return
        # one whitening per histogram: a block-diagonal C^-1/2, each block from the
        # histogram's own (shrunk) covariance; columns without names form one group (the
        # whole distance, ranked as score_mode=sum ranks)
        named = getattr(self, "feature_names_in_", None)
        names = [histogram_of(f) for f in named] if named else [""] * X.shape[1]
        _, self.group_of_ = np.unique(names, return_inverse=True)
        self.dof_ = np.zeros(int(self.group_of_.max()) + 1)
        self.whiten_ = np.zeros((X.shape[1], X.shape[1]))
        for g in range(len(self.dof_)):
            idx = np.flatnonzero(self.group_of_ == g)
            self.whiten_[np.ix_(idx, idx)], self.dof_[g] = self._whitening(Z[:, idx])

    def _whitening(self, Z: np.ndarray) -> tuple[np.ndarray, int]:
        """C^-1/2 of the shrunk covariance of ``Z`` by eigen-decomposition, directions
        without variance left out, and how many directions it keeps."""
        if self.shrinkage == "auto":
            cov = LedoitWolf(assume_centered=True).fit(Z).covariance_
        else:
            emp = Z.T @ Z / len(Z)
            mu = np.trace(emp) / emp.shape[0]
            cov = (1 - self.shrinkage) * emp + self.shrinkage * mu * np.eye(emp.shape[0])
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        keep = vals > vals.max() * 1e-12 if vals.max() > 0 else np.zeros(len(vals), bool)
        return (vecs[:, keep] / np.sqrt(vals[keep])) @ vecs[:, keep].T, int(keep.sum())

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
        if self.score_mode == "topn":
            return top_n_mean(np.square(Y, out=Y), self.top_n)
        return self.histogram_z(np.square(Y, out=Y)).max(axis=1)

    def histogram_z(self, terms: np.ndarray) -> np.ndarray:
        """(n, histograms) each histogram's squared distance (the sum of its features'
        terms, as ``explain`` gives them) as a standard normal deviate (:func:`chi2_to_z`);
        histograms without spread are left out. ``score_mode=histogram`` only."""
        member, dof = self._membership()
        return chi2_to_z(terms @ member.astype(terms.dtype, copy=False), dof)

    def _membership(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, histograms with spread) 0/1 matrix and those histograms' degrees of
        freedom; built once after fit or load."""
        cache = getattr(self, "_member_cache", None)
        if cache is None or cache[0] is not self.group_of_:
            used = np.flatnonzero(self.dof_ > 0)
            member = (self.group_of_[:, None] == used[None, :]).astype(np.float32)
            cache = (self.group_of_, member, self.dof_[used])
            self._member_cache = cache
        return cache[1], cache[2]

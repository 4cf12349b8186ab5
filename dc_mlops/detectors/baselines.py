"""scikit-learn baselines (SPEC §3): what an autoencoder has to beat to earn its place.

- ``ocsvm``: RBF one-class SVM, the study's baseline. Training is O(n²) in memory and
  time, so it fits on a seeded subsample of at most ``max_samples`` good LS.
- ``iforest``: isolation forest, scikit-learn's defaults (100 trees); trees need no scaling.
- ``pca``: reconstruction error of a linear autoencoder, explains per feature.
- ``knn``: mean distance to the ``n_neighbors`` nearest good LS, explains per feature.

Each is at least as good as the plain scikit-learn estimator on the same inputs
(``benchmarks/results/baselines.md``). ``pca`` MinMax-scales and keeps 5 components: with
standard scaling and 95 % of the variance it kept nearly every direction of the
conditions-corrected residuals, so a failure's shift mostly lay inside the kept subspace
(simulated ZeroBias ROC AUC 0.65 against 0.91, JetHT 0.64 against 0.97; issue 11 saw 0.85
against 0.96 on held-out real pixel data). ``ocsvm`` and ``knn`` standardise features
(``scaling``): distances and kernels need comparable units. scikit-learn's "higher = more
normal" scores are negated here, once. Saved with joblib next to ``detector.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.svm import OneClassSVM

from dc_mlops.detectors.base import Detector, EpochCallback
from dc_mlops.errors import DataError

MODEL_FILE = "model.joblib"


SCALINGS = ("standard", "minmax", "none")


def _scaler(scaling: str):
    """The per-feature scaler of a distance- or variance-based baseline."""
    if scaling == "standard":
        return StandardScaler()
    if scaling == "minmax":
        return MinMaxScaler()
    return FunctionTransformer()  # "none": identity, same interface


def _check_scaling(name: str, scaling: str) -> None:
    if scaling not in SCALINGS:
        raise DataError(f"{name}: scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")


def _subsample(X: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    if max_samples is None or X.shape[0] <= max_samples:
        return X
    idx = np.random.default_rng(seed).choice(X.shape[0], size=int(max_samples), replace=False)
    return X[np.sort(idx)]


class _SklearnDetector(Detector):
    """Shared persistence: the fitted estimators (and scaler) go into one joblib file."""

    _fitted: tuple[str, ...] = ()

    def _fit(self, X: np.ndarray, X_val: np.ndarray | None,
             on_epoch_end: EpochCallback | None) -> None:
        # no epochs: X_val and on_epoch_end are accepted for a uniform call, and unused
        self._fit_sklearn(X)

    def _fit_sklearn(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _save(self, path: Path) -> None:
        joblib.dump({k: getattr(self, k) for k in self._fitted}, path / MODEL_FILE)

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        for key, value in joblib.load(path / MODEL_FILE).items():
            setattr(self, key, value)


class OCSVMDetector(_SklearnDetector):
    """RBF one-class SVM on standardised features; decision value = −decision_function
    divided by the sum of the dual coefficients.

    scikit-learn's decision function is a kernel sum whose weights add up to ``nu`` x the
    number of training LS: the same LS scores 4x higher under a model fitted on 4x the LS.
    Divided by that sum it is a weighted mean kernel similarity, comparable between fits on
    different amounts of data (the cross-fitted calibration compares exactly that; undivided,
    its good->BAD was 0.23 against a 1 % target). The ranking of one model is unchanged."""

    name = "ocsvm"
    _fitted = ("scaler_", "svm_")

    def __init__(self, *, nu: float = 0.01, gamma: str | float = "scale",
                 scaling: str = "standard", max_samples: int = 10_000, seed: int = 0):
        self.nu = nu
        self.gamma = gamma
        self.scaling = scaling
        self.max_samples = max_samples
        self.seed = seed

    def _validate_params(self, X: np.ndarray) -> None:
        _check_scaling(self.name, self.scaling)
        if not 0 < self.nu <= 1:
            raise DataError(f"ocsvm: nu must be in (0, 1], got {self.nu!r}")
        if self.max_samples < 1:
            raise DataError(f"ocsvm: max_samples must be positive, got {self.max_samples!r}")

    def _fit_sklearn(self, X: np.ndarray) -> None:
        X = _subsample(X, self.max_samples, self.seed)
        self.scaler_ = _scaler(self.scaling).fit(X)
        self.svm_ = OneClassSVM(kernel="rbf", nu=self.nu, gamma=self.gamma)
        self.svm_.fit(self.scaler_.transform(X))

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        scale = float(np.sum(self.svm_.dual_coef_))
        return -self.svm_.decision_function(self.scaler_.transform(X)) / scale


class IForestDetector(_SklearnDetector):
    """Isolation forest on raw features; decision value = −score_samples (offset-free)."""

    name = "iforest"
    _fitted = ("forest_",)

    def __init__(self, *, n_estimators: int = 100, max_samples: int | str = "auto",
                 max_features: float = 1.0, seed: int = 0, n_jobs: int | None = None):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.seed = seed
        self.n_jobs = n_jobs

    def _fit_sklearn(self, X: np.ndarray) -> None:
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, max_samples=self.max_samples,
            max_features=self.max_features, random_state=self.seed, n_jobs=self.n_jobs)
        self.forest_.fit(X)

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(X)


class PCADetector(_SklearnDetector):
    """Squared reconstruction error after projecting standardised LS on the top components.

    ``n_components``: an int, or a float in (0, 1) for the share of variance to keep.
    """

    name = "pca"
    supports_explain = True
    _fitted = ("scaler_", "pca_")

    def __init__(self, *, n_components: int | float = 5, scaling: str = "minmax",
                 seed: int = 0):
        self.n_components = n_components
        self.scaling = scaling
        self.seed = seed

    def _validate_params(self, X: np.ndarray) -> None:
        _check_scaling(self.name, self.scaling)
        n = self.n_components
        ok = (0 < n < 1) if isinstance(n, float) else (isinstance(n, int) and 0 < n)
        if not ok:
            raise DataError(f"pca: n_components must be an int > 0 or a float in (0, 1), "
                            f"got {n!r}")

    def _fit_sklearn(self, X: np.ndarray) -> None:
        self.scaler_ = _scaler(self.scaling).fit(X)
        n = self.n_components
        if isinstance(n, int):
            n = min(n, X.shape[1], X.shape[0])
        self.pca_ = PCA(n_components=n, random_state=self.seed).fit(self.scaler_.transform(X))

    def _centred(self, X: np.ndarray) -> np.ndarray:
        """Scaled LS minus the PCA mean, a new array. MinMax scaling (the default) is the
        per-feature ``x * scale_ + min_`` scikit-learn computes, here with the PCA mean
        folded into the offset and without the input checks scikit-learn repeats on every
        batch (the base has checked the LS)."""
        if isinstance(self.scaler_, MinMaxScaler) and not self.scaler_.clip:
            D = X * self.scaler_.scale_
            D += self.scaler_.min_ - self.pca_.mean_
            return D
        return self.scaler_.transform(X) - self.pca_.mean_

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        # inverse_transform(transform(Z)) of the unwhitened PCA: mean + (D Vᵀ) V
        D = self._centred(X)
        V = self.pca_.components_
        D -= (D @ V.T) @ V
        return np.square(D)

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        """|D − (D Vᵀ) V|² = |D|² − |D Vᵀ|² (the rows of V are orthonormal): no (n, d)
        reconstruction. The difference loses digits only as far as the kept components
        hold nearly all of an LS's deviation; on the simulated PDs the score is within
        1e-12 relative of the reconstruction's."""
        D = self._centred(X)
        P = D @ self.pca_.components_.T
        return np.einsum("ij,ij->i", D, D) - np.einsum("ij,ij->i", P, P)


class KNNDetector(_SklearnDetector):
    """Mean Euclidean distance to the ``n_neighbors`` nearest good LS (standardised).

    The reference set is a seeded subsample of at most ``max_samples`` LS, which bounds
    memory and query time. ``explain`` gives the squared difference of each feature to the
    neighbours' mean: which features make the LS stand out from its closest good ones.
    A training LS scored again finds itself among its neighbours (distance 0), so scores
    of training LS are optimistic; score held-out LS for thresholds.
    """

    name = "knn"
    supports_explain = True
    _fitted = ("scaler_", "nn_", "reference_")

    def __init__(self, *, n_neighbors: int = 5, scaling: str = "standard",
                 max_samples: int = 20_000, seed: int = 0):
        self.n_neighbors = n_neighbors
        self.scaling = scaling
        self.max_samples = max_samples
        self.seed = seed

    def _validate_params(self, X: np.ndarray) -> None:
        _check_scaling(self.name, self.scaling)
        if self.n_neighbors < 1 or self.max_samples < 1:
            raise DataError("knn: n_neighbors and max_samples must be positive")

    def _fit_sklearn(self, X: np.ndarray) -> None:
        X = _subsample(X, self.max_samples, self.seed)
        self.scaler_ = _scaler(self.scaling).fit(X)
        self.reference_ = self.scaler_.transform(X)
        k = min(int(self.n_neighbors), X.shape[0])
        self.nn_ = NearestNeighbors(n_neighbors=k).fit(self.reference_)

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        dist, _ = self.nn_.kneighbors(self.scaler_.transform(X))
        return dist.mean(axis=1)

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        Z = self.scaler_.transform(X)
        _, idx = self.nn_.kneighbors(Z)
        return np.square(Z - self.reference_[idx].mean(axis=1))


BASELINES: tuple[type[Detector], ...] = (OCSVMDetector, IForestDetector, PCADetector,
                                         KNNDetector)

"""Seeded synthetic LS for the detector contract (shapes, persistence, errors, conditions).

The toy data here checks the interface, not detection quality: a constant-output model
would pass an AUC floor on it. Quality is judged on simulated CMS data against distance to
the training mean (``test_quality.py``, ``simulated.py``).
"""
from __future__ import annotations

import numpy as np
import pytest

N_FEATURES = 20
#: the columns' names, as a summary table names them: four histograms of five numbers
FEATURE_NAMES = [f"h{j // 5}_{j % 5}" for j in range(N_FEATURES)]

#: small and quick versions of every detector: the contract, not the physics, is under test
FAST_PARAMS: dict[str, dict] = {
    "autoencoder": dict(hidden=(32, 16), latent_dim=4, epochs=5, batch_size=64,
                        learning_rate=1e-2),
    "ocsvm": dict(nu=0.05, max_samples=1000),
    "iforest": dict(n_estimators=50),
    "pca": dict(n_components=4),
    "knn": dict(n_neighbors=5, max_samples=1000),
    "mahalanobis": dict(),
    "tails": dict(),
}


def _fast_params(name: str) -> dict:
    from dc_mlops.detectors import registry

    key = "autoencoder" if registry.family(name) == "autoencoder" else name
    return dict(FAST_PARAMS[key])


@pytest.fixture(scope="session")
def fast_params():
    """``fast_params(name)``: quick constructor parameters for detector ``name``."""
    return _fast_params


def _make(n_good: int, n_bad: int, seed: int):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(3, N_FEATURES))

    def good(n):
        latent = rng.normal(size=(n, 3))
        x = latent @ mixing / 3.0 + 0.05 * rng.normal(size=(n, N_FEATURES))
        return 1.0 / (1.0 + np.exp(-x))  # correlated, in (0, 1)

    bad = good(n_bad)
    bad[:, :4] = np.clip(bad[:, :4] + rng.choice([-0.35, 0.35], size=(n_bad, 4)), 0, 1)
    return good(n_good), good(n_good // 5), bad


@pytest.fixture(scope="session")
def data():
    """(train, held-out good, anomalies): 1500 × 20 training LS, 300 good and 300 bad."""
    train, good, bad = _make(1500, 300, seed=7)
    return train, good[:300], bad


@pytest.fixture(scope="session")
def pileup(data):
    """Per-LS pile-up values for (train, good, bad) of ``data``."""
    rng = np.random.default_rng(8)
    c = [rng.uniform(20, 50, len(part)) for part in data]
    return c

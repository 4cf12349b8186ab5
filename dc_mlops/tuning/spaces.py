"""Search spaces: one function per detector family, every ``suggest_*`` call in it.

A space function takes an Optuna trial and the registered model name and returns keyword
arguments for :func:`dc_mlops.detectors.registry.build`. It only proposes configurations
the detector accepts: the encoder narrows layer by layer (each hidden layer half the one
before), the latent code is never wider than the last hidden layer, a loss-term weight is
proposed only for a variant that has the term, and ``top_n`` only for ``score_mode="topn"``.

``fixed`` pins parameters instead of sampling them (tests, benchmarks with a small budget,
a user who wants ``epochs=50``): a pinned name is not suggested, so it appears neither in
the trial's parameters nor in the importance plot; a pinned name the space does not know
is passed to the detector as is (e.g. ``patience``), and ``hidden`` pins the whole shape.

Decision-value modes: ``sum`` and ``mean`` rank LS identically (mean = sum / d), so the
space offers ``sum`` and ``topn`` only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

Space = Callable[[optuna.Trial, str, Mapping[str, Any]], dict[str, Any]]

#: loss-term weight of each autoencoder variant term, and its log-uniform range
TERM_RANGES = {"sparse": ("lambda_sparse", 1e-7, 1e-3),
               "contractive": ("lambda_contractive", 1e-7, 1e-3),
               "kl": ("kl_weight", 1e-6, 1e-2)}


class _Pick:
    """Return the pinned value of a name, or the trial's suggestion for it."""

    def __init__(self, trial: optuna.Trial, fixed: Mapping[str, Any]):
        self.trial, self.fixed = trial, fixed

    def __call__(self, name: str, suggest: Callable[[], Any]) -> Any:
        return self.fixed[name] if name in self.fixed else suggest()


def _score_mode(trial: optuna.Trial, pick: "_Pick", modes: tuple[str, ...] = ("sum", "topn")
                ) -> dict[str, Any]:
    """The score of per-feature terms (autoencoders, mahalanobis): their sum, the mean of
    the ``top_n`` largest (``top_n`` is proposed only for ``topn``), or another of the
    model's ``modes``."""
    mode = pick("score_mode", lambda: trial.suggest_categorical("score_mode", list(modes)))
    if mode != "topn":
        return {"score_mode": mode}
    return {"score_mode": mode, "top_n": pick("top_n", lambda: trial.suggest_categorical(
        "top_n", [5, 10, 20, 40]))}


def autoencoder_space(trial: optuna.Trial, model: str,
                      fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006 - read only
    """Widths, depth, latent size, activation, loss-term weights, optimiser and epochs."""
    from dc_mlops.detectors.registry import detector_class  # late: imports TensorFlow
    pick = _Pick(trial, fixed)
    if "hidden" in fixed:
        hidden = [int(h) for h in fixed["hidden"]]
    else:
        depth = pick("depth", lambda: trial.suggest_int("depth", 1, 3))
        width = pick("width", lambda: trial.suggest_categorical("width", [64, 128, 256]))
        hidden = [max(1, int(width) // 2 ** i) for i in range(int(depth))]
    # width >= 64 and depth <= 3 leave >= 16 units in the last hidden layer; a pinned,
    # narrower shape caps the code at its last layer (choices stay fixed, as Optuna needs)
    latent = pick("latent_dim", lambda: trial.suggest_categorical("latent_dim", [4, 8, 16]))
    params: dict[str, Any] = {
        "hidden": hidden,
        "latent_dim": min(int(latent), hidden[-1]),
        "activation": pick("activation", lambda: trial.suggest_categorical(
            "activation", ["prelu", "relu", "elu", "tanh"])),
        "learning_rate": pick("learning_rate", lambda: trial.suggest_float(
            "learning_rate", 1e-4, 1e-2, log=True)),
        "batch_size": pick("batch_size", lambda: trial.suggest_categorical(
            "batch_size", [64, 128, 256, 512])),
        "epochs": pick("epochs", lambda: trial.suggest_int("epochs", 20, 200, step=20)),
        **_score_mode(trial, pick),
    }
    for term in detector_class(model).terms:
        name, low, high = TERM_RANGES[term]
        params[name] = pick(name, lambda: trial.suggest_float(name, low, high, log=True))
    return _with_pinned(params, fixed, {"depth", "width"})


def ocsvm_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """ν (share of training LS allowed outside) and the RBF γ on standardised features."""
    pick = _Pick(trial, fixed)
    params = {"nu": pick("nu", lambda: trial.suggest_float("nu", 1e-3, 0.3, log=True)),
              "gamma": pick("gamma", lambda: trial.suggest_float("gamma", 1e-4, 1.0, log=True)),
              "max_samples": pick("max_samples", lambda: trial.suggest_categorical(
                  "max_samples", [2000, 5000, 10000]))}
    return _with_pinned(params, fixed)


def iforest_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """Trees, the share of LS per tree and the share of features per tree."""
    pick = _Pick(trial, fixed)
    params = {"n_estimators": pick("n_estimators", lambda: trial.suggest_int(
                  "n_estimators", 50, 400, step=50)),
              "max_samples": pick("max_samples", lambda: trial.suggest_float(
                  "max_samples", 0.05, 1.0)),
              "max_features": pick("max_features", lambda: trial.suggest_float(
                  "max_features", 0.2, 1.0))}
    return _with_pinned(params, fixed)


def pca_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """Share of variance the components keep."""
    pick = _Pick(trial, fixed)
    params = {"n_components": pick("n_components", lambda: trial.suggest_float(
        "n_components", 0.5, 0.999))}
    return _with_pinned(params, fixed)


def knn_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """Neighbours averaged and the size of the reference set."""
    pick = _Pick(trial, fixed)
    params = {"n_neighbors": pick("n_neighbors", lambda: trial.suggest_int(
                  "n_neighbors", 1, 50, log=True)),
              "max_samples": pick("max_samples", lambda: trial.suggest_categorical(
                  "max_samples", [5000, 20000]))}
    return _with_pinned(params, fixed)


def mahalanobis_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """How far the covariance is shrunk towards a multiple of the identity, and whether the
    whole distance, its largest per-feature terms (``top_n`` only for ``topn``) or the
    largest histogram's distance score."""
    from dc_mlops.detectors.mahalanobis import SCORE_MODES
    pick = _Pick(trial, fixed)
    params = {"shrinkage": pick("shrinkage", lambda: trial.suggest_float(
                  "shrinkage", 1e-4, 0.5, log=True)),
              **_score_mode(trial, pick, SCORE_MODES)}
    return _with_pinned(params, fixed)


def tails_space(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """Where each feature's exponential tail starts, or ECOD's empirical floor."""
    pick = _Pick(trial, fixed)
    params = {"tail": pick("tail", lambda: trial.suggest_categorical(
                  "tail", ["exponential", "empirical"])),
              "tail_share": pick("tail_share", lambda: trial.suggest_float(
                  "tail_share", 0.002, 0.05, log=True))}
    return _with_pinned(params, fixed)


BASELINE_SPACES: dict[str, Space] = {"ocsvm": ocsvm_space, "iforest": iforest_space,
                                     "pca": pca_space, "knn": knn_space,
                                     "mahalanobis": mahalanobis_space, "tails": tails_space}


def space_for(model: str) -> Space:
    """The search space of a registered model: by family for the autoencoders, by name for
    the baselines (each has its own knobs)."""
    from dc_mlops.detectors import registry  # late: imports TensorFlow
    from dc_mlops.errors import DataError
    if registry.family(model) == "autoencoder":
        return autoencoder_space
    try:
        return BASELINE_SPACES[model]
    except KeyError:
        raise DataError(f"no search space for {model!r}; tunable: autoencoders and "
                        f"{', '.join(BASELINE_SPACES)}") from None


def suggest(trial: optuna.Trial, model: str, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Detector keyword arguments for this trial (the space of ``model``, ``fixed`` pinned)."""
    return space_for(model)(trial, model, fixed or {})


def _with_pinned(params: dict[str, Any], fixed: Mapping[str, Any],
                 space_only: set[str] = frozenset()) -> dict[str, Any]:
    """Pinned detector parameters the space does not propose (e.g. ``patience``) ride along."""
    extra = {k: v for k, v in fixed.items() if k not in params and k not in space_only}
    return {**params, **extra}

"""The names users type (``-P model=sparse_ae``) and the detectors they build.

One table, so the CLI, the MLproject, tuning and certification agree on which models exist
and what parameters each takes; a typo fails with the list of what is known.

The table is lazy: it maps a name to the module and class that implement it, and a class is
imported only when it is needed. Listing names, checking a setting, or loading and scoring a
scikit-learn detector therefore never imports a deep-learning framework (TensorFlow alone
takes ~12 s to import); only an autoencoder imports Keras and its backend.

Presets (``preset`` of ``train``): ``default`` is each detector's own defaults, what works
best here; ``study`` gives the autoencoders the original study's loss weights and optimiser
(:data:`dc_mlops.detectors.presets.STUDY`).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dc_mlops.errors import DataError

if TYPE_CHECKING:
    from dc_mlops.detectors.base import Detector

_AE = "dc_mlops.detectors.autoencoders"
_SK = "dc_mlops.detectors.baselines"
#: name -> (module, class, family); the autoencoders first, then the baselines
_TABLE: dict[str, tuple[str, str, str]] = {
    "vanilla_ae": (_AE, "VanillaAE", "autoencoder"),
    "sparse_ae": (_AE, "SparseAE", "autoencoder"),
    "contractive_ae": (_AE, "ContractiveAE", "autoencoder"),
    "variational_ae": (_AE, "VariationalAE", "autoencoder"),
    "sparse_contractive_ae": (_AE, "SparseContractiveAE", "autoencoder"),
    "sparse_variational_ae": (_AE, "SparseVariationalAE", "autoencoder"),
    "contractive_variational_ae": (_AE, "ContractiveVariationalAE", "autoencoder"),
    "ocsvm": (_SK, "OCSVMDetector", "baseline"),
    "iforest": (_SK, "IForestDetector", "baseline"),
    "pca": (_SK, "PCADetector", "baseline"),
    "knn": (_SK, "KNNDetector", "baseline"),
    "mahalanobis": ("dc_mlops.detectors.mahalanobis", "MahalanobisDetector", "baseline"),
    "tails": ("dc_mlops.detectors.tails", "TailsDetector", "baseline"),
}
PRESETS = ("default", "study")


def names() -> list[str]:
    """Every registered detector name: the autoencoders first, then the baselines."""
    return list(_TABLE)


def _entry(name: str) -> tuple[str, str, str]:
    try:
        return _TABLE[name]
    except KeyError:
        raise DataError(f"unknown model {name!r}; known: {', '.join(_TABLE)}") from None


def detector_class(name: str) -> type["Detector"]:
    """The class behind ``name`` (imported now); DataError listing the known names otherwise."""
    module, cls, _ = _entry(name)
    return getattr(importlib.import_module(module), cls)


def family(name: str) -> str:
    """``"autoencoder"`` or ``"baseline"``: tuning picks its search space by family.
    Answered from the table, so it imports nothing."""
    return _entry(name)[2]


def default_params(name: str) -> dict[str, Any]:
    """The parameters ``name`` accepts, with their defaults (JSON-serialisable)."""
    return detector_class(name).default_params()


def preset_params(name: str, preset: str = "default") -> dict[str, Any]:
    """Constructor parameters of ``preset`` for ``name`` ({} for ``default``)."""
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if preset == "default":
        return {}
    from dc_mlops.detectors.presets import STUDY
    accepted = default_params(name)
    return {k: v for k, v in STUDY.get(family(name), {}).items() if k in accepted}


def build(name: str, preset: str = "default", **params: Any) -> "Detector":
    """An unfitted detector, ``preset`` values under ``params``; an unknown parameter is a
    DataError naming the accepted ones."""
    cls = detector_class(name)
    accepted = cls.default_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DataError(f"{name} has no parameter {', '.join(unknown)}; "
                        f"accepted: {', '.join(accepted)}")
    return cls(**{**preset_params(name, preset), **params})

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


#: separates a detector's name from its parameters in a model spec, and the parameters
SPEC_SEPARATOR = ":"


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value[:key=value...]`` (e.g. ``mahalanobis:score_mode=histogram``)
    -> the registered name and its parameters, each value read as the type of its default
    (true/false, a number, a JSON list, else text). ``evaluate`` and ``main`` compare such
    variants of one detector side by side; the spec is their name in MLflow and the
    registry. A DataError names the spec and what is wrong; a value the detector cannot use
    is refused here too, before any work."""
    name, *pairs = str(spec).strip().split(SPEC_SEPARATOR)
    _entry(name)
    if not pairs:
        return name, {}
    accepted = default_params(name)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key or not raw:
            raise DataError(f"model {spec!r}: {pair!r} is not key=value")
        if key not in accepted or key == "seed":
            raise DataError(f"model {spec!r}: {name} has no parameter {key!r} to set here; "
                            f"accepted: {', '.join(k for k in accepted if k != 'seed')}")
        if key in params:
            raise DataError(f"model {spec!r}: {key} is given twice")
        params[key] = _typed(raw, accepted[key], spec, key)
    try:
        build(name, **params).check_params()
    except DataError as exc:
        raise DataError(f"model {spec!r}: {exc}") from None
    return name, params


def _typed(raw: str, default: Any, spec: str, key: str) -> Any:
    """``raw`` as the type of ``default`` (a number where the default is one; a number where
    the default is text, as ``shrinkage`` takes ``auto`` or a number)."""
    import json
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if isinstance(default, (int, float)) or isinstance(default, (list, tuple)):
            value = json.loads(raw)
            if isinstance(value, bool):
                raise ValueError
            return value
    except ValueError:
        raise DataError(f"model {spec!r}: {key}={raw!r} is not of the type of its default "
                        f"{default!r}") from None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else raw

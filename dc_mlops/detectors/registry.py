"""The names users type (``-P model=sparse_ae``) and the detectors they build.

One table, so the CLI, the MLproject, tuning and certification agree on which models exist
and what parameters each takes; a typo fails with the list of what is known.
"""
from __future__ import annotations

from typing import Any

from dc_mlops.detectors.autoencoders import AUTOENCODERS
from dc_mlops.detectors.base import Detector
from dc_mlops.detectors.baselines import BASELINES
from dc_mlops.errors import DataError

_DETECTORS: dict[str, type[Detector]] = {cls.name: cls for cls in (*AUTOENCODERS, *BASELINES)}


def names() -> list[str]:
    """Every registered detector name: the autoencoders first, then the baselines."""
    return list(_DETECTORS)


def detector_class(name: str) -> type[Detector]:
    """The class behind ``name``; DataError listing the known names otherwise."""
    try:
        return _DETECTORS[name]
    except KeyError:
        raise DataError(f"unknown model {name!r}; known: {', '.join(_DETECTORS)}") from None


def family(name: str) -> str:
    """``"autoencoder"`` or ``"baseline"``: tuning picks its search space by family."""
    return detector_class(name).family


def default_params(name: str) -> dict[str, Any]:
    """The parameters ``name`` accepts, with their defaults (JSON-serialisable)."""
    return detector_class(name).default_params()


def build(name: str, **params: Any) -> Detector:
    """An unfitted detector; an unknown parameter is a DataError naming the accepted ones."""
    cls = detector_class(name)
    accepted = cls.default_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DataError(f"{name} has no parameter {', '.join(unknown)}; "
                        f"accepted: {', '.join(accepted)}")
    return cls(**params)

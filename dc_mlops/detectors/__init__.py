"""Detectors layer: one fit/score/explain/save interface over every model (SPEC §3).

Autoencoders (Keras 3, any backend) and scikit-learn baselines, all fitted on good LS only
and scoring higher = more anomalous, with the run-conditions correction of SPEC §3.1 in the
shared base. Nothing here talks to MLflow: tracking wraps these. Use :func:`registry.build`
to make a detector by name and :func:`load_detector` to read one back. Importing this
package imports no deep-learning framework: an autoencoder class imports Keras when it is
first asked for.
"""
from dc_mlops.detectors import registry
from dc_mlops.detectors.base import Detector, EpochCallback, load_detector
from dc_mlops.detectors.registry import build, default_params, family, names

__all__ = ["Detector", "EpochCallback", "build", "default_params", "family",
           "load_detector", "names", "registry"]

"""Detectors as MLflow models: one pyfunc per trained detector, self-contained.

The pyfunc takes the raw feature table (the columns of the PD's feature set, plus the
conditions column ``spec["conditions"]`` (``pileup`` or ``lumi``) when the detector corrects
for run conditions; other columns such as runId are ignored) and returns one row per LS with its decision value ``score`` and,
once cut-offs are attached, the ``decision`` GOOD / BAD / GREY. The detector's scaler lives in
its saved folder, so nothing else is needed to certify.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from dc_mlops.data.tables import feature_matrix
from dc_mlops.detectors.base import Detector
from dc_mlops.errors import DataError

PIP_REQUIREMENTS = ["dc_mlops", "mlflow==3.17.2", "tensorflow==2.21.0", "keras==3.15.1",
                    "scikit-learn==1.9.1", "pandas", "numpy", "pyarrow"]


class DetectorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: feature table in, per-LS score (and decision) out."""

    def load_context(self, context) -> None:
        from dc_mlops.detectors import load_detector
        self.detector = load_detector(context.artifacts["detector"])
        self.spec = json.loads(Path(context.artifacts["spec"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        X = feature_matrix(model_input, self.spec["feature_names"], "model input")
        return self.decide(X, conditions_of(model_input, self.spec))

    def decide(self, X: np.ndarray, conditions: np.ndarray | None = None) -> pd.DataFrame:
        """Scores (and decisions, once cut-offs are attached) of a feature matrix."""
        scores = self.detector.score(X, conditions)
        out = pd.DataFrame({"score": scores})
        cut = self.spec.get("thresholds")
        if cut:
            out["decision"] = np.where(scores < cut["t_good"], "GOOD",
                                       np.where(scores > cut["t_bad"], "BAD", "GREY"))
        return out


def input_columns(spec: dict) -> list[str]:
    """The columns the pyfunc reads: the features, then the conditions column if any."""
    cond = spec.get("conditions", "none")
    return list(spec["feature_names"]) + ([] if cond == "none" else [cond])


def conditions_of(frame: pd.DataFrame, spec: dict) -> np.ndarray | None:
    """The conditions column the model was trained with, or None; DataError if absent."""
    cond = spec.get("conditions", "none")
    if cond == "none":
        return None
    if cond not in frame.columns:
        raise DataError(f"the model corrects for {cond!r} but the input has no {cond!r} "
                        "column: give the per-LS conditions (a conditions table)")
    return frame[cond].to_numpy(np.float64)


def log_detector_model(detector: Detector, spec: dict, example: pd.DataFrame,
                       name: str = "model") -> str:
    """Log ``detector`` as a pyfunc with a signature; returns the model URI."""
    with tempfile.TemporaryDirectory() as tmp:
        det_dir = detector.save(Path(tmp) / "detector")
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        features = example[input_columns(spec)].astype(np.float64)
        output = pd.DataFrame({"score": detector.score(
            features[spec["feature_names"]].to_numpy(), conditions_of(features, spec))})
        if spec.get("thresholds"):
            output["decision"] = "GREY"
        info = mlflow.pyfunc.log_model(
            name=name, python_model=DetectorModel(),
            artifacts={"detector": str(det_dir), "spec": str(spec_file)},
            signature=infer_signature(features, output), input_example=None,
            pip_requirements=PIP_REQUIREMENTS)
    return info.model_uri


def load_model(uri: str):
    return mlflow.pyfunc.load_model(uri)


def load_detector_and_spec(uri: str) -> tuple[Detector, dict]:
    """The detector and spec inside a logged dc_mlops model (to re-log it as a certifier)."""
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    return model.detector, dict(model.spec)

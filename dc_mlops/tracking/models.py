"""Detectors as MLflow models: one pyfunc per trained detector, self-contained.

The pyfunc takes the raw feature table (the columns of the PD's feature set, plus the
conditions column ``spec["conditions"]`` (``pileup`` or ``lumi``) when the detector corrects
for run conditions, and ``runId``/``lumiId`` when it reads each LS in its run context; other
columns are ignored) and returns one row per LS, in the input's order, with its decision
value ``score`` and, once cut-offs are attached, the ``decision`` GOOD / BAD / GREY. The detector's scaler lives in
its saved folder, so nothing else is needed to certify.

The model is logged *from code* (MLflow's models-from-code: ``python_model`` is the path of
``detector_pyfunc.py``, a file that calls ``set_model``), never pickled: loading a model runs
our reviewed code, not a CloudPickle blob, and MLflow has nothing to warn about. Each model
carries an input example (a few validation LS) and an explicit signature, so the MLflow UI
shows what goes in and out and a caller's table is checked against it.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from dc_mlops.data.correction import conditions_matrix
from dc_mlops.data.tables import feature_matrix
from dc_mlops.detectors.base import Detector
from dc_mlops.errors import DataError
from dc_mlops.evaluation.greyzone import decide, lone_flags

PIP_REQUIREMENTS = ["dc_mlops", "mlflow==3.17.2", "tensorflow==2.21.0", "keras==3.15.1",
                    "scikit-learn==1.9.1", "pandas", "numpy", "pyarrow"]
#: the file MLflow copies into the model and runs at load time (models from code)
MODEL_CODE = Path(__file__).with_name("detector_pyfunc.py")
#: LS of the input example stored with each model (small: it is shown in the UI)
N_EXAMPLE = 5


class DetectorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: feature table in, per-LS score (and decision) out."""

    def load_context(self, context) -> None:
        from dc_mlops.detectors import load_detector
        self.detector = load_detector(context.artifacts["detector"])
        self.spec = json.loads(Path(context.artifacts["spec"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        order = np.arange(len(model_input))
        runs = None
        if self.detector.context_ls:  # neighbours are read in (run, LS) order
            missing = [c for c in CONTEXT_COLUMNS if c not in model_input.columns]
            if missing:
                raise DataError(f"the model reads each LS in its run context but the input "
                                f"has no {missing[0]!r} column")
            order = np.lexsort((model_input["lumiId"].to_numpy(),
                                model_input["runId"].to_numpy()))
            model_input = model_input.iloc[order]
            runs = model_input["runId"].to_numpy()
        X = feature_matrix(model_input, self.spec["feature_names"], "model input")
        out = self.decide(X, conditions_of(model_input, self.spec), runs)
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return out.iloc[back].reset_index(drop=True)

    def decide(self, X: np.ndarray, conditions: np.ndarray | None = None,
               runs: np.ndarray | None = None) -> pd.DataFrame:
        """Scores (and decisions, once cut-offs are attached) of a feature matrix (LS grouped
        by run in LS order, ``runs`` their runs, when the detector reads run context)."""
        scores = self.detector.score(X, conditions, runs)
        out = pd.DataFrame({"score": scores})
        cut = self.spec.get("thresholds")
        if cut:
            outside = None if conditions is None else self.detector.conditions_outside(conditions)
            lone = lone_flags(cut.get("t_lone"), lambda: self.detector.score(
                X, conditions, runs, context=False))
            out["decision"] = decide(scores, cut["t_good"], cut["t_bad"], outside, lone)
        return out


#: the columns that place an LS in its run, read when the detector uses run context
CONTEXT_COLUMNS = ("runId", "lumiId")


def input_columns(spec: dict) -> list[str]:
    """The columns the model reads: the PD's features (and the run conditions it corrects
    for, when the detector was fitted with them; and run and LS, when it reads run
    context)."""
    return (list(spec["feature_names"]) + spec_condition_columns(spec)
            + (list(CONTEXT_COLUMNS) if spec.get("context_ls") else []))


def spec_condition_columns(spec: dict) -> list[str]:
    """The condition columns a logged model reads (``condition_columns`` of its spec; models
    logged before it existed read their one ``conditions`` column)."""
    condition = spec.get("conditions", "none") or "none"
    if condition == "none":
        return []
    return list(spec.get("condition_columns") or [condition])


def signature(spec: dict) -> ModelSignature:
    """Feature table in (features and conditions doubles, run and LS integers), ``score``
    (and ``decision``) out."""
    inputs = Schema([ColSpec("long" if c in CONTEXT_COLUMNS else "double", c)
                     for c in input_columns(spec)])
    outputs = [ColSpec("double", "score")]
    if spec.get("thresholds"):
        outputs.append(ColSpec("string", "decision"))
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def input_example(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """A few LS of ``frame`` restricted to the model's input columns, as doubles."""
    cols = input_columns(spec)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"input example lacks column {missing[0]!r}")
    return frame[cols].head(N_EXAMPLE).astype(
        {c: np.int64 if c in CONTEXT_COLUMNS else np.float64 for c in cols}
    ).reset_index(drop=True)


def example_from_spec(spec: dict) -> pd.DataFrame:
    """A one-LS input example made from a certifier's spec alone (its smallest feature
    values, the low end of its conditions range, run 1 LS 1): for re-logging a certifier
    without its data."""
    example = pd.DataFrame([spec["feature_min"]], columns=spec["feature_names"])
    for col in spec_condition_columns(spec):
        example[col] = (spec.get("conditions_range") or [1.0])[0]
    if spec.get("context_ls"):
        example["runId"], example["lumiId"] = 1, 1
    return example


def conditions_of(frame: pd.DataFrame, spec: dict) -> np.ndarray | None:
    """The conditions the model was trained with, or None; DataError if absent."""
    cols = spec_condition_columns(spec)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(f"the model corrects for {spec['conditions']!r} but the input has no "
                        f"{missing[0]!r} column: give the per-LS conditions (a conditions "
                        "table)")
    return conditions_matrix(frame, spec["conditions"]) if cols else None


def log_detector_model(detector: Detector, spec: dict, example: pd.DataFrame,
                       name: str = "model") -> str:
    """Log ``detector`` as a pyfunc (from code, with an input example and a signature);
    returns the model URI. ``example`` is any table holding the model's input columns."""
    with tempfile.TemporaryDirectory() as tmp:
        det_dir = detector.save(Path(tmp) / "detector")
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(MODEL_CODE),
            artifacts={"detector": str(det_dir), "spec": str(spec_file)},
            signature=signature(spec), input_example=input_example(example, spec),
            pip_requirements=PIP_REQUIREMENTS)
    return info.model_uri


def load_model(uri: str):
    return mlflow.pyfunc.load_model(uri)


def predict(model, frame: pd.DataFrame) -> pd.DataFrame:
    """``model.predict`` on a table that may hold more than the model's inputs (runId,
    lumiId, labels...): only the input columns are passed, so MLflow does not warn about
    each extra column on every call; a missing input still fails, naming it."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        return model.predict(frame)
    return model.predict(frame[[c for c in schema.input_names() if c in frame.columns]])


def load_detector_and_spec(uri: str) -> tuple[Detector, dict]:
    """The detector and spec inside a logged dc_mlops model (to re-log it as a certifier)."""
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    return model.detector, dict(model.spec)

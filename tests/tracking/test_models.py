"""Detector models in MLflow: logged from code (no pickle), with an input example and an
explicit signature; loading one gives back the detector's own scores and decisions."""
from __future__ import annotations

import logging
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest

from dc_mlops.detectors import registry
from dc_mlops.tracking.models import (MODEL_CODE, input_columns, load_detector_and_spec,
                                      log_detector_model, predict)

NAMES = [f"qgTkPt_{k}" for k in range(7)] + [f"qpVtxN_{k}" for k in range(7)]


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, len(NAMES)))
    return pd.DataFrame(X, columns=NAMES).assign(runId=315000, lumiId=np.arange(1, 121))


@pytest.fixture
def detector(frame):
    return registry.build("pca").fit(frame[NAMES].to_numpy())


class _Records(logging.Handler):
    """MLflow's loggers do not propagate to the root, so caplog cannot see them."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _log(detector, spec, frame):
    handler = _Records()
    logging.getLogger("mlflow").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mlflow.start_run():
                uri = log_detector_model(detector, spec, frame)
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    return uri, [str(w.message) for w in caught], handler.messages


def test_round_trip_scores_like_the_detector(tracking, detector, frame):
    uri, _, _ = _log(detector, {"feature_names": NAMES, "model": "pca"}, frame)
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(frame)
    assert list(out.columns) == ["score"]
    X = frame[NAMES].to_numpy(np.float32)  # the model reads features as float32
    np.testing.assert_allclose(out["score"].to_numpy(), detector.score(X), rtol=1e-6)
    again, spec = load_detector_and_spec(uri)
    assert spec["feature_names"] == NAMES
    np.testing.assert_allclose(again.score(X), detector.score(X), rtol=1e-6)


def test_decisions_follow_the_attached_cutoffs(tracking, detector, frame):
    scores = detector.score(frame[NAMES].to_numpy(np.float32))
    t_good, t_bad = np.quantile(scores, [0.3, 0.8])
    uri, _, _ = _log(detector, {"feature_names": NAMES,
                                "thresholds": {"t_good": t_good, "t_bad": t_bad}}, frame)
    out = mlflow.pyfunc.load_model(uri).predict(frame)
    expected = np.where(scores < t_good, "GOOD", np.where(scores > t_bad, "BAD", "GREY"))
    assert (out["decision"].to_numpy() == expected).all()
    assert set(expected) == {"GOOD", "GREY", "BAD"}


def test_logged_from_code_with_example_and_signature_and_no_warning(tracking, detector, frame):
    uri, py_warnings, mlflow_logs = _log(detector, {"feature_names": NAMES}, frame)
    pickle_notes = [m for m in py_warnings + mlflow_logs if "cloudpickle" in m.lower()]
    assert not pickle_notes, pickle_notes
    example_notes = [m for m in py_warnings + mlflow_logs if "input example" in m.lower()
                     and "not provided" in m.lower()]
    assert not example_notes, example_notes
    assert not [m for m in py_warnings + mlflow_logs if "\x1b[" in m], "raw colour codes"
    info = mlflow.models.get_model_info(uri)
    flavor = info.flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert flavor["model_code_path"].endswith(MODEL_CODE.name)
    assert info.signature.inputs.input_names() == NAMES
    assert info.signature.outputs.input_names() == ["score"]
    local = mlflow.artifacts.download_artifacts(uri)
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == NAMES and 0 < len(example) <= 10


def test_the_run_condition_is_an_input_when_the_detector_corrects_for_it():
    spec = {"feature_names": NAMES, "conditions": "pileup"}
    assert input_columns(spec) == NAMES + ["pileup"]
    assert input_columns({"feature_names": NAMES, "conditions": "none"}) == NAMES
    assert input_columns({"feature_names": NAMES}) == NAMES


def test_model_refuses_a_table_without_its_features(tracking, detector, frame):
    uri, _, _ = _log(detector, {"feature_names": NAMES}, frame)
    model = mlflow.pyfunc.load_model(uri)
    with pytest.raises(Exception, match="qpVtxN_0"):
        model.predict(frame.drop(columns=["qpVtxN_0"]))


def test_predict_passes_only_the_inputs_and_mlflow_stays_quiet(tracking, detector, frame):
    uri, _, _ = _log(detector, {"feature_names": NAMES}, frame)
    model = mlflow.pyfunc.load_model(uri)
    handler = _Records()
    logging.getLogger("mlflow").addHandler(handler)
    try:
        out = predict(model, frame)  # frame also holds runId and lumiId
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    assert not [m for m in handler.messages if "extra inputs" in m], handler.messages
    np.testing.assert_allclose(out["score"], model.predict(frame[NAMES])["score"])
    with pytest.raises(Exception, match="qpVtxN_0"):
        predict(model, frame.drop(columns=["qpVtxN_0"]))

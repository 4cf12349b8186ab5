"""The code of every logged dc_mlops model (MLflow "models from code").

``log_detector_model`` passes this file's path as ``python_model``; MLflow copies it into the
model and runs it when the model is loaded, instead of unpickling an object. It only names
the wrapper class: everything the model knows (detector, scaler, spec, cut-offs) comes from
the model's artifacts in ``DetectorModel.load_context``. Nothing imports this module.
"""
from mlflow.models import set_model

from dc_mlops.tracking.models import DetectorModel

set_model(DetectorModel())

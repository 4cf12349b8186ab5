"""The whole chain with small settings: every step ran and the results are where users look."""
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.data.certjson import read_certjson
from dc_mlops.steps.main import MAIN_MODELS
from tests.integration.conftest import certified

pytestmark = pytest.mark.integration


def test_main_runs_every_step_and_prints_how_to_open_the_ui(main_store):
    import mlflow
    mlflow.set_tracking_uri(main_store["uri"])
    client = MlflowClient()
    exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
    runs = client.search_runs([exp.experiment_id])
    every = client.search_runs([e.experiment_id for e in client.search_experiments()])
    steps = [r.data.tags.get("dc_mlops.step") for r in runs]
    assert "certify" in [r.data.tags.get("dc_mlops.step") for r in every]  # several PDs: own experiment
    for step in ("preprocess", "evaluate", "evaluate-candidate", "promote"):
        assert step in steps, step
    candidates = {r.data.params["model"] for r in runs
                  if r.data.tags.get("dc_mlops.step") == "evaluate-candidate"}
    assert candidates == set(MAIN_MODELS.split(","))
    out = main_store["stdout"]
    assert "== dc_mlops main: done ==" in out and "mlflow ui --backend-store-uri" in out
    folder = certified(main_store)  # fails with main's alarms when nothing was certified
    summary = main_store["summary"]
    counts = summary["counts"]
    assert counts["ls_good"] + counts["ls_bad"] + counts["ls_grey"] \
        + counts["ls_low_statistics"] + counts["ls_dcs_bad"] == counts["ls_total"]
    assert read_certjson(folder / "certified_golden.json").n_ls == counts["ls_good"]
    # the outcome, against the new era's Golden JSON: no more wrong decisions than the
    # targets allow (certifying GOOD without the known failures to support it let 3.9 % of
    # the failures through, and with unjudged subsystems 80 %: both fail here)
    assert not summary["good_as_bad_rate"] > 0.01, summary["good_as_bad_rate"]
    assert not summary["bad_as_good_rate"] > 0.01, summary["bad_as_good_rate"]
    # nothing is GOOD for the Golden JSON while a subsystem is not judged, and main says so
    if summary.get("not_judged"):
        assert counts["ls_good"] == 0 and "nothing certified GOOD" in out
    assert client.get_model_version_by_alias("dc-certifier-ZeroBias", "production")
    mlflow.set_tracking_uri(None)

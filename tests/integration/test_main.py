"""The whole chain with tiny settings: every step ran and the results are where users look."""
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.data.certjson import read_certjson
from dc_mlops.steps.main import MAIN_MODELS

pytestmark = pytest.mark.integration


def test_main_runs_every_step_and_prints_how_to_open_the_ui(main_store):
    import mlflow
    mlflow.set_tracking_uri(main_store["uri"])
    client = MlflowClient()
    exp = client.get_experiment_by_name("dc-mlops-ZeroBias")
    runs = client.search_runs([exp.experiment_id])
    steps = [r.data.tags.get("dc_mlops.step") for r in runs]
    for step in ("preprocess", "train", "evaluate", "promote", "certify"):
        assert step in steps, step
    trained = {r.data.params["model"] for r in runs if r.data.tags.get("dc_mlops.step") == "train"}
    assert trained == set(MAIN_MODELS)
    assert client.get_model_version_by_alias("dc-certifier-ZeroBias", "production")
    out = main_store["stdout"]
    assert "mlflow ui --backend-store-uri" in out and "== dc_mlops main: done ==" in out
    summary = main_store["summary"]
    counts = summary["counts"]
    assert counts["ls_good"] + counts["ls_bad"] + counts["ls_grey"] + counts["ls_low_statistics"] \
        == counts["ls_total"]
    certified = read_certjson(main_store["cert_dir"] / "certified_golden.json")
    assert certified.n_ls == counts["ls_good"]
    mlflow.set_tracking_uri(None)

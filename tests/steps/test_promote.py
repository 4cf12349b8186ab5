"""promote: champion/challenger gate, no-op repeats, concurrent promotes."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.settings import EvaluateSettings, PreprocessSettings, PromoteSettings
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from dc_mlops.tracking.registry import production_version
from tests.steps.test_preprocess import make_era

NAME = "dc-certifier-ZeroBias"


@pytest.fixture
def evaluated(tracking, tmp_path):
    era = make_era(tmp_path / "era", n_runs=12, n_ls=40)
    pre = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id
    res = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca,iforest", seeds="0",
                                        preprocess_run=pre, max_good_as_bad=0.05))
    return pre, res


def _stages():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {str(mv.version): mv.current_stage
                for mv in MlflowClient().search_model_versions(f"name = '{NAME}'")}


def test_first_promote_registers_production_and_repeat_is_a_no_op(evaluated):
    _, ev = evaluated
    first = run_promote(PromoteSettings(pd="ZeroBias"))
    assert first.promoted and first.version == "1"
    assert str(production_version(NAME).version) == "1" and _stages() == {"1": "Production"}
    mv = production_version(NAME)
    assert "dc_mlops.reason" in mv.tags and mv.tags["dc_mlops.train_run_id"]
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@production")
    assert mv.tags["dc_mlops.train_run_id"] in set(ev.candidates["train_run_id"])
    again = run_promote(PromoteSettings(pd="ZeroBias"))
    assert not again.promoted and "already is the production" in again.reason
    assert _stages() == {"1": "Production"}
    spec = model.unwrap_python_model().spec
    assert {"thresholds", "calibration_scores", "feature_min", "feature_max"} <= set(spec)


def test_worse_or_equal_challenger_is_not_promoted(evaluated):
    pre, ev = evaluated
    run_promote(PromoteSettings(pd="ZeroBias"))
    c = ev.candidates.sort_values(["test_automation_rate", "test_roc_auc"], ascending=False)
    best, worst = c.iloc[0]["model"], c.iloc[-1]["model"]
    if tuple(c.iloc[0][["test_automation_rate", "test_roc_auc"]]) != tuple(
            c.iloc[-1][["test_automation_rate", "test_roc_auc"]]):
        worse = run_evaluate(EvaluateSettings(pd="ZeroBias", models=worst, seeds="0",
                                              preprocess_run=pre, max_good_as_bad=0.05))
        res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=worse.run_id))
        assert not res.promoted and "does not beat" in res.reason
    # the same model with another seed gives identical figures (pca is deterministic): equal
    equal = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="1",
                                          preprocess_run=pre, max_good_as_bad=0.05))
    if best == "pca":
        res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=equal.run_id))
        assert not res.promoted and "does not beat" in res.reason
    assert list(_stages().values()).count("Production") == 1


@pytest.mark.integration
def test_concurrent_promotes_leave_one_production_version(evaluated, tracking):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    dc = str(Path(sys.executable).parent / "dc-mlops")
    procs = [subprocess.Popen([dc, "-q", "promote", "--pd", "ZeroBias"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert any(p.returncode == 0 for p in procs), outs
    stages = _stages()
    assert list(stages.values()).count("Production") == 1, stages
    assert stages[str(production_version(NAME).version)] == "Production"

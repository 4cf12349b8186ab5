"""promote: targets first, champion/challenger on the same LS, no-op repeats, races."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.errors import DataError
from dc_mlops.settings import EvaluateSettings, PreprocessSettings, PromoteSettings
from dc_mlops.steps.evaluate import run_evaluate
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.promote import run_promote
from dc_mlops.tracking.registry import production_version
from tests.conftest import SMALL_WALK

NAME = "dc-certifier-ZeroBias"


def _stages():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {str(mv.version): mv.current_stage
                for mv in MlflowClient().search_model_versions(f"name = '{NAME}'")}


def test_first_promote_registers_the_best_candidate_and_a_repeat_is_a_no_op(evaluated):
    _, ev = evaluated
    first = run_promote(PromoteSettings(pd="ZeroBias"))
    assert first.promoted and first.version == "1" and first.production == "1"
    assert _stages() == {"1": "Production"}
    mv = production_version(NAME)
    best = ev.comparison.iloc[0]["model"]
    assert mv.tags["dc_mlops.model"] == best
    assert mv.tags["dc_mlops.candidate_run"] in set(ev.candidates["candidate_run_id"])
    assert float(mv.tags["dc_mlops.test_correct_automation_rate"]) > 0.8
    # the version's source is the candidate run that trained it
    assert mv.run_id == mv.tags["dc_mlops.candidate_run"]
    spec = mlflow.pyfunc.load_model(f"models:/{NAME}@production").unwrap_python_model().spec
    assert {"thresholds", "cutoffs", "calibration_scores", "feature_min", "feature_max"} <= set(spec)
    again = run_promote(PromoteSettings(pd="ZeroBias"))
    assert not again.promoted and "already is production version 1" in again.reason
    assert _stages() == {"1": "Production"}


def test_an_equal_challenger_on_the_same_ls_does_not_replace_the_champion(evaluated):
    pre, ev = evaluated
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    best = ev.comparison.iloc[0]["model"]
    other = run_evaluate(EvaluateSettings(pd="ZeroBias", models=best, seeds="3",
                                          preprocess_run=pre, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=other.run_id))
    assert "same certified LS" in res.reason
    if best in ("pca", "mahalanobis"):  # deterministic: the same figures, never better
        assert not res.promoted and "does not beat" in res.reason
    assert list(_stages().values()).count("Production") == 1


def test_nothing_is_promoted_when_no_detector_meets_the_targets(preprocessed, monkeypatch):
    import numpy as np

    from dc_mlops.detectors import registry
    from dc_mlops.detectors.baselines import PCADetector

    class Coin(PCADetector):  # ranks failures at chance: must never certify
        def _score_batch(self, X):
            return np.random.default_rng(len(X)).random(len(X))

    monkeypatch.setattr(registry, "build", lambda name, **p: Coin(**p))
    ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                       preprocess_run=preprocessed, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id))
    assert not res.promoted and "no detector meets the targets" in res.reason
    assert production_version(NAME) is None


def test_a_bins_challenger_compares_with_a_summary_champion(evaluated, tmp_path):
    """Another representation cannot score the champion's data: no crash, a stated reason."""
    from tests.steps.test_preprocess import make_era
    pre, _ = evaluated
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    era = make_era(tmp_path / "era_bins", n_runs=16, n_ls=40, seed=3)
    pre_bins = run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era),
                                                 representation="bins")).run_id
    ev = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca", seeds="0",
                                       preprocess_run=pre_bins, **SMALL_WALK))
    res = run_promote(PromoteSettings(pd="ZeroBias", evaluation_run=ev.run_id))
    assert "champion v1" in res.reason
    assert list(_stages().values()).count("Production") == 1


def test_unknown_evaluation_run_is_the_users_error(evaluated):
    with pytest.raises(DataError, match="nope"):
        run_promote(PromoteSettings(pd="ZeroBias", evaluation_run="nope"))


@pytest.mark.integration
def test_concurrent_promotes_leave_the_better_one_in_production(evaluated, tracking):
    pre, ev = evaluated
    worse = run_evaluate(EvaluateSettings(pd="ZeroBias", models="pca,iforest", seeds="0",
                                          preprocess_run=pre, max_good_as_bad=0.02,
                                          **SMALL_WALK))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    dc = str(Path(sys.executable).parent / "dc-mlops")
    procs = [subprocess.Popen([dc, "-q", "promote", "--pd", "ZeroBias", "--evaluation-run",
                               run], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for run in (ev.run_id, worse.run_id)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    stages = _stages()
    assert list(stages.values()).count("Production") == 1, stages
    assert stages[str(production_version(NAME).version)] == "Production"
    assert len(stages) <= 2

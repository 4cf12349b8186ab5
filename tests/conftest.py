"""Shared fixtures: the real CMS files in ../shared/data and a tracking store per test."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CMS fixtures not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    """A fresh SQLite tracking store; the test runs in tmp_path so nothing lands in the repo."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    import mlflow
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


# ---- a small preprocessed era, an evaluation and a promoted certifier (step and integration
# tests share them)

#: a walk over a 16-run era that certifies its last 10 runs in 3 steps
#: walk sizes for the small test eras; their ~24 known failures support a 15 % bad->GOOD claim
#: at 95 % confidence (19 needed), never 1 % (299): with the default target nothing would be
#: certified GOOD, which is right for the product and useless for testing the mechanics
#: run context of 2 LS: these runs are 40 LS with a 4-LS failure at the end, so the default
#: 8 would average a failure into a third of each run's good LS (real runs are hundreds of LS)
SMALL_WALK = dict(window_runs=6, calib_runs=2, step_runs=4, conditions="none",
                  max_bad_as_good=0.15, context_ls=2)


@pytest.fixture
def preprocessed(tracking, tmp_path):
    from dc_mlops.settings import PreprocessSettings
    from dc_mlops.steps.preprocess import run_preprocess
    from tests.steps.test_preprocess import make_era
    era = make_era(tmp_path / "era", n_runs=16, n_ls=40)
    return run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era))).run_id


@pytest.fixture
def evaluated(preprocessed):
    from dc_mlops.settings import EvaluateSettings
    from dc_mlops.steps.evaluate import run_evaluate
    return preprocessed, run_evaluate(EvaluateSettings(
        pd="ZeroBias", models="pca,mahalanobis", seeds="0", preprocess_run=preprocessed,
        **SMALL_WALK))


@pytest.fixture
def production(evaluated, tmp_path):
    """A promoted ZeroBias certifier and a new era (5 runs) to certify."""
    from dc_mlops.settings import PromoteSettings
    from dc_mlops.steps.promote import run_promote
    from tests.steps.test_preprocess import make_era
    assert run_promote(PromoteSettings(pd="ZeroBias")).promoted
    return make_era(tmp_path / "new_era", n_runs=5, n_ls=40, seed=7)

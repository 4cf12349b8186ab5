"""Storage URLs, worker plans, tickets and the study's identity (no MLflow, no TensorFlow)."""
import pytest

from dc_mlops.errors import DataError
from dc_mlops.tracking.studies import redact_url, trial_run_name
from dc_mlops.tuning import study as st


def test_storage_urls_default_rewrite_and_redaction():
    assert st.storage_url("") == "sqlite:///optuna.db"
    assert st.storage_url("postgresql://u:p@db:5432/optuna") == "postgresql+psycopg2://u:p@db:5432/optuna"
    assert redact_url("postgresql+psycopg2://user:s3cret@db:5432/optuna") == \
        "postgresql+psycopg2://db:5432/optuna"
    assert redact_url("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_worker_plan_one_per_gpu_else_n_jobs_cpu():
    assert st.plan_workers(1, "autoencoder", gpus=["0", "1"]) == ["0", "1"]
    assert st.plan_workers(4, "autoencoder", gpus=["3"]) == ["3"]
    assert st.plan_workers(2, "autoencoder", gpus=[]) == [None, None]
    assert st.plan_workers(0, "baseline") == [None]  # baselines never ask for GPUs


def test_tickets_hand_out_exactly_n():
    t = st._Tickets(3)
    assert [t.take() for _ in range(5)] == [True, True, True, False, False]


def test_study_refuses_other_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    st.create_or_load(url, "s", {"model": "pca", "pd": "ZeroBias"}, st.TuneOptions())
    st.create_or_load(url, "s", {"model": "pca", "pd": "ZeroBias"}, st.TuneOptions())  # resumes
    with pytest.raises(DataError, match="made for model='pca'"):
        st.create_or_load(url, "s", {"model": "knn", "pd": "ZeroBias"}, st.TuneOptions())


def test_trial_run_names_show_number_and_state():
    assert trial_run_name(7, "COMPLETE", 0.94123) == "trial-007 COMPLETE 0.9412"
    assert trial_run_name(12, "PRUNED") == "trial-012 PRUNED"

"""Storage URLs and connections, worker plans, tickets and the study's identity (no MLflow,
no TensorFlow)."""
import socket

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from dc_mlops.errors import DataError
from dc_mlops.tracking.studies import trial_run_name
from dc_mlops.tuning import study as st


def test_storage_urls_default_and_rewrite():
    assert st.storage_url("") == "sqlite:///optuna.db"
    assert st.storage_url("postgresql://u:p@db:5432/optuna") == "postgresql+psycopg2://u:p@db:5432/optuna"


def test_server_storages_get_a_small_checked_pool():
    kw = st.engine_kwargs("postgresql+psycopg2://u@db:5432/optuna")
    assert kw["pool_size"] + kw["max_overflow"] <= 3 and kw["pool_pre_ping"]
    assert kw["connect_args"]["connect_timeout"] <= 30  # a dead host fails in seconds
    assert "pool_size" not in st.engine_kwargs("sqlite:///o.db")


@pytest.fixture
def connections():
    """Every DB-API connection any SQLAlchemy pool opens and closes meanwhile."""
    seen = {"opened": [], "closed": []}

    def on_connect(conn, record):
        seen["opened"].append(id(conn))

    def on_close(conn, record):
        seen["closed"].append(id(conn))

    event.listen(Pool, "connect", on_connect)
    event.listen(Pool, "close", on_close)
    yield seen
    event.remove(Pool, "connect", on_connect)
    event.remove(Pool, "close", on_close)


def test_open_storage_closes_every_connection_it_opened(tmp_path, connections):
    opts = st.TuneOptions()
    for _ in range(3):  # a polling loop that reopens the storage leaks nothing
        with st.open_storage(f"sqlite:///{tmp_path / 'o.db'}", opts) as storage:
            study = st.create_or_load(storage, "s", {"model": "pca"}, opts)
            study.get_trials()
            assert len(connections["opened"]) > len(connections["closed"])  # in use now
    assert connections["opened"] and sorted(connections["opened"]) == sorted(connections["closed"])


def test_open_storage_closes_its_connections_on_error_too(tmp_path, connections):
    opts = st.TuneOptions()
    with pytest.raises(DataError):
        with st.open_storage(f"sqlite:///{tmp_path / 'o.db'}", opts) as storage:
            st.create_or_load(storage, "s", {"model": "pca"}, opts)
            st.create_or_load(storage, "s", {"model": "knn"}, opts)
    assert connections["opened"] and sorted(connections["opened"]) == sorted(connections["closed"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_database_is_one_line_without_the_password():
    url = f"postgresql://alice:S3CRET@127.0.0.1:{free_port()}/optuna"
    with pytest.raises(DataError) as err:
        st.make_storage(url, st.TuneOptions())
    msg = str(err.value)
    assert msg.startswith("cannot open the Optuna storage postgresql+psycopg2://alice:***@127.0.0.1:")
    assert "Connection refused" in msg and "S3CRET" not in msg and "\n" not in msg


def test_a_missing_driver_is_one_line():
    with pytest.raises(DataError, match="cannot open the Optuna storage mysql://u:\\*\\*\\*@db/o"):
        st.make_storage("mysql://u:pw@db/o", st.TuneOptions())


def test_worker_plan_one_per_gpu_else_n_jobs_cpu():
    assert st.plan_workers(1, "autoencoder", gpus=["0", "1"]) == ["0", "1"]
    assert st.plan_workers(4, "autoencoder", gpus=["3"]) == ["3"]
    assert st.plan_workers(2, "autoencoder", gpus=[]) == [None, None]
    assert st.plan_workers(0, "baseline") == [None]  # baselines never ask for GPUs


def test_tickets_hand_out_exactly_n():
    t = st._Tickets(3)
    assert [t.take() for _ in range(5)] == [True, True, True, False, False]


def test_study_refuses_other_data(tmp_path):
    opts = st.TuneOptions()
    with st.open_storage(f"sqlite:///{tmp_path / 'o.db'}", opts) as storage:
        st.create_or_load(storage, "s", {"model": "pca", "pd": "ZeroBias"}, opts)
        st.create_or_load(storage, "s", {"model": "pca", "pd": "ZeroBias"}, opts)  # resumes
        with pytest.raises(DataError, match="made for model='pca'"):
            st.create_or_load(storage, "s", {"model": "knn", "pd": "ZeroBias"}, opts)


def test_trial_run_names_show_number_and_state():
    assert trial_run_name(7, "COMPLETE", 0.94123) == "trial-007 COMPLETE 0.9412"
    assert trial_run_name(12, "PRUNED") == "trial-012 PRUNED"

"""The CLI's error contract: bad input is one line and exit 2, shared infrastructure failing
midway is one line and exit 3, and neither line shows a password."""
from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dc_mlops import cli
from dc_mlops.settings import PreprocessSettings
from dc_mlops.steps.preprocess import run_preprocess
from tests.steps.test_preprocess import make_era
from tests.tuning.test_study import free_port


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def failing_step(exc: Exception):
    def step(settings):
        raise exc
    return lambda entry: step


@pytest.mark.parametrize("exc, fragment", [
    (MlflowException("API request to http://alice:S3CRET@mlflow.cern.ch/api/2.0/mlflow/runs/get "
                     "failed with exception HTTPConnectionPool"),
     "error: the MLflow tracking server failed during promote: MlflowException: API request to "
     "http://alice:***@mlflow.cern.ch/"),
    (__import__("sqlalchemy").exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly")),
     "error: the database failed during promote: OperationalError:"),
])
def test_infrastructure_failing_midway_is_exit_3_in_one_line(tracking, monkeypatch, capsys, exc,
                                                            fragment):
    monkeypatch.setattr(cli, "_step", failing_step(exc))
    assert cli.main(["-q", "promote", "--pd", "ZeroBias"]) == 3
    line = one_error_line(capsys)
    assert line.startswith(fragment) and "S3CRET" not in line


def test_a_bug_is_not_hidden_as_bad_input(tracking, monkeypatch):
    monkeypatch.setattr(cli, "_step", failing_step(KeyError("x")))
    with pytest.raises(KeyError):
        cli.main(["-q", "promote", "--pd", "ZeroBias"])


def test_promote_of_a_missing_evaluation_run_is_exit_2_naming_it(tracking, capsys):
    assert cli.main(["-q", "promote", "--pd", "ZeroBias", "--evaluation-run", "nope"]) == 2
    assert one_error_line(capsys).startswith("error: run 'nope' not found in sqlite:///")


def test_tune_on_an_unreachable_database_is_one_line_and_leaves_no_run(tracking, tmp_path,
                                                                       capsys):
    era = make_era(tmp_path / "era", n_runs=10, n_ls=40)
    run_preprocess(PreprocessSettings(pd="ZeroBias", data=str(era)))
    capsys.readouterr()
    url = f"postgresql://alice:S3CRET@127.0.0.1:{free_port()}/optuna"
    assert cli.main(["-q", "tune", "--model", "pca", "--pd", "ZeroBias", "--storage", url]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: cannot open the Optuna storage "
                           "postgresql+psycopg2://alice:***@127.0.0.1:") and "S3CRET" not in line
    exp = MlflowClient().get_experiment_by_name("dc-mlops-ZeroBias")
    assert MlflowClient().search_runs([exp.experiment_id], "tags.`dc_mlops.step` = 'tune'") == []


def test_a_malformed_storage_url_is_one_line(tracking, capsys):
    assert cli.main(["-q", "tune", "--model", "pca", "--storage", "bogus://x"]) == 2
    assert one_error_line(capsys).startswith("error: parameter storage:")

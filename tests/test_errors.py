"""Passwords in URLs never reach a message of ours."""
import pytest

from dc_mlops.errors import DataError, redact


@pytest.mark.parametrize("text, expected", [
    ("http://alice:SECRET@host", "http://alice:***@host"),
    ("not found in https://alice:S3:cr3t@mlflow.cern.ch:443/x", "not found in https://alice:***@mlflow.cern.ch:443/x"),
    ("postgresql+psycopg2://optuna:pw@db:5432/optuna", "postgresql+psycopg2://optuna:***@db:5432/optuna"),
    ("s3://KEY:SECRETKEY@bucket/a and http://u:p@h", "s3://KEY:***@bucket/a and http://u:***@h"),
    ("http://:token@host/", "http://:***@host/"),
    ("http://alice@host:5000/", "http://alice@host:5000/"),  # a user name alone is no secret
    ("http://host:5000/a@b", "http://host:5000/a@b"),  # a port is not a password
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
])
def test_redact_hides_passwords_only(text, expected):
    assert redact(text) == expected


def test_every_data_error_is_redacted():
    err = DataError("preprocess run 'x' not found in\nhttp://alice:SECRET@host")
    assert str(err) == "preprocess run 'x' not found in http://alice:***@host"

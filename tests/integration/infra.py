"""Throwaway shared infrastructure for integration tests, all on 127.0.0.1 and free ports:
a PostgreSQL 15 cluster (Debian's binaries), a moto S3 endpoint, and an MLflow tracking
server over them (PostgreSQL backend store, S3 artifact destination). Each is started by a
context manager that stops it and removes its files."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.conditions import wait_for  # noqa: F401  (the integration tests wait with it)

def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries: 15 (what the docs use) or else the newest installed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: (p.parts[-3] != "15", -int(p.parts[-3]) if p.parts[-3].isdigit() else 0))
    return versions[0].parent if versions else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
#: the tracking server's SQLAlchemy pool, as docs/shared_infrastructure.md recommends
SERVER_POOL = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "2", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "3"}
BIN = Path(sys.executable).parent
# test-only credentials for the moto endpoint; the tests check none of them leaks into MLflow
AWS = {"AWS_ACCESS_KEY_ID": "dcmlopsTESTKEY42", "AWS_SECRET_ACCESS_KEY": "dcmlopsTESTSECRET4242",
       "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    return (PG_BIN / "initdb").is_file() and shutil.which("su") is not None


def pg_connections(url: str, database: str) -> int:
    """Client connections to ``database`` now (not counting the one asking)."""
    import psycopg2
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", (database,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _wait(url: str, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def postgres(databases: tuple[str, ...] = ("mlflow", "optuna")) -> Iterator[dict[str, str]]:
    """A PostgreSQL cluster owned by the `postgres` user; yields SQLAlchemy URLs per database."""
    root = Path(tempfile.mkdtemp(prefix="dcmlops-pg-"))
    os.chmod(root, 0o777)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(sock, "postgres")
    port = free_port()

    def as_pg(cmd: str) -> None:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", cmd], check=True,
                       capture_output=True, timeout=120)

    try:
        as_pg(f"{PG_BIN}/initdb -D {data} -U postgres -A trust >/dev/null")
        as_pg(f"{PG_BIN}/pg_ctl -D {data} -l {root}/log -o \"-p {port} -c listen_addresses=127.0.0.1 "
              f"-k {sock}\" -w start >/dev/null")
        for db in databases:
            as_pg(f"{PG_BIN}/createdb -h 127.0.0.1 -p {port} -U postgres {db}")
        yield {db: f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{db}" for db in databases}
    finally:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c",
                        f"{PG_BIN}/pg_ctl -D {data} -m immediate stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def s3(bucket: str = "dc-mlops-artifacts") -> Iterator[str]:
    """A moto S3 endpoint with one bucket; yields the endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **AWS})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, 30, proc)
        import boto3
        boto3.client("s3", endpoint_url=url, **_boto_kwargs()).create_bucket(Bucket=bucket)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _boto_kwargs() -> dict:
    return {"aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"], "region_name": "us-east-1"}


def bucket_keys(endpoint: str, bucket: str = "dc-mlops-artifacts") -> list[str]:
    import boto3
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs())
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


class TrackingServer:
    """`mlflow server` over PostgreSQL and S3; start/stop so tests can kill it midway."""

    def __init__(self, backend: str, s3_endpoint: str, bucket: str = "dc-mlops-artifacts"):
        self.backend, self.s3_endpoint, self.bucket = backend, s3_endpoint, bucket
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TrackingServer":
        env = {**os.environ, **AWS, **SERVER_POOL, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend,
             "--artifacts-destination", f"s3://{self.bucket}/", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(f"{self.url}/health", 240, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)

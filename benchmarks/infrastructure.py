"""Infrastructure benchmark (issues 6 and 9): what a shared tracking server costs, tuning on
PostgreSQL with 1 and 2 workers, and the database connections each holds at its peak.

Starts, on 127.0.0.1, the same stack as the integration tests (a throwaway PostgreSQL 15
cluster, a moto S3 endpoint, `mlflow server` over them) and measures, in one run, beside a
local SQLite store: the wall time per tracked run (10 params, 20 metrics over 5 steps, one
PNG artifact) and per logged model (a fitted pca detector as a pyfunc), and the trials per
hour of a small `tune` study (vanilla_ae, tiny trials) on a PostgreSQL Optuna storage with
the server as tracking, with 1 and 2 workers. Meanwhile a sampler counts the client
connections to each database (pg_stat_activity, every 50 ms) and reports the peak beside the
budget that docs/shared_infrastructure.md states.

    python benchmarks/infrastructure.py [--runs 20] [--models 5] [--trials 6]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import table, write  # noqa: E402

from tests.integration import infra  # noqa: E402  (the integration tests' throwaway stack)


def tracked_runs(n: int, png: Path) -> float:
    import mlflow
    mlflow.set_experiment("bench-runs")
    t0 = time.perf_counter()
    for i in range(n):
        with mlflow.start_run(run_name=f"run-{i}"):
            mlflow.log_params({f"p{k}": k for k in range(10)})
            for step in range(5):
                mlflow.log_metrics({f"m{k}": float(k * step) for k in range(4)}, step=step)
            mlflow.log_artifact(str(png))
    return (time.perf_counter() - t0) / n


def logged_models(n: int) -> float:
    import mlflow
    import pandas as pd

    from dc_mlops.detectors import build
    from dc_mlops.tracking.models import log_detector_model
    rng = np.random.default_rng(0)
    names = [f"q{i}_{j}" for i in range(10) for j in range(7)]
    X = rng.normal(size=(2000, len(names)))
    det = build("pca").fit(X)
    example = pd.DataFrame(X[:50], columns=names)
    mlflow.set_experiment("bench-models")
    t0 = time.perf_counter()
    for i in range(n):
        with mlflow.start_run(run_name=f"model-{i}"):
            log_detector_model(det, {"feature_names": names, "representation": "summary"}, example)
    return (time.perf_counter() - t0) / n


class PeakConnections:
    """The most client connections seen per database while the block runs."""

    def __init__(self, url: str):
        import psycopg2
        self.conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
        self.conn.autocommit = True
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("SELECT datname, count(*) FROM pg_stat_activity WHERE "
                            "datname IS NOT NULL AND pid <> pg_backend_pid() GROUP BY datname")
                for db, n in cur.fetchall():
                    self.peak[db] = max(self.peak.get(db, 0), n)
                time.sleep(0.05)

    def __enter__(self) -> "PeakConnections":
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.conn.close()


def tune_rate(storage: str, workers: int, trials: int, pre: str, name: str) -> float:
    from dc_mlops.settings import TuneSettings
    from dc_mlops.steps.tune import run_tune
    from dc_mlops.tuning.study import TuneOptions
    opts = TuneOptions(fixed={"hidden": [64], "epochs": 5, "batch_size": 128},
                       prune_startup_trials=100, retrain=False)
    settings = TuneSettings(model="vanilla_ae", pd="JetHT", storage=storage, study_name=name,
                            preprocess_run=pre)
    run_tune(TuneSettings(**{**settings.__dict__, "n_trials": 0}), opts)  # study first
    t0 = time.perf_counter()
    run_tune(TuneSettings(**{**settings.__dict__, "n_trials": trials, "n_jobs": workers}), opts)
    return trials / (time.perf_counter() - t0) * 3600


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    from dc_mlops.data.simulator import simulate, write_era
    from dc_mlops.settings import PreprocessSettings
    from dc_mlops.steps.preprocess import run_preprocess

    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="dcmlops-bench-infra-"))
    os.chdir(work)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(100), np.sin(np.arange(100) / 10))
    png = work / "curve.png"
    fig.savefig(png)
    write_era(simulate("JetHT", n_ls=6000, seed=7), work / "era")
    rows, rates, peaks = [], {}, {}
    with infra.postgres(("mlflow", "optuna")) as dbs, infra.s3() as endpoint:
        server = infra.TrackingServer(dbs["mlflow"], endpoint).start()
        try:
            for store, uri in (("local SQLite", f"sqlite:///{work / 'local.db'}"),
                               ("server (PostgreSQL + S3)", server.url)):
                os.environ["MLFLOW_TRACKING_URI"] = uri
                mlflow.set_tracking_uri(uri)
                with PeakConnections(dbs["optuna"]) as seen:
                    rows.append([store, f"{tracked_runs(args.runs, png):.3f}",
                                 f"{logged_models(args.models):.3f}"])
                peaks["server, runs and models"] = seen.peak.get("mlflow", 0)
            pre = run_preprocess(PreprocessSettings(pd="JetHT", data=str(work / "era"))).run_id
            for workers in (1, 2):
                with PeakConnections(dbs["optuna"]) as seen:
                    rates[workers] = tune_rate(dbs["optuna"], workers, args.trials, pre,
                                               f"bench-{workers}w")
                peaks[f"tune, {workers} worker(s)"] = (seen.peak.get("optuna", 0),
                                                       seen.peak.get("mlflow", 0))
                left = infra.pg_connections(dbs["optuna"], "optuna")
                peaks[f"tune, {workers} worker(s)"] += (left,)
        finally:
            server.stop()
    ratio_run = float(rows[1][1]) / float(rows[0][1])
    ratio_model = float(rows[1][2]) / float(rows[0][2])
    body = table(["tracking store", "s per tracked run", "s per logged model"], rows)
    body += (f"\n\nServer / local: **{ratio_run:.1f}x** per tracked run, **{ratio_model:.1f}x** per "
             f"logged model ({args.runs} runs: 10 params, 20 metrics over 5 steps, one PNG; "
             f"{args.models} pca pyfunc models).\n\n")
    body += table(["tune workers (PostgreSQL storage, server tracking)", "trials per hour"],
                  [[w, f"{r:,.0f}"] for w, r in rates.items()])
    body += (f"\n\n{args.trials} vanilla_ae trials of 5 epochs on 6000 simulated JetHT LS; 2 workers "
             f"/ 1 worker = {rates[2] / rates[1]:.2f}x on this 2-core machine (each worker process "
             "imports TensorFlow and gets half the cores).")
    from dc_mlops.tuning.study import MAX_OVERFLOW, POOL_SIZE
    per = POOL_SIZE + MAX_OVERFLOW
    server_pool = sum(int(v) for v in infra.SERVER_POOL.values())
    conn_rows = [["server (2 workers): tracked runs and models", "-", peaks["server, runs and models"],
                  f"<= {2 * 2 * server_pool} (2 workers x 2 engines x {server_pool})", "-"]]
    for w in (1, 2):
        optuna_peak, mlflow_peak, left = peaks[f"tune, {w} worker(s)"]
        procs = 1 if w == 1 else 1 + w  # the launcher, plus spawned workers when n_jobs > 1
        conn_rows.append([f"tune, n_jobs={w}", optuna_peak, mlflow_peak,
                          f"optuna <= {procs * per} ({procs} process(es) x {per})", left])
    body += "\n\n" + table(["what runs", "peak connections, optuna DB",
                             "peak connections, mlflow DB (server)", "budget",
                             "optuna connections left after"], conn_rows)
    body += (f"\n\nLoad average (1 min) at the start: {load:.1f} on {os.cpu_count()} cores: "
             "a machine shared with other work, so the timings above vary with it; the "
             "connection counts do not.")
    body += ("\n\nPeaks sampled every 50 ms from pg_stat_activity; the server runs with "
             f"{', '.join(f'{k}={v}' for k, v in infra.SERVER_POOL.items())} "
             "(docs/shared_infrastructure.md).")
    write("infrastructure", "Infrastructure: tracking server cost and tuning on PostgreSQL", body,
          "python benchmarks/infrastructure.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()

"""Tuning: tuned vs default detection quality under a fixed budget, and trials per hour.

On a small fixed simulated benchmark (the embedded simulator, seed 0, ``--n-ls`` LS per PD
over four eras, runs split at random by default: with the chronological split the test
split is the newest era and its drift dominates every model's test AUC), for each PD and
model:

- default: ``train`` with the detector's defaults (autoencoders: lr 1e-4, 200 epochs with
  early stopping);
- tuned: ``tune`` with ``--trials`` trials and ``--timeout`` seconds (TPE, median pruning,
  one CPU worker), its best trial retrained as a ``train`` run.

Both are compared on the test split (held-out runs, never seen by the objective, which uses
the validation good LS plus the known bad LS of earlier runs). Then trials per hour of one
study of ``vanilla_ae`` with epochs pinned (so trials cost the same) with 1 and 2 worker
processes; the wall time includes starting the workers (TensorFlow import in each).
Everything runs in a temporary directory with its own MLflow store.

    python benchmarks/tuning.py [--pds JetHT,ZeroBias] [--n-ls 8000] [--trials 12] [--timeout 150]
                                [--split-mode random|chronological]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

MODELS = ("vanilla_ae", "ocsvm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pds", default="JetHT,ZeroBias")
    ap.add_argument("--n-ls", type=int, default=8000)
    ap.add_argument("--split-mode", default="random",
                    help="random: runs of every era in every split; chronological: the "
                         "product default, where the newest era is the test split")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--timeout", type=int, default=150, help="seconds per study")
    ap.add_argument("--throughput-trials", type=int, default=8)
    ap.add_argument("--throughput-epochs", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("dc_mlops").setLevel(logging.INFO)
    for noisy in ("dc_mlops.detectors", "dc_mlops.detectors.autoencoders"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import mlflow

    from dc_mlops.settings import PreprocessSettings, SimulateSettings, TrainSettings, TuneSettings
    from dc_mlops.steps.preprocess import run_preprocess
    from dc_mlops.steps.simulate import run_simulate
    from dc_mlops.steps.train import run_train
    from dc_mlops.steps.tune import run_tune
    from dc_mlops.tuning.study import TuneOptions

    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="dc_mlops_tuning_bench_"))
    os.chdir(tmp)
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    quality, first_pre = [], None
    for pd_name in args.pds.split(","):
        era = run_simulate(SimulateSettings(pd=pd_name, n_ls=args.n_ls, seed=0, out=str(tmp / pd_name)))
        pre = run_preprocess(PreprocessSettings(pd=pd_name, data=str(era), seed=0,
                                                 split_mode=args.split_mode)).run_id
        first_pre = first_pre or (pd_name, pre)
        for model in MODELS:
            t0 = time.perf_counter()
            default = run_train(TrainSettings(model=model, pd=pd_name, preprocess_run=pre))
            t_default = time.perf_counter() - t0
            t0 = time.perf_counter()
            tuned = run_tune(TuneSettings(model=model, pd=pd_name, n_trials=args.trials,
                                          timeout=args.timeout, preprocess_run=pre))
            t_tuned = time.perf_counter() - t0
            tm = mlflow.get_run(tuned.train_run_id).data.metrics
            dm = default.metrics
            c = tuned.counts
            quality.append([pd_name, model, f"{dm['test_roc_auc']:.4f}", f"{tm['test_roc_auc']:.4f}",
                            f"{dm['test_pr_auc']:.4f}", f"{tm['test_pr_auc']:.4f}",
                            f"{tuned.best_value:.4f}",
                            f"{c['complete']}/{c['pruned']}/{c['fail']}", f"{t_default:.0f}",
                            f"{t_tuned:.0f}"])
    pd_name, pre = first_pre
    speed = []
    for n_jobs in (1, 2):
        t0 = time.perf_counter()
        res = run_tune(TuneSettings(model="vanilla_ae", pd=pd_name, n_trials=args.throughput_trials,
                                    n_jobs=n_jobs, preprocess_run=pre,
                                    study_name=f"throughput-{n_jobs}"),
                       TuneOptions(fixed={"epochs": args.throughput_epochs, "patience": 1000},
                                   prune_startup_trials=1000, retrain=False))
        wall = time.perf_counter() - t0
        n = sum(res.counts[k] for k in ("complete", "pruned", "fail"))
        speed.append([n_jobs, n, f"{wall:.0f}", f"{n / wall * 3600:.0f}"])
    speed.append(["2 vs 1", "", "", f"{float(speed[1][3]) / float(speed[0][3]):.2f}x"])

    body = (f"Simulated eras, seed 0, {args.n_ls:,} LS per PD, {args.split_mode} split of runs. "
            "Budget per "
            f"study: {args.trials} trials or {args.timeout} s (whichever first), one CPU worker. "
            "Test = held-out runs (good + bad LS), never seen by tuning; the objective is ROC AUC "
            "on validation good LS + known bad LS of earlier runs.\n\n")
    body += table(["PD", "model", "test ROC AUC default", "test ROC AUC tuned",
                   "test PR AUC default", "test PR AUC tuned", "best val ROC AUC (objective)",
                   "trials complete/pruned/fail", "default s", "tuning s (incl. retrain)"], quality)
    body += (f"\n\nTrials per hour, {pd_name} vanilla_ae, {args.throughput_epochs} epochs pinned, "
             f"no pruning, {args.throughput_trials} trials (wall time includes starting the "
             "workers):\n\n")
    body += table(["workers", "trials", "wall s", "trials/hour"], speed)
    body += f"\n\nTotal benchmark wall time: {time.perf_counter() - start:.0f} s."
    write("tuning", "Tuning: tuned vs default, trials per hour", body,
          "python benchmarks/tuning.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()

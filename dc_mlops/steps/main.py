"""The ``main`` chain on the embedded simulator: simulate -> preprocess -> train a set of
detectors, ending with a comparison and the command that opens the MLflow UI.

(evaluate, promote and certify join the chain as they are built.) Every step reuses
finished work: the simulated era folder is cached under data/simulated/, preprocess reuses
its finished run.
"""
from __future__ import annotations

import logging
from pathlib import Path

from dc_mlops.settings import MainSettings, PreprocessSettings, SimulateSettings, TrainSettings
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.simulate import run_simulate
from dc_mlops.tracking.runs import tracking_uri

log = logging.getLogger("dc_mlops")

#: a small budget per detector so the chain runs in minutes on 2 CPU cores
MAIN_MODELS = ("sparse_ae", "vanilla_ae", "pca", "iforest", "knn")
MAIN_EPOCHS = 40


def run_main(s: MainSettings) -> dict[str, str]:
    from dc_mlops.steps.train import run_train
    out = Path(SimulateSettings().out) / f"{s.pd}-seed{s.seed}-n{s.n_ls}"
    if not (out / "meta.json").is_file():
        run_simulate(SimulateSettings(pd=s.pd, n_ls=s.n_ls, seed=s.seed, out=str(out)))
    pre = run_preprocess(PreprocessSettings(pd=s.pd, data=str(out), seed=s.seed))
    results = {}
    for model in MAIN_MODELS:
        log.info("main: training %s", model)
        results[model] = run_train(TrainSettings(model=model, pd=s.pd, seed=s.seed,
                                                 epochs=MAIN_EPOCHS, learning_rate=1e-3,
                                                 preprocess_run=pre.run_id))
    print("\n== dc_mlops main: done ==")
    print(f"simulated era: {out}")
    print(f"preprocess run: {pre.run_id}{' (reused)' if pre.reused else ''}")
    print(f"{'model':<12} {'test ROC AUC':>12} {'test PR AUC':>12} {'fit s':>8}")
    for model, r in results.items():
        m = r.metrics
        print(f"{model:<12} {m.get('test_roc_auc', float('nan')):>12.4f} "
              f"{m.get('test_pr_auc', float('nan')):>12.4f} {m['fit_seconds']:>8.1f}")
    print(f"\nOpen the results:  mlflow ui --backend-store-uri {tracking_uri()} --port 5000\n"
          f"then browse http://127.0.0.1:5000 (experiment dc-mlops-{s.pd}).")
    return {"preprocess": pre.run_id, **{m: r.run_id for m, r in results.items()}}

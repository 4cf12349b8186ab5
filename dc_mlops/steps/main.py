"""The ``main`` chain on the embedded simulator, end to end:

simulate the history (2018A-D; the run-wise chronological split trains on the early runs and
tests on the latest) -> preprocess -> train a set of detectors with a small budget ->
evaluate them (grey zone at the default error-rate targets) -> promote the best to the
Production certifier -> simulate new runs of the latest era (another seed) -> certify them. It ends with a
printed summary and the command that opens the MLflow UI on the results. Every step reuses
finished work: the simulated folders are cached under data/simulated/, preprocess and
evaluate reuse finished runs, promote is a no-op when the champion is unchanged.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from dc_mlops.settings import (CertifySettings, EvaluateSettings, MainSettings,
                               PreprocessSettings, PromoteSettings, SimulateSettings,
                               TrainSettings)
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.simulate import run_simulate
from dc_mlops.tracking import runs as tr

log = logging.getLogger("dc_mlops")

#: a small budget per detector so the chain runs in minutes on 2 CPU cores
MAIN_MODELS = ("sparse_ae", "vanilla_ae", "pca", "iforest", "knn")
MAIN_EPOCHS = 40
MAIN_LEARNING_RATE = 1e-3
HISTORY_ERAS = "2018A,2018B,2018C,2018D"
NEW_ERA = "2018D"


def _simulated(pd_name: str, eras: str, n_ls: int, seed: int) -> Path:
    out = Path(SimulateSettings().out) / f"{pd_name}-{eras.replace(',', '')}-seed{seed}-n{n_ls}"
    if not (out / "meta.json").is_file():
        run_simulate(SimulateSettings(pd=pd_name, era=eras, n_ls=n_ls, seed=seed, out=str(out)))
    return out


def run_main(s: MainSettings) -> dict:
    from dc_mlops.steps.certify import run_certify
    from dc_mlops.steps.evaluate import run_evaluate
    from dc_mlops.steps.promote import run_promote
    from dc_mlops.steps.train import run_train

    history = _simulated(s.pd, HISTORY_ERAS, s.n_ls, s.seed)
    pre = run_preprocess(PreprocessSettings(pd=s.pd, data=str(history), seed=s.seed))
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    for model in MAIN_MODELS:  # the chain's small budget; finished runs are reused
        if tr.find_train_run(exp, model, pre.run_id, s.seed) is None:
            run_train(TrainSettings(model=model, pd=s.pd, seed=s.seed, epochs=MAIN_EPOCHS,
                                    learning_rate=MAIN_LEARNING_RATE, preprocess_run=pre.run_id))
    ev = run_evaluate(EvaluateSettings(pd=s.pd, models=",".join(MAIN_MODELS), seeds=str(s.seed),
                                       preprocess_run=pre.run_id))
    promo = run_promote(PromoteSettings(pd=s.pd, evaluation_run=ev.run_id))
    new_era = _simulated(s.pd, NEW_ERA, max(s.n_ls // 4, 2000), s.seed + 1)
    out = Path("outputs") / f"certify-{s.pd}-{NEW_ERA}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    cert = run_certify(CertifySettings(pd=s.pd, data=str(new_era), out=str(out)))
    _print_summary(s, pre.run_id, ev, promo, cert)
    return {"preprocess": pre.run_id, "evaluate": ev.run_id, "promote": promo.run_id,
            "certify": cert.run_id, "out": str(out)}


def _print_summary(s: MainSettings, pre_run: str, ev, promo, cert) -> None:
    print("\n== dc_mlops main: done ==")
    print(f"preprocess run {pre_run}; evaluate run {ev.run_id}")
    print(f"{'model':<12} {'automation':>10} {'bad->GOOD':>10} {'good->BAD':>10} {'ROC AUC':>8}")
    for r in ev.comparison.itertuples():
        print(f"{r.model:<12} {r.test_automation_rate_mean:>10.3f} {r.test_bad_as_good_rate_mean:>10.4f}"
              f" {r.test_good_as_bad_rate_mean:>10.4f} {r.test_roc_auc_mean:>8.4f}")
    print(f"promote: {'promoted version ' + promo.version if promo.promoted else 'kept'}"
          f" ({promo.reason})")
    c = cert.summary["counts"]
    print(f"certified {NEW_ERA}: {c['ls_good']} GOOD, {c['ls_bad']} BAD, {c['ls_grey']} grey "
          f"(automation {cert.summary['automation_rate']:.1%}), "
          f"in domain: {cert.summary['domain']['in_domain']} -> {cert.out}")
    if "agreement_with_golden" in cert.summary:
        a = cert.summary["agreement_with_golden"]
        print(f"agreement with the era's Golden JSON: bad->GOOD {a['era_bad_as_good_rate']:.4f}, "
              f"good->BAD {a['era_good_as_bad_rate']:.4f}")
    print(f"\nOpen the results:  mlflow ui --backend-store-uri {tr.tracking_uri()} --port 5000\n"
          f"then browse http://127.0.0.1:5000 (experiment dc-mlops-{s.pd}).")

"""The ``main`` chain on the embedded simulator, end to end, for every PD at once:

simulate the history (2018A-D, the four PDs on the same runs, LS, conditions and failures)
-> per PD: preprocess -> walk-forward evaluation of a few detectors (the rolling protocol)
-> promote the best that meets the targets -> simulate new runs of the latest era (another
seed) -> certify them for all PDs together -> print an honest summary: automation, the
measured rates against the era's Golden JSON, which model and version decided for each PD,
and a loud line for anything wrong (a detector ranking failures below chance, a rate over
its target, an era out of domain, a PD with no certifier). Every step reuses finished work:
the simulated folders are cached under ``data/simulated/``, preprocess and evaluate reuse
finished runs, promote is a no-op when the champion is unchanged.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from dc_mlops.settings import (PDS, CertifySettings, EvaluateSettings, MainSettings,
                               PreprocessSettings, PromoteSettings, SimulateSettings)
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.simulate import run_simulate
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.studies import detached_from_launcher
from dc_mlops.tracking.ui import open_hint, run_name, runs_url

log = logging.getLogger("dc_mlops")

#: the chain's budget: two fast baselines, one seed, a walk of a few steps (each step fits
#: calib_folds + 1 models; the autoencoders are compared with `evaluate --models`)
MAIN_MODELS = "pca,knn"
MAIN_SEEDS = "0"


def main_walk(n_runs: int) -> dict:
    """Walk-forward sizes for the simulated history: ``evaluate``'s defaults are made for a
    real era (hundreds of runs); main's history has tens, so its window holds ~45 % of them
    and the rest is certified in about four steps."""
    window = max(6, round(0.45 * n_runs))
    return dict(window_runs=window, calib_runs=max(2, window // 4),
                step_runs=max(3, round(0.14 * n_runs)))
HISTORY_ERAS = "2018A,2018B,2018C,2018D"
NEW_ERA = "2018D"
MAIN_EXPERIMENT = "dc-mlops"


@dataclass(frozen=True)
class _PDResult:
    pd: str
    preprocess_run: str
    evaluation: object
    promotion: object


def _simulated(pd_name: str, eras: str, n_ls: int, seed: int) -> Path:
    out = Path(SimulateSettings().out) / f"{pd_name}-{eras.replace(',', '')}-seed{seed}-n{n_ls}"
    if not (out / "meta.json").is_file():
        run_simulate(SimulateSettings(pd=pd_name, era=eras, n_ls=n_ls, seed=seed, out=str(out)))
    return out


def run_main(s: MainSettings) -> dict:
    from dc_mlops.steps.certify import run_certify
    from dc_mlops.steps.evaluate import run_evaluate
    from dc_mlops.steps.promote import run_promote

    pds = list(PDS) if s.pd == "all" else [s.pd]
    history = _simulated(s.pd, HISTORY_ERAS, s.n_ls, s.seed)
    new_era = _simulated(s.pd, NEW_ERA, max(s.n_ls // 5, 2000), s.seed + 1)
    results = []
    with detached_from_launcher():  # under `mlflow run`, the launcher points at main's run
        for pd_name in pds:
            pre = run_preprocess(PreprocessSettings(pd=pd_name, data=str(history)))
            walk = main_walk(_n_runs(history))
            ev = run_evaluate(EvaluateSettings(pd=pd_name, models=MAIN_MODELS, seeds=MAIN_SEEDS,
                                               preprocess_run=pre.run_id, **walk))
            promo = run_promote(PromoteSettings(pd=pd_name, evaluation_run=ev.run_id))
            results.append(_PDResult(pd_name, pre.run_id, ev, promo))
        certifiable = [r.pd for r in results if r.promotion.production]
        out = Path("outputs") / f"certify-{s.pd}-{NEW_ERA}-{dt.datetime.now():%Y%m%d-%H%M%S}"
        cert = None
        if certifiable:
            # pd=all: the Golden JSON needs every subsystem judged (certify says which are not)
            cert = run_certify(CertifySettings(pd=s.pd if s.pd != "all" else "all",
                                               data=str(new_era), out=str(out)))
    lines = summary_lines(s, results, cert)
    exp = tr.ensure_experiment(MAIN_EXPERIMENT)
    with tr.tracked_run(exp, "main", run_name("main", pd=s.pd),
                        tags={tr.TAG_PD: s.pd, **{f"dc_mlops.evaluation_run.{r.pd}":
                                                  r.evaluation.run_id for r in results},
                              **({"dc_mlops.certify_run": cert.run_id} if cert else {})}) as run:
        tr.log_params({"pd": s.pd, "n_ls": s.n_ls, "seed": s.seed, "models": MAIN_MODELS,
                       "seeds": MAIN_SEEDS, **main_walk(_n_runs(history))})
        if cert is not None:
            tr.log_metrics({k: v for k, v in cert.summary.items()
                            if k in ("automation", "good_as_bad_rate", "bad_as_good_rate",
                                     "contamination") and isinstance(v, float)})
        tr.log_text("\n".join(lines) + "\n", "summary.txt")
    print("\n".join(lines))
    return {"run": run.info.run_id, "results": results, "certify": cert,
            "out": str(out) if cert else ""}


def _n_runs(era: Path) -> int:
    import pandas as pd
    return int(pd.read_parquet(era / "conditions.parquet", columns=["run"])["run"].nunique())


def summary_lines(s: MainSettings, results: list[_PDResult], cert) -> list[str]:
    """What a DC expert reads at the end: per PD, then the certified era, then any alarm."""
    alarms: list[str] = []
    lines = ["", "== dc_mlops main: done ==",
             f"{'PD':<11} {'best now':<11} {'Production':>14} {'correct auto':>12} "
             f"{'good->BAD':>9} {'bad->GOOD':>9} {'ROC AUC':>7}"]
    for r in results:
        comp = r.evaluation.comparison
        best = comp.iloc[0]
        promo = r.promotion
        version = f"v{promo.production} {promo.production_model}" if promo.production else "none"
        lines.append(f"{r.pd:<11} {best['model']:<11} {version:>14} "
                     f"{best['test_correct_automation_rate_mean']:>12.3f} "
                     f"{best['test_good_as_bad_rate_mean']:>9.4f} "
                     f"{best['test_bad_as_good_rate_mean']:>9.4f} "
                     f"{best['test_roc_auc_mean']:>7.3f}")
        for row in comp.itertuples():
            if row.test_roc_auc_mean < 0.5:
                alarms.append(f"!! {r.pd} {row.model}: ROC AUC {row.test_roc_auc_mean:.3f} ranks "
                              "the PD's failures below chance")
        if not promo.production:
            alarms.append(f"!! {r.pd}: no certifier in Production ({promo.reason})")
        elif not best["meets_targets"]:
            alarms.append(f"!! {r.pd}: no detector of this evaluation meets the targets "
                          f"({best['why_not']}); Production stays version {promo.production}")
    target_gab = EvaluateSettings().max_good_as_bad
    target_bag = EvaluateSettings().max_bad_as_good
    if cert is not None:
        sm = cert.summary
        c = sm["counts"]
        models = ", ".join(f"{m['pd']} {m['name']} v{m['version']}" for m in sm["models"])
        lines.append(f"certified {NEW_ERA} (new runs, {c['ls_total']} LS): {c['ls_good']} GOOD, "
                     f"{c['ls_bad']} BAD, {c['ls_grey']} to review, "
                     f"{c['ls_low_statistics']} low statistics; automation {sm['automation']:.1%}")
        if "good_as_bad_rate" in sm:
            contamination = sm.get("contamination")
            lines.append(f"against the era's Golden JSON: good->BAD {sm['good_as_bad_rate']:.2%}"
                         f" (target {target_gab:.0%}), bad->GOOD {sm['bad_as_good_rate']:.2%}"
                         f" (target {target_bag:.0%}), contamination of the certified "
                         f"Golden JSON {'n/a (nothing GOOD)' if contamination is None or contamination != contamination else f'{contamination:.3%}'}")
            if sm["good_as_bad_rate"] > target_gab:
                alarms.append(f"!! good->BAD {sm['good_as_bad_rate']:.2%} is over its target")
            if sm["bad_as_good_rate"] > target_bag:
                alarms.append(f"!! bad->GOOD {sm['bad_as_good_rate']:.2%} is over its target")
        lines.append(f"decided by: {models}; outputs in {cert.out}")
        for m in sm["models"]:
            cut = m.get("cutoffs", {})
            if cut and not cut.get("t_good_supported", True):
                alarms.append(
                    f"!! {m['pd']}: {cut['n_known_bad']} known failures cannot support "
                    f"certifying GOOD at bad->GOOD <= {cut['max_bad_as_good']:g} "
                    f"({cut['bad_needed']} needed): it flags BAD and sends the rest to review")
        not_judged = sm.get("not_judged") or {}
        if not_judged:
            subs = sorted({x for v in not_judged.values() for x in v})
            alarms.append(f"!! nothing certified GOOD: {', '.join(subs)} not judged "
                          f"({', '.join(not_judged)} without a certifier); the BAD flags and "
                          "the grey list stand")
        for pd_name, d in sm["domain"].items():
            if not d["in_domain"]:
                alarms.append(f"!! {pd_name}: the new era is outside the certifier's domain "
                              f"({'; '.join(d['reasons'])}){'' if sm['forced'] else ': nothing GOOD'}")
    else:
        alarms.append("!! nothing was certified: no PD has a certifier in Production")
    lines += alarms
    lines += [""] + open_hint(tr.ensure_experiment(tr.experiment_name(results[0].pd)))
    if len(results) > 1:
        lines += [f"                      {runs_url(tr.ensure_experiment(tr.experiment_name(r.pd)))}"
                  for r in results[1:]]
    return lines

"""The ``main`` chain on the embedded simulator, end to end, for every PD at once:

simulate the history (runs of 2018D, the four PDs on the same runs, LS, conditions and
failures) -> per PD: preprocess -> walk-forward evaluation of two detectors (the rolling
protocol) -> promote, for all PDs at once, the combination of detectors whose walks combined
per LS, as ``certify pd=all`` decides (:mod:`dc_mlops.evaluation.combined`), meet the
targets and decide the most (``promote pd=all``) -> simulate new runs of
2018D (another seed) -> certify them for all PDs together -> print an honest summary: how
much was decided automatically, the measured rates against the truth, which model and
version decided for each PD, and a loud line for anything wrong (a detector ranking
failures below chance, a rate over its target, an era out of domain, a PD with no
certifier, a GOOD cut-off the known failures cannot support). Every step reuses finished
work: the simulated folders are cached under ``data/simulated/``, preprocess and evaluate
reuse finished runs, promote is a no-op when the champion is unchanged.

Why one era: a certifier is trained on and used within an era (new alignment, calibration
and beam-spot positions make a new era a new domain, which ``certify`` reports); era
transfer is measured as a stress test in ``benchmarks/detectors.py``. Why 40 000 LS: the
combined GOOD cut-off needs 299 known failure LS before it can claim bad->GOOD <= 1 %, and
the walk needs them before the steps it certifies; about 4 % of LS are failures.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.evaluation.combined import (combined_walk, describe_hardest,
                                          hindsight_automation)
from dc_mlops.evaluation.greyzone import decision_metrics
from dc_mlops.evaluation.selection import best_seed
from dc_mlops.settings import (PDS, CertifySettings, EvaluateSettings, MainSettings,
                               PreprocessSettings, PromoteSettings, SimulateSettings)
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.simulate import run_simulate
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.studies import detached_from_launcher
from dc_mlops.tracking.ui import open_hint, run_name, runs_url

log = logging.getLogger("dc_mlops")

#: the chain's budget: two fast detectors, mahalanobis in two score modes (one distance, or
#: one per histogram: which is better differs by PD), one seed, a walk of a few steps (each
#: step fits calib_folds + 1 models; the autoencoders are compared with `evaluate --models`)
MAIN_MODELS = "mahalanobis,mahalanobis:score_mode=histogram,pca"
MAIN_SEEDS = "0"
HISTORY_ERAS = "2018D"
NEW_ERA = "2018D"
MAIN_EXPERIMENT = tr.MULTI_PD_EXPERIMENT


def main_walk(n_runs: int) -> dict:
    """Walk-forward sizes for the simulated history: a window of 40 runs (about a week of
    2018D), about six steps over the rest, and a 2-fold cross-fitted BAD cut-off (3 fits
    per step instead of ``evaluate``'s 5: main's time budget; each fold model sees half the
    window, so its cut-off errs high). Why 40: the window must hold the fills' bunch
    schemes and luminosity range, or their LS are outside the fitted conditions and go to
    review; with 20 runs that was 23 % of the LS (18 % for an unseen bunch scheme), with 40
    runs 1.5 %."""
    window = min(40, max(6, round(0.45 * n_runs)))
    return dict(window_runs=window, calib_runs=max(2, window // 4),
                step_runs=max(3, round((n_runs - window) / 6)), calib_folds=2)


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
    new_era = _simulated(s.pd, NEW_ERA, max(s.n_ls // 8, 2000), s.seed + 1)
    evaluated = []
    combination = None
    with detached_from_launcher():  # under `mlflow run`, the launcher points at main's run
        for pd_name in pds:
            pre = run_preprocess(PreprocessSettings(pd=pd_name, data=str(history)))
            walk = main_walk(_n_runs(history))
            ev = run_evaluate(EvaluateSettings(pd=pd_name, models=MAIN_MODELS, seeds=MAIN_SEEDS,
                                               preprocess_run=pre.run_id, **walk))
            evaluated.append((pd_name, pre.run_id, ev))
        if len(pds) > 1:  # the combination that is best for the Golden JSON
            combination = run_promote(PromoteSettings(
                pd="all", evaluation_run=",".join(ev.run_id for *_, ev in evaluated)))
            promos = combination.per_pd
        else:
            promos = {pds[0]: run_promote(PromoteSettings(pd=pds[0],
                                                          evaluation_run=evaluated[0][2].run_id))}
        results = [_PDResult(p, pre, ev, promos[p]) for p, pre, ev in evaluated]
        walk = _combined(results, EvaluateSettings().max_bad_as_good,
                         EvaluateSettings().max_good_as_bad)
        certifiable = [r.pd for r in results if r.promotion.production]
        out = Path("outputs") / f"certify-{s.pd}-{NEW_ERA}-{dt.datetime.now():%Y%m%d-%H%M%S}"
        cert = None
        if certifiable:
            # pd=all: the Golden JSON needs every subsystem judged (certify says which are not)
            cert = run_certify(CertifySettings(pd=s.pd if s.pd != "all" else "all",
                                               data=str(new_era), out=str(out)))
    lines = summary_lines(s, results, cert, walk, combination)
    exp = tr.ensure_experiment(MAIN_EXPERIMENT)
    with tr.tracked_run(exp, "main", run_name("main", pd=s.pd),
                        tags={tr.TAG_PD: s.pd, **{f"dc_mlops.evaluation_run.{r.pd}":
                                                  r.evaluation.run_id for r in results},
                              **({"dc_mlops.certify_run": cert.run_id} if cert else {})}) as run:
        tr.log_params({"pd": s.pd, "n_ls": s.n_ls, "seed": s.seed, "models": MAIN_MODELS,
                       "seeds": MAIN_SEEDS, **main_walk(_n_runs(history))})
        if walk is not None:
            tr.log_metrics({k: v for k, v in walk[1].items() if np.isfinite(v)})
            tr.log_frame(walk[0], "", "combined_walk.parquet")
        if cert is not None:
            tr.log_metrics({f"certify_{k}": v for k, v in cert.summary.items()
                            if k in ("automation", "good_as_bad_rate", "bad_as_good_rate",
                                     "contamination") and isinstance(v, float)})
        tr.log_text("\n".join(lines) + "\n", "summary.txt")
    print("\n".join(lines))
    return {"run": run.info.run_id, "results": results, "certify": cert,
            "out": str(out) if cert else ""}


def _combined(results: list[_PDResult], max_bad_as_good: float, max_good_as_bad: float
              ) -> tuple[pd.DataFrame, dict] | None:
    """The PDs' walks combined per LS (each PD's Production certifier when it was walked in
    this evaluation, else its best candidate), with SPEC §4.2 figures on the flagged failures
    of every subsystem (``walk_*``); None for one PD."""
    if len(results) < 2:
        return None
    walks, known = {}, {}
    for r in results:
        runs = set(r.evaluation.candidates["candidate_run_id"])
        run = r.promotion.production_run if r.promotion.production_run in runs else \
            best_seed(r.evaluation.candidates, r.evaluation.comparison.iloc[0]["model"]
                      )["candidate_run_id"]
        walks[r.pd] = tr.read_parquet_artifact(run, "decisions.parquet")
        known[r.pd] = tr.read_parquet_artifact(run, tr.KNOWN_FAILURES, missing_ok=True)
    # as certify: p_good rests on every failure known before the step (None: an older run)
    d = combined_walk(walks, max_bad_as_good, max_good_as_bad, failures=known)
    m = decision_metrics(d["decision"], d["label"], d["failure"], "walk")
    supported = d.groupby("step")["p_good"].first() < 1
    m["walk_steps_supported"] = float(supported.sum())
    m["walk_steps"] = float(len(supported))
    m["walk_hindsight_automation_rate"], m["walk_hindsight_p_good"] = hindsight_automation(
        d, max_bad_as_good)
    # the steps whose cut-off certified GOOD: the steady state, without the first steps that
    # certify nothing GOOD for want of known failures (and so let none through)
    rows = d["p_good"].to_numpy() < 1
    m |= {k.replace("walk_", "walk_certifying_"): v for k, v in decision_metrics(
        d["decision"][rows], d["label"][rows], d["failure"][rows], "walk").items()}
    return d, m


def _n_runs(era: Path) -> int:
    import pandas as pd
    return int(pd.read_parquet(era / "conditions.parquet", columns=["run"])["run"].nunique())


def summary_lines(s: MainSettings, results: list[_PDResult], cert,
                  walk: tuple[pd.DataFrame, dict] | None = None, combination=None) -> list[str]:
    """What a DC expert reads at the end: per PD, the PDs combined over the walk, the
    certified new runs, then any alarm."""
    alarms: list[str] = []
    target_gab = EvaluateSettings().max_good_as_bad
    target_bag = EvaluateSettings().max_bad_as_good
    lines = ["", "== dc_mlops main: done ==",
             f"Walk-forward over the history (each LS certified once, by models that saw only "
             f"earlier runs); targets good->BAD <= {target_gab:.0%}, bad->GOOD <= "
             f"{target_bag:.0%}",
             "Each PD alone, on the failures of its own subsystems (the Golden JSON needs every "
             "PD: see 'All PDs together')"]
    # model specs (mahalanobis:score_mode=histogram) are longer than names: fit the columns
    wide = max([12] + [len(str(m)) for r in results for m in r.evaluation.comparison["model"]])
    lines.append(f"{'PD':<11} {'best alone':<{wide}} {'Production':>{wide + 4}} "
                 f"{'decided right':>13} {'good->BAD':>9} {'bad->GOOD':>9} {'ROC AUC':>7}")
    for r in results:
        comp = r.evaluation.comparison
        best = comp.iloc[0]
        promo = r.promotion
        version = f"v{promo.production} {promo.production_model}" if promo.production else "none"
        # the figures of what certifies now, when it was walked here; else the best alone
        shown = comp[comp["model"] == promo.production_model]
        shown = shown.iloc[0] if len(shown) else best
        lines.append(f"{r.pd:<11} {best['model']:<{wide}} {version:>{wide + 4}} "
                     f"{shown['test_correct_automation_rate_mean']:>13.3f} "
                     f"{shown['test_good_as_bad_rate_mean']:>9.4f} "
                     f"{shown['test_bad_as_good_rate_mean']:>9.4f} "
                     f"{shown['test_roc_auc_mean']:>7.3f}")
        for row in comp.itertuples():
            if row.test_roc_auc_mean < 0.5:
                alarms.append(f"!! {r.pd} {row.model}: ROC AUC {row.test_roc_auc_mean:.3f} ranks "
                              "the PD's failures below chance")
        if not promo.production:
            alarms.append(f"!! {r.pd}: no certifier in Production ({promo.reason})")
        elif not best["meets_targets"]:
            alarms.append(f"!! {r.pd}: no detector of this evaluation meets the targets "
                          f"({best['why_not']}); Production stays version {promo.production}")
    if combination is not None and combination.combination:
        state = "promoted" if combination.promoted else "kept"
        lines.append(f"For the Golden JSON (promote pd=all, {state}): "
                     + ", ".join(f"{p} {m}" for p, m in combination.combination.items())
                     + f": the best of {combination.n_meeting} combinations (of "
                       f"{combination.n_combinations}) meeting both targets on the walk below")
    elif combination is not None:
        lines.append(f"promote pd=all: {combination.reason}")
    if walk is not None:
        d, m = walk
        dec = d["decision"].to_numpy()
        lines.append(
            f"All PDs together, as the Golden JSON would have been in the walk ({len(d)} LS): "
            f"{m['walk_automation_rate']:.1%} decided ({np.mean(dec == 'GOOD'):.1%} GOOD, "
            f"{np.mean(dec == 'BAD'):.1%} BAD); good->BAD {m['walk_good_as_bad_rate']:.2%}, "
            f"bad->GOOD {m['walk_bad_as_good_rate']:.2%} of {int(m['walk_n_bad'])} failure LS, "
            f"contamination {_pct(m['walk_contamination'], 3)}; the GOOD cut-off had enough "
            f"known failures in {int(m['walk_steps_supported'])} of {int(m['walk_steps'])} steps")
        lines.append(
            f"  at most {m['walk_hindsight_automation_rate']:.1%} decided with these detectors: "
            f"a GOOD cut-off set in hindsight on the walk's own failures (p_good "
            f"{m['walk_hindsight_p_good']:.2g}, bad->GOOD {target_bag:.0%}, no confidence bound)"
            " is their limit; the rest of the gap is the price of a cut-off that holds")
        if m["walk_steps_supported"] < m["walk_steps"] and m["walk_certifying_n_ls"]:
            lines.append(
                f"  in the {int(m['walk_steps_supported'])} steps that certified GOOD "
                f"({int(m['walk_certifying_n_ls'])} LS): "
                f"{m['walk_certifying_automation_rate']:.1%} decided, bad->GOOD "
                f"{_pct(m['walk_certifying_bad_as_good_rate'])} of "
                f"{int(m['walk_certifying_n_bad'])} failure LS")
        for key, target, what in (("walk_good_as_bad_rate", target_gab, "good->BAD"),
                                  ("walk_bad_as_good_rate", target_bag, "bad->GOOD")):
            if m[key] > target:
                alarms.append(f"!! all PDs in the walk: {what} {m[key]:.2%} is over its target")
        if m["walk_bad_as_good_rate"] <= target_bag < m.get("walk_certifying_bad_as_good_rate",
                                                            0):
            alarms.append(
                f"!! all PDs in the walk: bad->GOOD {m['walk_certifying_bad_as_good_rate']:.2%} "
                f"in the steps that certified GOOD is over its target (the steps that could not "
                f"certify let none through): some later failures were fainter than the known "
                f"ones the cut-off rests on, and no bound on past failures covers a kind not "
                f"seen yet")
    if cert is not None:
        sm = cert.summary
        c = sm["counts"]
        models = ", ".join(f"{m['pd']} {m['name']} v{m['version']}" for m in sm["models"])
        lines.append(f"Certified {NEW_ERA} (new runs, {c['ls_total']} LS): {c['ls_good']} GOOD, "
                     f"{c['ls_bad']} BAD, {c['ls_grey']} to review, "
                     f"{c['ls_low_statistics']} low statistics; automation {sm['automation']:.1%}")
        if "good_as_bad_rate" in sm:
            lines.append(f"  against the era's Golden JSON: good->BAD {sm['good_as_bad_rate']:.2%}"
                         f" (target {target_gab:.0%}), bad->GOOD {sm['bad_as_good_rate']:.2%}"
                         f" (target {target_bag:.0%}), contamination of the certified Golden "
                         f"JSON {_pct(sm.get('contamination'), 3, 'n/a (nothing GOOD)')}")
            if sm["good_as_bad_rate"] > target_gab:
                alarms.append(f"!! good->BAD {sm['good_as_bad_rate']:.2%} is over its target")
            if sm["bad_as_good_rate"] > target_bag:
                alarms.append(f"!! bad->GOOD {sm['bad_as_good_rate']:.2%} is over its target")
        joint = sm.get("joint_cutoff")
        if joint:
            blocks = f" in {joint['n_blocks']} blocks" if joint.get("n_blocks") else ""
            how = ("counting the blocks, whose LS pass or fail together"
                   if joint.get("n_blocks") else "if the LS were independent")
            lines.append(f"  GOOD when every PD's p-value > {joint['p_good']:.3g}: rests on "
                         f"{joint['n_failures']} known failure LS{blocks}, bad->GOOD <= "
                         f"{joint['bound']:.2%} at {joint['confidence']:.0%} confidence, {how}")
            if joint["supported"] and joint.get("hardest"):
                from dc_mlops.steps.certify import HARDEST_FILE
                lines.append(f"  held there by the known failures the detectors see least: "
                             f"{describe_hardest(joint['hardest'])}; all in "
                             f"{HARDEST_FILE}")
            if not joint["supported"]:
                alarms.append(f"!! {joint['n_failures']} known failure LS cannot support "
                              f"certifying GOOD at bad->GOOD <= {joint['max_bad_as_good']:g} "
                              f"({joint['bad_needed']} needed): BAD flags only, the rest to "
                              "review")
        else:
            for m in sm["models"]:
                cut = m.get("cutoffs", {})
                if cut and not cut.get("t_good_supported", True):
                    alarms.append(
                        f"!! {m['pd']}: {cut['n_known_bad']} known failures cannot support "
                        f"certifying GOOD at bad->GOOD <= {cut['max_bad_as_good']:g} "
                        f"({cut['bad_needed']} needed): it flags BAD and sends the rest to "
                        "review")
        lines.append(f"  decided by: {models}; outputs in {cert.out}")
        not_judged = sm.get("not_judged") or {}
        if not_judged:
            subs = sorted({x for v in not_judged.values() for x in v})
            alarms.append(f"!! nothing certified GOOD: {', '.join(subs)} not judged "
                          f"({', '.join(not_judged)} without a certifier); the BAD flags and "
                          "the grey list stand")
        for pd_name, dom in sm["domain"].items():
            if not dom["in_domain"]:
                alarms.append(f"!! {pd_name}: the new era is outside the certifier's domain "
                              f"({'; '.join(dom['reasons'])})"
                              f"{'' if sm['forced'] else ': nothing GOOD'}")
    else:
        alarms.append("!! nothing was certified: no PD has a certifier in Production")
    lines += alarms
    lines += [""] + open_hint(tr.ensure_experiment(tr.experiment_name(results[0].pd)))
    if len(results) > 1:
        lines += [f"                      {runs_url(tr.ensure_experiment(tr.experiment_name(r.pd)))}"
                  for r in results[1:]]
        # promote pd=all and certify pd=all: the choice for the Golden JSON and its outcome
        lines.append(f"All PDs together:     {runs_url(tr.ensure_experiment(tr.MULTI_PD_EXPERIMENT))}")
    return lines


def _pct(x, digits: int = 2, missing: str = "n/a") -> str:
    """A rate as a percentage, or ``missing`` when it is undefined (nothing to measure)."""
    return missing if x is None or not np.isfinite(x) else f"{x:.{digits}%}"

"""The ``evaluate`` step: every detector under one protocol, over seeds, on the same LS.

Protocols (SPEC §4.1; plans in :mod:`dc_mlops.evaluation.protocols`):

* ``rolling`` (default): walk forward through the runs; each step trains on a window of
  recent runs, calibrates on its newest runs and certifies the next block, so every LS after
  the first window is certified once by a model that saw only the past;
* ``era``: train on the earlier eras, certify the last one (a stress test);
* ``runs``: the preprocess run's own split (train/val/calib/test, e.g. reference runs a DC
  expert picked with ``split_mode=runs``).

Each (model, seed) is a *candidate* with its own run, nested under the evaluation run and
named like ``rolling pca JetHT seed 0``: the SPEC §4.2 metrics under the same names for every
candidate (``test_roc_auc``, ``test_automation_rate``, ``test_correct_automation_rate``,
``test_good_as_bad_rate``, ``test_bad_as_good_rate``, ``test_contamination``, ...), so the
MLflow compare view shows them side by side; ``decisions.parquet`` (every certified LS with
score, p-value and decision), ``steps.csv`` (cut-offs per step, the LS they rest on, the
measured rates), ``known_failures.parquet`` (each step's p-values of the failure LS known
before it: what the combined cut-off of all PDs rests on), the ROC curve and the
decision-value histogram; and its **certifier**: the same detector trained on the newest
window of the data, with its cut-offs, calibration scores, feature ranges and conditions
range inside — what ``promote`` registers.

The evaluation run itself holds ``candidates.csv`` (what ``promote`` reads),
``comparison.csv``/``.md`` (mean and spread over seeds, whether each detector meets both
error-rate targets and why not), overlaid ROC curves and the drift of good-LS scores along
the walk. A second call with the same parameters on the same preprocess run reuses it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.console import progress
from dc_mlops.detectors import registry
from dc_mlops.data.correction import condition_columns
from dc_mlops.evaluation import plots
from dc_mlops.evaluation.metrics import roc_table
from dc_mlops.evaluation.protocols import Step, era_step, latest_window, rolling_steps
from dc_mlops.evaluation.selection import rank, summarise
from dc_mlops.evaluation.walkforward import (StepResult, WalkForward, certify_part,
                                             conditions_of, failure_p_values, fit_parts,
                                             fit_step, known_failure_p_values, run_plan)
from dc_mlops.settings import EvaluateSettings
from dc_mlops.steps.inputs import resolve_preprocess_run
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import log_detector_model
from dc_mlops.tracking.ui import CANDIDATE_STEP, run_name

log = logging.getLogger("dc_mlops")
STEP = "evaluate"
SPLITS = ("train", "val", "calib", "test", "known_bad")
MAX_CALIBRATION_SCORES = 20000


@dataclass(frozen=True)
class EvaluateResult:
    run_id: str
    candidates: pd.DataFrame
    comparison: pd.DataFrame
    reused: bool = False


@dataclass(frozen=True)
class _Plan:
    """What a protocol asks for: the steps to certify and the certifier's window."""

    steps: list[Step]
    final: Step | None  # None for protocol=runs: the certifier is the split's own model


def all_ls(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every LS of a preprocess run (its splits partition them), in (run, LS) order."""
    frame = pd.concat([splits[p] for p in SPLITS if p in splits], ignore_index=True)
    if "judged" not in frame.columns:  # data without responsibility information
        frame["judged"] = frame["label"] == 1
    return frame.sort_values(["runId", "lumiId"], kind="stable").reset_index(drop=True)


def plan_for(s: EvaluateSettings, frame: pd.DataFrame) -> _Plan:
    """The protocol's plan for these LS; a DataError before any run starts if impossible."""
    if s.protocol == "runs":
        return _Plan([], None)
    per_run = frame.groupby("runId", sort=True).agg(n_good=("label", lambda x: int((x == 0).sum())),
                                                    era=("era", "first"))
    runs, n_good = per_run.index.to_numpy(), per_run["n_good"].to_numpy()
    final = latest_window(runs, n_good, s.window_runs, s.calib_runs)
    if s.protocol == "era":
        return _Plan([era_step(runs, per_run["era"].astype(str).to_numpy(), s.calib_runs)], final)
    return _Plan(rolling_steps(runs, n_good, s.window_runs, s.calib_runs, s.step_runs), final)


def detector_params(model: str, seed: int, epochs: int) -> tuple[str, dict]:
    """The registered name of a model spec (``name[:key=value...]``) and the parameters to
    build it with: the spec's, the seed, and an epoch limit."""
    name, params = registry.parse_spec(model)
    accepted = registry.default_params(name)
    if "seed" in accepted:
        params["seed"] = seed
    if epochs and "epochs" in accepted:
        params["epochs"] = epochs
    return name, params


def run_evaluate(s: EvaluateSettings) -> EvaluateResult:
    pre_run = resolve_preprocess_run(s.pd, s.preprocess_run)
    data = tr.load_preprocessed(pre_run)
    names = data.spec["feature_names"]
    frame = all_ls(data.splits)
    plan = plan_for(s, frame)
    conditions = None if s.conditions == "none" else s.conditions
    conditions_of(frame[frame["label"] == 0], conditions)  # missing conditions: fail now
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    key = tr.cache_key(STEP, dataclasses.asdict(s) | {"preprocess_run": pre_run}, pre_run)
    found = tr.find_finished_run(exp, STEP, key)
    if found:
        log.info("evaluate: reusing finished run %s (same parameters and data)", found)
        return EvaluateResult(found, tr.read_csv_artifact(found, "candidates.csv"),
                              tr.read_csv_artifact(found, "comparison.csv"), reused=True)
    with tr.tracked_run(exp, STEP, run_name(STEP, protocol=s.protocol, pd=s.pd), key,
                        tags={tr.TAG_PD: s.pd, "dc_mlops.preprocess_run": pre_run,
                              "dc_mlops.protocol": s.protocol}) as run:
        tr.log_params(dataclasses.asdict(s) | {"preprocess_run": pre_run,
                                               "n_steps": len(plan.steps)})
        rows, results = [], {}
        total = len(s.model_list) * len(s.seed_list) * max(1, len(plan.steps))
        with progress(total, f"evaluate {s.pd}", "step") as bar:
            for model in s.model_list:
                for seed in s.seed_list:
                    row, wf = _candidate(s, data, frame, names, plan, conditions, model, seed,
                                         run.info.run_id, pre_run, bar)
                    rows.append(row)
                    results[(model, seed)] = wf
        candidates = pd.DataFrame(rows)
        comparison = rank(summarise(candidates), s.max_good_as_bad, s.max_bad_as_good)
        best = comparison.iloc[0]
        tr.log_metrics({"n_candidates": len(candidates),
                        "n_models_meeting_targets": int(comparison["meets_targets"].sum())})
        tr.set_tag("dc_mlops.best_model", str(best["model"]) if best["meets_targets"] else "")
        _log_evaluation(s, candidates, comparison, results)
    meets = dict(zip(comparison["model"], comparison["meets_targets"]))
    for row in candidates.itertuples():  # the runs table can show which candidates qualify
        tr.log_run_metrics(row.candidate_run_id, {"meets_targets": float(meets[row.model])})
    for r in comparison.itertuples() if len(s.seed_list) > 1 else ():
        log.info("evaluate %s %-10s correct automation %.3f, automation %.3f, good->BAD %.4f, "
                 "bad->GOOD %.4f, ROC AUC %.3f%s", s.pd, r.model,
                 r.test_correct_automation_rate_mean, r.test_automation_rate_mean,
                 r.test_good_as_bad_rate_mean, r.test_bad_as_good_rate_mean,
                 r.test_roc_auc_mean, "" if r.meets_targets else f"  (misses: {r.why_not})")
    return EvaluateResult(run.info.run_id, candidates, comparison)


def _candidate(s: EvaluateSettings, data, frame: pd.DataFrame, names: list[str], plan: _Plan,
               conditions: str | None, model: str, seed: int, parent: str, pre_run: str,
               bar) -> tuple[dict, WalkForward]:
    """One (model, seed): its walk (or split), metrics, artifacts and certifier, in its run."""
    name, params = detector_params(model, seed, s.epochs)

    def build():
        return registry.build(name, **params)

    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    with tr.tracked_run(exp, CANDIDATE_STEP, run_name(s.protocol, model=model, pd=s.pd, seed=seed),
                        tags={tr.TAG_PD: s.pd, "dc_mlops.model": model, "dc_mlops.seed": str(seed),
                              "dc_mlops.evaluation_run": parent,
                              "dc_mlops.preprocess_run": pre_run}, nested=True) as crun:
        tr.log_params({"model": model, "family": registry.family(name), "pd": s.pd,
                       "seed": seed, "protocol": s.protocol, "conditions": s.conditions,
                       "context_ls": s.context_ls,
                       "preprocess_run": pre_run,
                       **{k: json.dumps(v) if isinstance(v, list) else v
                          for k, v in build().get_params().items() if k != "seed"}})
        if plan.final is None:  # protocol=runs: the preprocess split, one model
            final = fit_parts(data.splits["train"], data.splits["calib"],
                              _judged_bad(data.splits["known_bad"]), names,
                              Step((), (), ()), build, conditions, s.max_good_as_bad,
                              s.max_bad_as_good, s.context_ls)
            test = all_ls({"test": data.splits["test"]})
            part, row = certify_part(final, test, names, conditions)
            wf = WalkForward(part, pd.DataFrame([row]))
            bar.update(1)
            history = pd.concat([data.splits[p] for p in ("train", "val", "calib")])
        else:
            wf = run_plan(frame, names, plan.steps, build, conditions, s.max_good_as_bad,
                          s.max_bad_as_good, on_step=lambda i: bar.update(1),
                          folds=s.calib_folds, context_ls=s.context_ls)
            final = fit_step(frame, names, plan.final, build, conditions, s.max_good_as_bad,
                             s.max_bad_as_good, s.calib_folds, s.context_ls)
            history = frame[frame["runId"].isin(plan.final.history_runs)
                            & (frame["label"] == 0)]
        metrics = wf.metrics("test")
        tr.log_metrics(metrics | {"n_steps": len(wf.steps),
                                  "fit_seconds": float(wf.steps["fit_seconds"].sum())})
        _log_candidate_artifacts(s, model, wf, final)
        # the failure LS of everything the certifier may know (not the test runs of `runs`);
        # the final window certifies nothing, so its certifier scored every failure already
        failures = known_failure_p_values(final) if plan.final is not None else \
            failure_p_values(final, all_ls({p: data.splits[p] for p in
                                            ("train", "val", "calib", "known_bad")
                                            if p in data.splits}), names, conditions)
        spec = certifier_spec(data.spec, model, s, final, history, names, conditions, parent,
                              crun.info.run_id, failures)
        uri = log_detector_model(final.detector, spec, history.head(50), name="certifier")
        tr.set_tag("dc_mlops.model_uri", uri)
    log.info("evaluate %s %s seed %d: correct automation %.3f, good->BAD %.4f, bad->GOOD "
             "%.4f, ROC AUC %.3f", s.pd, model, seed, metrics["test_correct_automation_rate"],
             metrics["test_good_as_bad_rate"], metrics["test_bad_as_good_rate"],
             metrics["test_roc_auc"])
    return ({"model": model, "seed": seed, "candidate_run_id": crun.info.run_id,
             "model_uri": uri, "t_good": final.cutoffs.t_good, "t_bad": final.cutoffs.t_bad,
             **metrics}, wf)


def _judged_bad(frame: pd.DataFrame) -> pd.DataFrame:
    judged = frame["judged"].to_numpy(bool) if "judged" in frame else np.ones(len(frame), bool)
    return frame[(frame["label"].to_numpy() == 1) & judged]


def certifier_spec(base: dict, model: str, s: EvaluateSettings, final: StepResult,
                   history: pd.DataFrame, names: list[str], conditions: str | None,
                   evaluation_run: str, candidate_run: str,
                   failures: pd.DataFrame | None = None) -> dict:
    """Everything certify needs besides the detector: cut-offs and what they rest on, the
    calibration scores (drift check), the feature and conditions ranges (domain check), and
    the p-values of the history's failure LS (the combined GOOD cut-off of ``pd=all``)."""
    scores = np.sort(final.calib_scores)
    bad_order = np.argsort(final.bad_scores, kind="stable")
    if len(scores) > MAX_CALIBRATION_SCORES:
        scores = scores[np.linspace(0, len(scores) - 1, MAX_CALIBRATION_SCORES).astype(int)]
    X = history[names].to_numpy(np.float64)
    spec = dict(base)
    spec.update(
        model=model, pd=s.pd, conditions=conditions or "none",
        condition_columns=condition_columns(history.columns, conditions),
        context_ls=final.detector.context_ls, thresholds={"t_good": final.cutoffs.t_good, "t_bad": final.cutoffs.t_bad,
                                                      "t_lone": final.t_lone},
        cutoffs=final.cutoffs.to_dict(), calibration_scores=scores.tolist(),
        known_bad_scores=np.asarray(final.bad_scores)[bad_order].tolist(),
        # the failure episode of each known bad LS (the GOOD bound counts episodes)
        known_bad_blocks=([] if final.bad_blocks is None
                          else np.asarray(final.bad_blocks)[bad_order].astype(int).tolist()),
        feature_min=X.min(axis=0).tolist(), feature_max=X.max(axis=0).tolist(),
        # cross-fitted (calib_folds >= 2): the certifier trained on every window run, and the
        # calibration scores are out-of-fold scores of the same runs
        train_runs=list(final.step.history_runs if final.folds else final.step.train_runs),
        calib_runs=list(final.step.history_runs if final.folds else final.step.calib_runs),
        calib_folds=final.folds, evaluation_run=evaluation_run, candidate_run=candidate_run, protocol=s.protocol)
    if conditions:
        c = history[conditions].to_numpy(np.float64)
        spec["conditions_range"] = [float(np.nanmin(c)), float(np.nanmax(c))]
    if failures is not None:
        spec["failure_p_values"] = {"runId": failures["runId"].astype(int).tolist(),
                                    "lumiId": failures["lumiId"].astype(int).tolist(),
                                    "p_value": failures["p_value"].astype(float).tolist()}
    return spec


def _log_candidate_artifacts(s: EvaluateSettings, model: str, wf: WalkForward,
                             final: StepResult) -> None:
    d = wf.decisions
    tr.log_frame(d, "", "decisions.parquet")
    if wf.known_failures is not None:  # what each step's combined GOOD cut-off rests on
        tr.log_frame(wf.known_failures, "", tr.KNOWN_FAILURES)
    tr.log_frame(wf.steps, "", "steps.csv", fmt="csv")
    roc = roc_table(d["label"], d["score"], d["judged"]) if d["label"].nunique() > 1 else None
    if roc is not None:
        tr.log_frame(roc, "", "roc_curve.csv", fmt="csv")
        tr.log_figure(plots.roc_plot({model: roc}, f"{model} on {s.pd}: ROC ({s.protocol})"),
                      "roc_curve.png")
    last = wf.steps.iloc[-1]
    judged = d["judged"].to_numpy(bool) | (d["label"].to_numpy() == 0)
    tr.log_figure(plots.score_distribution(
        d["score"].to_numpy()[judged], d["label"].to_numpy()[judged],
        f"{model} on {s.pd}: decision values of the certified LS ({s.protocol}), "
        "cut-offs of the last step",
        cutoffs={"t_good": last["t_good"], "t_bad": last["t_bad"]},
        groups=d["subsystem"].replace("", "unknown").to_numpy()[judged]),
        "score_distribution.png")
    good = d["label"].to_numpy() == 0
    window = np.array([f"step {i + 1}" for i in d["step"].to_numpy()])
    tr.log_figure(plots.drift_plot(final.calib_scores, d["score"].to_numpy()[good], window[good],
                                   f"{model} on {s.pd}: good-LS decision values along the "
                                   f"walk vs the certifier's calibration LS",
                                   cutoffs=final.cutoffs.to_dict(), window_name="step"),
                  "drift.png")
    bad_runs = d.loc[d["judged"].to_numpy(bool), "runId"].value_counts().index[:2]
    for run in bad_runs:
        one = d[d["runId"] == run].sort_values("lumiId")
        step = wf.steps.iloc[int(one["step"].iat[0])]
        tr.log_figure(plots.score_along_run(
            one, f"{model} on {s.pd}: run {run}", {"t_good": step["t_good"],
                                                   "t_bad": step["t_bad"]}),
            f"runs_with_failures/run{run}.png")


def _log_evaluation(s: EvaluateSettings, candidates: pd.DataFrame, comparison: pd.DataFrame,
                    results: dict) -> None:
    tr.log_frame(candidates, "", "candidates.csv", fmt="csv")
    tr.log_frame(comparison, "", "comparison.csv", fmt="csv")
    tr.log_text(comparison_markdown(comparison, s), "comparison.md")
    seed = s.seed_list[0]
    curves = {}
    for m in s.model_list:
        d = results[(m, seed)].decisions
        if d["label"].nunique() > 1:
            curves[m] = roc_table(d["label"], d["score"], d["judged"])
    if curves:
        tr.log_figure(plots.roc_plot(curves, f"{s.pd}: ROC of every detector ({s.protocol}, "
                                             f"seed {seed})"), "roc_curves.png")
    drift = pd.concat([results[(m, seed)].steps.assign(model=m) for m in s.model_list])
    tr.log_frame(drift[["model", "step", "first_run", "last_run", "calib_good_median",
                        "test_good_median", "t_good", "t_bad"]], "", "drift.csv", fmt="csv")


def comparison_markdown(comparison: pd.DataFrame, s: EvaluateSettings) -> str:
    head = ["model", "correct automation", "automation", "good→BAD", "bad→GOOD",
            "contamination", "ROC AUC", "meets targets", "seeds"]
    lines = [f"Protocol {s.protocol}, targets good→BAD ≤ {s.max_good_as_bad:g} and bad→GOOD ≤ "
             f"{s.max_bad_as_good:g}; mean ± std over seeds {s.seeds}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in comparison.itertuples():
        def cell(k: str) -> str:
            return (f"{getattr(r, k + '_mean'):.4f} ± "
                    f"{np.nan_to_num(getattr(r, k + '_std')):.4f}")
        lines.append(f"| {r.model} | {cell('test_correct_automation_rate')} | "
                     f"{cell('test_automation_rate')} | {cell('test_good_as_bad_rate')} | "
                     f"{cell('test_bad_as_good_rate')} | {cell('test_contamination')} | "
                     f"{cell('test_roc_auc')} | {'yes' if r.meets_targets else 'no: ' + r.why_not}"
                     f" | {r.n_seeds} |")
    return "\n".join(lines) + "\n"

"""The ``promote`` step: the best evaluated detector becomes the Production certifier of a PD,
if it meets both error-rate targets and beats the champion on the same held-out LS.

The rule (SPEC §5, :mod:`dc_mlops.evaluation.selection`): among the detectors of an
evaluation run whose mean measured good->BAD and bad->GOOD rates meet the targets of that
evaluation, the highest mean ``metric`` (correct automation) wins; none is promoted
otherwise, and the reason is logged. The winner's best seed's certifier (logged in its
candidate run, where it was trained) is registered as a version of ``dc-certifier-<PD>``.

Champion/challenger: the current ``production`` version is compared with the challenger on
the same LS. When the champion came from an evaluation of the same preprocess run and
protocol, both were certified on exactly the same LS and their recorded figures compare
directly. Otherwise the champion, a fixed model with its own cut-offs, certifies the LS of
this evaluation that come after its own training history, and both are measured there. A
champion that cannot read this data (another feature set or representation) is compared on
its recorded figures, and the reason says so. A repeat never re-registers, and a worse or
equal challenger never replaces the champion — also under two concurrent promotes: the
decision and the alias change happen under the registry lock, so the second promote compares
against whatever the first left in Production and says when it lost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError
from dc_mlops.evaluation.greyzone import decision_metrics
from dc_mlops.evaluation.selection import best_seed, rank, summarise
from dc_mlops.settings import PromoteSettings
from dc_mlops.steps.evaluate import all_ls
from dc_mlops.tracking import registry as reg
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import load_model, predict
from dc_mlops.tracking.ui import run_name

log = logging.getLogger("dc_mlops")
STEP = "promote"
#: recorded on every registered version, so a later promote can compare without rescoring
FIGURES = ("test_correct_automation_rate", "test_automation_rate", "test_good_as_bad_rate",
           "test_bad_as_good_rate", "test_contamination", "test_roc_auc")


@dataclass(frozen=True)
class PromoteResult:
    run_id: str
    promoted: bool
    reason: str
    version: str | None
    production: str | None = None  # the Production version after this promote
    production_model: str = ""  # and its detector


@dataclass(frozen=True)
class _Decision:
    promote: bool
    reason: str
    champion_figures: dict | None = None


def run_promote(s: PromoteSettings) -> PromoteResult:
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    eval_run = s.evaluation_run or tr.latest_finished_run(exp, "evaluate")
    if not eval_run:
        raise DataError(f"no finished evaluate run for PD {s.pd}: run `evaluate` first")
    info = tr.run_info(eval_run)  # DataError naming the run when it does not exist
    if info.data.tags.get(tr.TAG_STEP) != "evaluate" or info.info.status != "FINISHED":
        raise DataError(f"run {eval_run} is not a finished evaluate run")
    if info.data.tags.get(tr.TAG_PD) != s.pd:
        raise DataError(f"evaluate run {eval_run} is of PD {info.data.tags.get(tr.TAG_PD)!r}, "
                        f"not {s.pd!r}")
    params = info.data.params
    targets = float(params["max_good_as_bad"]), float(params["max_bad_as_good"])
    candidates = tr.read_csv_artifact(eval_run, "candidates.csv")
    if s.metric not in candidates.columns or not s.metric.startswith("test_"):
        known = [c for c in candidates.columns if c.startswith("test_")]
        raise DataError(f"metric {s.metric!r} is not in evaluation {eval_run}; use one of "
                        f"{', '.join(known)}")
    ranking = rank(summarise(candidates), *targets, metric=s.metric)
    top = ranking.iloc[0]
    best = best_seed(candidates, str(top["model"]), s.metric)
    name = reg.certifier_name(s.pd)
    with reg.promotion_lock(name):
        champion = reg.production_version(name)
        decision = _decide(s, ranking, best, champion, eval_run, info)
        tags = {tr.TAG_PD: s.pd, "dc_mlops.decision": "promoted" if decision.promote else "kept",
                "dc_mlops.reason": decision.reason[:5000]}
        with tr.tracked_run(exp, STEP, run_name(STEP, pd=s.pd), tags=tags) as run:
            tr.log_params({"pd": s.pd, "metric": s.metric, "evaluation_run": eval_run,
                           "challenger_model": best["model"], "challenger_seed": best["seed"],
                           "challenger_run": best["candidate_run_id"],
                           "champion_version": champion.version if champion else ""})
            tr.log_metrics({f"challenger_{k}": float(best[k]) for k in FIGURES if k in best}
                           | {f"champion_{k}": v for k, v in (decision.champion_figures or {})
                              .items() if k in FIGURES})
            tr.log_frame(ranking, "", "ranking.csv", fmt="csv")
            version = _register(s, best, eval_run, info, decision.reason, name) \
                if decision.promote else None
        production = reg.production_version(name)
    now = str(production.version) if production else None
    verdict = (f"version {version} is Production" if version else
               f"Production stays {'version ' + now if now else 'empty'}")
    log.info("promote %s: %s (%s)", name, verdict, decision.reason)
    return PromoteResult(run.info.run_id, decision.promote, decision.reason, version, now,
                         production.tags.get("dc_mlops.model", "") if production else "")


def _decide(s: PromoteSettings, ranking: pd.DataFrame, best: pd.Series, champion, eval_run: str,
            info) -> _Decision:
    top = ranking.iloc[0]
    if not top["meets_targets"]:
        misses = "; ".join(f"{r.model}: {r.why_not}" for r in ranking.itertuples())
        return _Decision(False, f"no detector meets the targets ({misses})")
    if not best[s.metric] > 0:
        return _Decision(False, f"{best['model']} meets the targets but decides no LS "
                                "automatically")
    if champion is None:
        return _Decision(True, f"{best['model']} meets the targets "
                               f"({_figures_text(best)}); no production certifier yet")
    if champion.tags.get("dc_mlops.candidate_run") == best["candidate_run_id"]:
        return _Decision(False, f"the best candidate ({best['model']} seed {best['seed']}) "
                                f"already is production version {champion.version}")
    champ = _champion_figures(champion, eval_run, info)
    if champ is None:
        return _Decision(True, f"{best['model']} meets the targets; champion v{champion.version}"
                               " has no recorded figures to compare")
    figures, where = champ
    champ_ok = (figures.get("test_good_as_bad_rate", np.inf) <= float(info.data.params[
        "max_good_as_bad"]) and figures.get("test_bad_as_good_rate", np.inf) <= float(
        info.data.params["max_bad_as_good"]))
    ours, theirs = float(best[s.metric]), float(figures.get(s.metric, np.nan))
    text = (f"challenger {best['model']} {s.metric}={ours:.4f} vs champion v{champion.version} "
            f"{theirs:.4f} ({where})")
    if not champ_ok:
        return _Decision(True, f"{text}; the champion misses a target there", figures)
    if ours > np.nan_to_num(theirs, nan=-1.0) or (
            ours == theirs and float(best.get("test_roc_auc", 0)) > figures.get("test_roc_auc", 1)):
        return _Decision(True, f"{text}: the challenger is better", figures)
    return _Decision(False, f"{text}: the challenger does not beat the champion", figures)


def _champion_figures(champion, eval_run: str, info) -> tuple[dict, str] | None:
    """The champion's figures on this evaluation's LS, or its recorded ones, and where from."""
    tags = champion.tags
    recorded = {k: float(tags[f"dc_mlops.{k}"]) for k in FIGURES if f"dc_mlops.{k}" in tags}
    same_ls = (tags.get("dc_mlops.evaluation_run") == eval_run or (
        tags.get("dc_mlops.preprocess_run") == info.data.tags.get("dc_mlops.preprocess_run")
        and tags.get("dc_mlops.plan") == _plan_key(info.data.params)))
    if same_ls and recorded:
        return recorded, "same certified LS"
    try:
        return _rescore_champion(champion, info), "champion rescored on the LS after its history"
    except DataError as exc:
        if recorded:
            return recorded, f"recorded figures on other data: {exc}"
        return None


def _rescore_champion(champion, info) -> dict:
    """Champion and challenger measured on this evaluation's certified LS that come after the
    champion's own training history."""
    pre = tr.load_preprocessed(info.data.tags["dc_mlops.preprocess_run"])
    frame = all_ls(pre.splits)
    model = load_model(reg.version_uri(champion))
    spec = model.unwrap_python_model().spec
    last = max(spec.get("train_runs", []) + spec.get("calib_runs", []) or [-1])
    frame = frame[frame["runId"] > last]
    if len(frame) == 0:
        raise DataError(f"no LS after the champion's history (run {last})")
    out = predict(model, frame)
    return decision_metrics(out["decision"].to_numpy(), frame["label"].to_numpy(),
                            frame["judged"].to_numpy())


def _plan_key(params: dict) -> str:
    keys = ("protocol", "window_runs", "calib_runs", "step_runs", "max_good_as_bad",
            "max_bad_as_good")
    return ",".join(f"{k}={params.get(k, '')}" for k in keys)


def _figures_text(best: pd.Series) -> str:
    return (f"correct automation {best['test_correct_automation_rate']:.3f}, good->BAD "
            f"{best['test_good_as_bad_rate']:.4f}, bad->GOOD {best['test_bad_as_good_rate']:.4f}")


def _register(s: PromoteSettings, best: pd.Series, eval_run: str, info, reason: str,
              name: str) -> str:
    tags = {"dc_mlops.model": str(best["model"]), "dc_mlops.seed": str(best["seed"]),
            "dc_mlops.candidate_run": str(best["candidate_run_id"]),
            "dc_mlops.evaluation_run": eval_run,
            "dc_mlops.preprocess_run": info.data.tags.get("dc_mlops.preprocess_run", ""),
            "dc_mlops.protocol": info.data.params.get("protocol", ""),
            "dc_mlops.plan": _plan_key(info.data.params), "dc_mlops.reason": reason[:5000],
            "dc_mlops.t_good": f"{best['t_good']:.6g}", "dc_mlops.t_bad": f"{best['t_bad']:.6g}",
            **{f"dc_mlops.{k}": f"{float(best[k]):.6f}" for k in FIGURES if k in best}}
    mv = reg.register(str(best["model_uri"]), name, tags,
                      f"{_figures_text(best)}; {best['model']} seed {best['seed']}, evaluation "
                      f"{eval_run}: {reason}")
    reg.make_production(name, str(mv.version))
    return str(mv.version)

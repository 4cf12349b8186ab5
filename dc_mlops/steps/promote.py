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

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from dc_mlops.errors import DataError
from dc_mlops.evaluation.greyzone import decision_metrics
from dc_mlops.evaluation.selection import best_seed, rank, rank_combinations, summarise
from dc_mlops.settings import PDS, PromoteSettings
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
    production_run: str = ""  # and the candidate run it was trained and walked in


@dataclass(frozen=True)
class CombinedPromoteResult:
    """``promote pd=all``: what each PD's Production is now, and the combination's figures."""

    run_id: str
    promoted: bool  # some PD's Production changed
    reason: str
    per_pd: dict[str, PromoteResult]
    combination: dict[str, str]  # PD -> detector chosen for the Golden JSON (empty: none)
    figures: dict[str, float]  # its combined walk's walk_* figures (empty: none)
    n_combinations: int = 0  # combinations compared
    n_meeting: int = 0  # of which met both targets on the combined walk


@dataclass(frozen=True)
class _Decision:
    promote: bool
    reason: str
    champion_figures: dict | None = None


def run_promote(s: PromoteSettings) -> PromoteResult | CombinedPromoteResult:
    """Promote one PD's best candidate, or (``pd=all``) the best combination of candidates
    for the Golden JSON (:func:`_promote_all`)."""
    if s.pd == "all":
        return _promote_all(s)
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    eval_run = s.evaluation_run or tr.latest_finished_run(exp, "evaluate")
    if not eval_run:
        raise DataError(f"no finished evaluate run for PD {s.pd}: run `evaluate` first")
    e = _evaluation(s.pd, eval_run, s.metric)  # DataError naming the run when it is wrong
    info, candidates, ranking = e.info, e.candidates, e.ranking
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
                         *_production_tags(production))


def _production_tags(production) -> tuple[str, str]:
    if production is None:
        return "", ""
    return (production.tags.get("dc_mlops.model", ""),
            production.tags.get("dc_mlops.candidate_run", ""))


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


def _walked_on_same_ls(tags: dict, eval_run: str, info) -> bool:
    """Whether a registered version (its tags) was certified on exactly this evaluation's
    LS: the same evaluation, or the same preprocess run and walk plan."""
    return tags.get("dc_mlops.evaluation_run") == eval_run or (
        tags.get("dc_mlops.preprocess_run") == info.data.tags.get("dc_mlops.preprocess_run")
        and tags.get("dc_mlops.plan") == _plan_key(info.data.params))


def _champion_figures(champion, eval_run: str, info) -> tuple[dict, str] | None:
    """The champion's figures on this evaluation's LS, or its recorded ones, and where from."""
    tags = champion.tags
    recorded = {k: float(tags[f"dc_mlops.{k}"]) for k in FIGURES if f"dc_mlops.{k}" in tags}
    if _walked_on_same_ls(tags, eval_run, info) and recorded:
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


# ---- pd=all: the combination of candidates that is best for the Golden JSON ----------------

@dataclass(frozen=True)
class _Evaluation:
    pd: str
    run_id: str
    info: object
    candidates: pd.DataFrame
    ranking: pd.DataFrame


def _promote_all(s: PromoteSettings) -> CombinedPromoteResult:
    """Promote, for every PD at once, the combination of one candidate per PD whose walks
    combined per LS (as ``certify pd=all`` decides, :func:`.selection.rank_combinations`)
    meet both targets on the Golden JSON and decide the most LS rightly.

    Each member must meet its own PD's targets too (``certify pd=<PD>`` alone stays within
    them). The current Production combination competes on the same walks when every PD's
    champion was walked on these LS (the same preprocess run and plan); the challenger
    replaces it only when better. Without a candidate meeting the targets in every PD, or
    without a combination meeting the combined targets, each PD is promoted on its own (the
    single-PD rule) and the reason says so. The decision and the alias changes happen under
    every PD's registry lock (taken in one order, so two promotes cannot deadlock)."""
    walk_metric = "walk_" + s.metric.removeprefix("test_")
    if walk_metric not in _MAXIMISABLE:
        raise DataError(f"metric {s.metric!r} has no combined figure for pd=all; use one of "
                        + ", ".join("test_" + k.removeprefix("walk_") for k in _MAXIMISABLE))
    evals = [_evaluation(p, run, s.metric) for p, run in _evaluation_runs(s).items()]
    targets = {_targets(e.info) for e in evals}
    if len(targets) > 1:
        raise DataError("the evaluations of pd=all use different targets ("
                        + ", ".join(f"{e.pd}: {_targets(e.info)}" for e in evals)
                        + "): evaluate every PD with the same max_good_as_bad/max_bad_as_good")
    max_gab, max_bag = targets.pop()
    seeds = {e.pd: {str(r.model): best_seed(e.candidates, str(r.model), s.metric)
                    for r in e.ranking.itertuples() if r.meets_targets} for e in evals}
    options = {p: {m: row for m, row in o.items() if row[s.metric] > 0}  # decides something
               for p, o in seeds.items()}
    missing = [p for p, o in options.items() if not o]
    if missing:
        return _each_on_its_own(s, evals, f"{', '.join(missing)} "
                                f"{'has' if len(missing) == 1 else 'have'} no candidate meeting "
                                "its targets, so no combination can certify for the Golden JSON")
    walks = {p: {m: tr.read_parquet_artifact(row["candidate_run_id"], "decisions.parquet")
                 for m, row in o.items()} for p, o in options.items()}
    known = {p: {m: tr.read_parquet_artifact(row["candidate_run_id"], tr.KNOWN_FAILURES,
                                             missing_ok=True)
                 for m, row in o.items()} for p, o in options.items()}
    by_pd = {e.pd: e for e in evals}
    names = {p: reg.certifier_name(p) for p in by_pd}
    with contextlib.ExitStack() as locks:
        for name in sorted(names.values()):
            locks.enter_context(reg.promotion_lock(name))
        champions = {p: reg.production_version(names[p]) for p in by_pd}
        champ_keys = {p: key for p in by_pd
                      if (key := _champion_option(champions[p], by_pd[p], options[p], walks[p],
                                                  known[p]))}
        ranking = rank_combinations(walks, max_gab, max_bag, walk_metric, failures=known)
        top = ranking.iloc[0]
        if not top["meets_targets"]:
            locks.close()
            return _each_on_its_own(
                s, evals, "no combination meets the targets on the Golden JSON (best: "
                + _combo_text(top, list(by_pd), walk_metric) + f"; {top['why_not']})")
        mine = {p: str(top[p]) for p in by_pd}
        champ_row = None
        if len(champ_keys) == len(by_pd):
            match = np.logical_and.reduce([ranking[p] == k for p, k in champ_keys.items()])
            champ_row = ranking[match].iloc[0]
        text = "combination " + _combo_text(top, list(by_pd), walk_metric)
        if mine == champ_keys:
            promote, reason = False, f"the best {text} already is Production"
        elif champ_row is not None and champ_row["meets_targets"] and not (
                top[walk_metric] > champ_row[walk_metric]):
            promote, reason = False, (f"{text} does not beat the Production combination "
                                      f"{_combo_text(champ_row, list(by_pd), walk_metric)}")
        else:
            was = ("no complete Production combination measured on these LS"
                   if champ_row is None else "the Production combination "
                   + _combo_text(champ_row, list(by_pd), walk_metric)
                   + (" misses a target" if not champ_row["meets_targets"] else ""))
            promote, reason = True, f"{text} meets the targets on the Golden JSON; {was}"
        exp = tr.ensure_experiment(tr.MULTI_PD_EXPERIMENT)
        tags = {tr.TAG_PD: "all", "dc_mlops.decision": "promoted" if promote else "kept",
                "dc_mlops.reason": reason[:5000]}
        versions: dict[str, str | None] = {}
        with tr.tracked_run(exp, STEP, run_name(STEP, pd="all"), tags=tags) as run:
            tr.log_params({"pd": "all", "metric": s.metric,
                           **{f"evaluation_run.{e.pd}": e.run_id for e in evals},
                           **{f"challenger.{p}": m for p, m in mine.items()},
                           **{f"champion_version.{p}": champions[p].version if champions[p]
                              else "" for p in by_pd}})
            tr.log_metrics({k: float(top[k]) for k in _WALK_METRICS if np.isfinite(top[k])}
                           | ({f"champion_{k}": float(champ_row[k]) for k in _WALK_METRICS
                               if np.isfinite(champ_row[k])} if champ_row is not None else {}))
            tr.log_frame(ranking, "", "combinations.csv", fmt="csv")
            for p in by_pd:
                versions[p] = None
                if promote and mine[p] != champ_keys.get(p):
                    e, best = by_pd[p], options[p][mine[p]]
                    versions[p] = _register(s, best, e.run_id, e.info,
                                            f"pd=all: {reason}", names[p])
        production = {p: reg.production_version(names[p]) for p in by_pd}
    per_pd = {p: PromoteResult(run.info.run_id, versions[p] is not None, reason, versions[p],
                               str(production[p].version) if production[p] else None,
                               *_production_tags(production[p])) for p in by_pd}
    log.info("promote pd=all: %s (%s)", "promoted" if promote else "kept", reason)
    return CombinedPromoteResult(run.info.run_id, promote, reason, per_pd, mine,
                                 {k: float(top[k]) for k in _WALK_METRICS}, len(ranking),
                                 int(ranking["meets_targets"].sum()))


#: what pd=all may maximise: combined figures of the walk (SPEC §4.2 names, ``walk_`` prefix)
_MAXIMISABLE = ("walk_correct_automation_rate", "walk_automation_rate",
                "walk_good_certified_rate", "walk_bad_flagged_rate")
_WALK_METRICS = ("walk_correct_automation_rate", "walk_automation_rate",
                 "walk_good_as_bad_rate", "walk_bad_as_good_rate", "walk_contamination",
                 "walk_good_certified_rate", "walk_n_ls", "walk_n_bad")


def _evaluation_runs(s: PromoteSettings) -> dict[str, str]:
    """Per PD, the evaluate run: as given (one per PD, comma-separated) or the latest."""
    given = [r.strip() for r in s.evaluation_run.split(",") if r.strip()]
    if not given:
        runs = {p: tr.latest_finished_run(tr.ensure_experiment(tr.experiment_name(p)),
                                          "evaluate") for p in PDS}
        missing = [p for p, r in runs.items() if not r]
        if missing:
            raise DataError(f"no finished evaluate run for {', '.join(missing)}: pd=all needs "
                            "one per PD (run `evaluate` for each)")
        return runs
    runs = {}
    for run in given:
        pd_name = tr.run_info(run).data.tags.get(tr.TAG_PD, "")
        if pd_name in runs:
            raise DataError(f"evaluation_run names two evaluations of {pd_name} "
                            f"({runs[pd_name]}, {run})")
        runs[pd_name] = run
    missing = [p for p in PDS if p not in runs]
    if missing:
        raise DataError(f"evaluation_run has no evaluation of {', '.join(missing)}: pd=all "
                        "needs one per PD")
    return {p: runs[p] for p in PDS}


def _evaluation(pd_name: str, run: str, metric: str) -> _Evaluation:
    info = tr.run_info(run)
    if info.data.tags.get(tr.TAG_STEP) != "evaluate" or info.info.status != "FINISHED":
        raise DataError(f"run {run} is not a finished evaluate run")
    if info.data.tags.get(tr.TAG_PD) != pd_name:
        raise DataError(f"evaluate run {run} is of PD {info.data.tags.get(tr.TAG_PD)!r}, "
                        f"not {pd_name!r}")
    candidates = tr.read_csv_artifact(run, "candidates.csv")
    if metric not in candidates.columns or not metric.startswith("test_"):
        known = [c for c in candidates.columns if c.startswith("test_")]
        raise DataError(f"metric {metric!r} is not in evaluation {run}; use one of "
                        f"{', '.join(known)}")
    return _Evaluation(pd_name, run, info, candidates,
                       rank(summarise(candidates), *_targets(info), metric=metric))


def _targets(info) -> tuple[float, float]:
    return float(info.data.params["max_good_as_bad"]), float(info.data.params["max_bad_as_good"])


def _champion_option(champion, e: _Evaluation, options: dict[str, pd.Series],
                     walks: dict[str, pd.DataFrame], known: dict[str, pd.DataFrame | None]
                     ) -> str | None:
    """The key of the champion's walk among a PD's options (added to ``walks``, and its known
    failures to ``known``, when it is not a candidate of this evaluation but was walked on the
    same LS), None when it cannot be measured on these LS."""
    if champion is None:
        return None
    run = champion.tags.get("dc_mlops.candidate_run", "")
    for model, row in options.items():
        if row["candidate_run_id"] == run:
            return model
    tags = champion.tags
    if not run or not _walked_on_same_ls(tags, e.run_id, e.info):
        return None
    try:
        walk = tr.read_parquet_artifact(run, "decisions.parquet")
    except (MlflowException, OSError):  # no walk logged: not measured on these LS
        return None
    key = f"v{champion.version} {tags.get('dc_mlops.model', '')}".strip()
    walks[key] = walk
    known[key] = tr.read_parquet_artifact(run, tr.KNOWN_FAILURES, missing_ok=True)
    return key


def _each_on_its_own(s: PromoteSettings, evals: list[_Evaluation], why: str
                     ) -> CombinedPromoteResult:
    """The fallback of pd=all: every PD promoted by the single-PD rule, and why."""
    log.warning("promote pd=all: %s; each PD is promoted on its own", why)
    per_pd = {e.pd: run_promote(dataclasses.replace(s, pd=e.pd, evaluation_run=e.run_id))
              for e in evals}
    return CombinedPromoteResult("", any(r.promoted for r in per_pd.values()),
                                 f"{why}; each PD promoted on its own", per_pd, {}, {})


def _combo_text(row: pd.Series, pds: list[str], metric: str) -> str:
    members = ", ".join(f"{p} {row[p]}" for p in pds)
    return (f"({members}: {metric.removeprefix('walk_')} {row[metric]:.3f}, good->BAD "
            f"{row['walk_good_as_bad_rate']:.4f}, bad->GOOD {row['walk_bad_as_good_rate']:.4f})")

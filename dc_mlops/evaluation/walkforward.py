"""Run a protocol's plan (``protocols``) with one detector: fit on each step's training LS,
set the grey zone on LS the step never trained on, decide the LS it certifies.

Shared by the ``evaluate`` step and the benchmarks, so the figures a DC expert reads in
MLflow and those in ``benchmarks/results`` come from the same code. Per step:

* the detector is fitted on the good LS of the training runs (conditions fit included),
* ``t_bad`` is the conformal cut-off on good LS the scoring model never saw. By default
  (``folds`` >= 2) these are *cross-fitted*: the window's runs are dealt into ``folds``
  groups (every ``folds``-th run, so each group spans the window's fills and pile-up), each
  group is scored by a model fitted on the others, and the certifier itself is fitted on
  the whole window. LS of one fill are not exchangeable: a few newest runs (``folds=0``,
  the calibration runs of the step) come from one or two fills. On main's history their
  cut-off flagged up to 1.2 % of a PD's good LS BAD, and 0.79 % of the LS all PDs together
  certified, against 0.02 % cross-fitted (benchmarks/results/calibration.md, 2026-12-06;
  12-20 % per PD with the detectors of commit 3e6ad1d; with the time in fill as a
  condition, 0.48 % and 0.09 % against 0.11 % and 0.03 %, 2026-12-07); out-of-fold scores
  of every window run carry the run-to-run spread into the cut-off,
* ``t_good`` is set on every *judged* bad LS known before the block (the PD's own failures of
  all earlier runs), scored by the step's certifier, with the one-sided bound of
  :mod:`.greyzone`. Not on out-of-fold scores of the window's own bad LS: far fewer LS, in
  a few blocks, whose lowest score sits higher; on the simulated ZeroBias history that let
  10.8 % of the next failures through instead of 1.5 %. The bound counts the failure
  episodes those LS come in (:func:`.greyzone.episode_ids`): LS of one block pass or fail
  together,
* the p-values of every flagged failure LS of the earlier runs (any subsystem, the first
  window's included) under the step's certifier are kept (``WalkForward.known_failures``):
  the combined GOOD cut-off of all PDs rests on them, as ``certify``'s rests on every failure
  of the certifier's history (:func:`.combined.combined_walk`),
* every LS of the block is scored and decided; its conformal p-value is kept. An LS whose
  pile-up lies outside the range the detector was fitted on goes to review (GREY): its score
  is an extrapolation (:func:`.greyzone.decide`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.data.context import ls_order
from dc_mlops.data.correction import conditions_matrix
from dc_mlops.detectors.base import Detector
from dc_mlops.errors import DataError
from dc_mlops.evaluation.combined import failure_mask
from dc_mlops.evaluation.drift import MAX_SCORE_KS, upward_ks
from dc_mlops.evaluation.greyzone import (GOOD, LONE_P, Cutoffs, conformal_bad_cutoff,
                                          conformal_p_values, decide, decision_metrics,
                                          episode_ids, fit_cutoffs, lone_flags, withhold)
from dc_mlops.evaluation.metrics import detection_metrics
from dc_mlops.evaluation.protocols import Step

#: good LS of the failures' runs scored as their era's reference, at most (detectors without
#: run context; with it every LS of those runs is scored anyway): see _foreign_failures
MAX_REFERENCE_LS = 20_000
#: fewest good LS a run needs to be judged on its own (else with its era's): see
#: _foreign_failures
MIN_REFERENCE_LS = 50
#: a run whose median good LS has at most this conformal p-value is outside the certifier's
#: domain, and its failures are no known failures (_foreign_failures)
FOREIGN_P = 0.01

#: the LS columns carried into the per-LS decision table
KEEP = ("runId", "lumiId", "era", "label", "judged", "origin", "subsystem", "scenario")


@dataclass
class StepResult:
    """A fitted step: its detector, cut-offs and the data it rests on."""

    step: Step
    detector: Detector
    cutoffs: Cutoffs
    calib_scores: np.ndarray
    bad_scores: np.ndarray  # the known bad LS t_good rests on
    n_train: int
    fit_seconds: float
    folds: int = 0  # run folds of the cross-fitted calibration (0: held-out newest runs)
    # BAD needs an LS's own score (without run context) above this (greyzone.decide's
    # ``lone``): the conformal cut-off at LONE_P of the calibration LS scored alone
    t_lone: float = -float("inf")
    bad_blocks: np.ndarray | None = None  # the failure episode of each of ``bad_scores``
    # (runId, lumiId, score) of every flagged failure LS (any subsystem) of the runs before
    # the step, inside its conditions range: what the combined GOOD cut-off of all PDs
    # rests on (failure_p_values), as certify's rests on the certifier's history
    failures: pd.DataFrame | None = None


@dataclass
class WalkForward:
    """Every certified LS once (``decisions``) and one row per step (``steps``)."""

    decisions: pd.DataFrame
    steps: pd.DataFrame
    # per step, the p-values of the flagged failure LS known before it (``step``, ``runId``,
    # ``lumiId``, ``p_value``): the combined walk's ``p_good`` rests on them, as certify's
    # rests on every failure of the certifier's history (:mod:`.combined`)
    known_failures: pd.DataFrame | None = None

    def metrics(self, prefix: str = "test") -> dict[str, float]:
        d = self.decisions
        out = detection_metrics(d["label"], d["score"], prefix, d["judged"], d["subsystem"])
        out.update(decision_metrics(d["decision"], d["label"], d["judged"], prefix))
        return out


def conditions_of(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """The condition values detectors are fitted against, or None for ``none``
    (:func:`dc_mlops.data.correction.conditions_matrix`)."""
    return conditions_matrix(frame, column)


def fit_step(frame: pd.DataFrame, names: list[str], step: Step, build: Callable[[], Detector],
             conditions: str | None, max_good_as_bad: float, max_bad_as_good: float,
             folds: int = 0, context_ls: int = 0) -> StepResult:
    """Fit one step of a run plan: its detector and cut-offs (no test LS are read).

    ``frame`` holds every LS (good and bad) sorted by run and LS: with run context
    (``context_ls``) an LS is scored among all its run's LS, as in operation."""
    runs = frame["runId"].to_numpy()
    first = min(step.test_runs) if step.test_runs else np.inf
    earlier = frame[runs < first]
    if folds >= 2:
        return fit_crossfitted(frame[np.isin(runs, step.history_runs)], earlier, names, step,
                               build, conditions, max_good_as_bad, max_bad_as_good, folds,
                               context_ls)
    good = frame["label"].to_numpy() == 0
    det = build()
    train = frame[np.isin(runs, step.train_runs) & good]
    return _finish(det, train, frame[np.isin(runs, step.calib_runs)], earlier, names, step,
                   conditions, max_good_as_bad, max_bad_as_good, context_ls)


def fit_parts(train: pd.DataFrame, calib: pd.DataFrame, known_bad: pd.DataFrame,
              names: list[str], step: Step, build: Callable[[], Detector],
              conditions: str | None, max_good_as_bad: float, max_bad_as_good: float,
              context_ls: int = 0) -> StepResult:
    """Fit a detector on ``train`` (good LS), calibrate ``t_bad`` on the good LS of ``calib``
    and ``t_good`` on the judged bad LS of ``known_bad`` (the splits of ``protocol=runs``:
    with run context, an LS's context is the LS of its own split)."""
    return _finish(build(), train, calib, known_bad, names, step, conditions, max_good_as_bad,
                   max_bad_as_good, context_ls)


def _finish(det: Detector, train: pd.DataFrame, calib: pd.DataFrame, known: pd.DataFrame,
            names: list[str], step: Step, conditions: str | None, max_good_as_bad: float,
            max_bad_as_good: float, context_ls: int) -> StepResult:
    n_calib = int((calib["label"].to_numpy() == 0).sum())
    if len(train) < 2 or n_calib < 1:
        where = f"runs {step.train_runs[0]}-{step.calib_runs[-1]}" if step.calib_runs else "data"
        raise DataError(f"{where}: {len(train)} good LS to train on and {n_calib} to "
                        "calibrate on: too few (widen the window or check the labels)")
    t0 = time.perf_counter()
    _fit(det, train, names, conditions, context_ls)
    fit_seconds = time.perf_counter() - t0
    s_calib = _calibration_scores(det, calib, names, conditions)
    scored = _bad_ls_scores(det, known, names, conditions, s_calib,
                            step.train_runs + tuple(np.unique(calib["runId"])))
    s_bad, blocks = _known_bad(scored)
    cut = fit_cutoffs(s_calib, s_bad, max_good_as_bad, max_bad_as_good, bad_blocks=blocks)
    alone = ([_calibration_scores(det, calib, names, conditions, False)]
             if det.context_ls else [])
    return StepResult(step, det, cut, s_calib, s_bad, len(train), fit_seconds,
                      t_lone=_lone_cutoff(alone), bad_blocks=blocks,
                      failures=_failures(scored))


def fit_crossfitted(window: pd.DataFrame, known: pd.DataFrame, names: list[str],
                    step: Step, build: Callable[[], Detector], conditions: str | None,
                    max_good_as_bad: float, max_bad_as_good: float, folds: int,
                    context_ls: int = 0) -> StepResult:
    """The certifier fitted on every good LS of ``window`` (every LS of the window's runs);
    ``t_bad`` on out-of-fold scores of the window's good LS (see the module docstring),
    ``t_good`` on the judged bad LS of ``known`` (every LS of the earlier runs)."""
    good = window["label"].to_numpy() == 0
    win_runs = window["runId"].to_numpy()
    runs = np.unique(win_runs[good])
    if len(runs) < folds or good.sum() < 2 * folds:
        raise DataError(f"runs {runs[0] if len(runs) else '?'}-{runs[-1] if len(runs) else '?'}: "
                        f"{int(good.sum())} good LS in {len(runs)} runs cannot be cross-fitted "
                        f"in {folds} run folds (widen the window, or calib_folds=0)")
    t0 = time.perf_counter()
    parts, alone = [], []
    for k in range(folds):
        held = np.isin(win_runs, runs[k::folds])
        det = build()
        _fit(det, window[~held & good], names, conditions, context_ls)
        parts.append(_calibration_scores(det, window[held], names, conditions))
        if det.context_ls:
            alone.append(_calibration_scores(det, window[held], names, conditions, False))
    det = build()
    _fit(det, window[good], names, conditions, context_ls)
    fit_seconds = time.perf_counter() - t0
    s_calib = np.concatenate(parts)
    scored = _bad_ls_scores(det, known, names, conditions, s_calib, tuple(runs))
    s_bad, blocks = _known_bad(scored)
    cut = fit_cutoffs(s_calib, s_bad, max_good_as_bad, max_bad_as_good, bad_blocks=blocks)
    return StepResult(step, det, cut, s_calib, s_bad, int(good.sum()), fit_seconds, folds,
                      _lone_cutoff(alone), blocks, _failures(scored))


def run_plan(frame: pd.DataFrame, names: list[str], plan: list[Step],
             build: Callable[[], Detector], conditions: str | None, max_good_as_bad: float,
             max_bad_as_good: float, on_step: Callable[[int], None] | None = None,
             folds: int = 0, context_ls: int = 0, feedback: bool = False) -> WalkForward:
    """Fit, calibrate and certify every step of ``plan``; each LS is certified once.

    ``feedback``: the later steps learn from what a DC expert's review leaves (SPEC §4.4),
    the loop of operation (certify, review the grey zone, retrain): an LS certified GOOD
    enters the Golden JSON unseen and trains the next certifiers as a good LS, even when it
    is a failure; the LS sent to review (GREY) or flagged BAD carry the expert's verdict
    (their label). The known bad LS ``t_good`` rests on stay those of the runs before the
    plan (fully labelled, as when experts certified every LS by hand): the failures a
    review finds are not a fair sample of the failures (those certified GOOD are never
    shown), and resting ``t_good`` on them let it climb step by step on the simulated 2018
    (benchmarks/results/certification_review_naive.md). The decisions are still measured against
    the truth (``label``)."""
    frame = ls_order(frame)
    runs = frame["runId"].to_numpy()
    known = frame.copy() if feedback else frame
    parts, rows, failures = [], [], []
    for i, step in enumerate(plan):
        res = fit_step(known, names, step, build, conditions, max_good_as_bad,
                       max_bad_as_good, folds, context_ls)
        block = np.isin(runs, step.test_runs)
        part, row = certify_part(res, frame[block], names, conditions, i)
        failures.append(known_failure_p_values(res).assign(step=i))
        if feedback:
            unseen = np.flatnonzero(block)[part["decision"].to_numpy() == GOOD]
            known.iloc[unseen, known.columns.get_loc("label")] = 0
            known.iloc[np.flatnonzero(block), known.columns.get_loc("judged")] = False
            row["n_failures_unseen"] = int((frame["label"].to_numpy()[unseen] == 1).sum())
        parts.append(part)
        rows.append(row)
        if on_step is not None:
            on_step(i)
    return WalkForward(pd.concat(parts, ignore_index=True), pd.DataFrame(rows),
                       pd.concat(failures, ignore_index=True)[["step", "runId", "lumiId",
                                                              "p_value"]])


def certify_part(res: StepResult, test: pd.DataFrame, names: list[str],
                 conditions: str | None, index: int = 0) -> tuple[pd.DataFrame, dict]:
    """Score and decide the LS of ``test`` with a fitted step; per-LS table and step row.

    As ``certify`` does with a new era: when the block's scores moved away from the
    calibration scores (:data:`~dc_mlops.evaluation.drift.MAX_SCORE_KS`), the step is out of
    its domain and its LS go to review (``in_domain`` False)."""
    scores = _score(res.detector, test, names, conditions)
    outside = _outside(res.detector, test, conditions)
    finite = np.isfinite(scores)
    ks = upward_ks(scores[finite & ~outside], res.calib_scores)
    in_domain = ks <= MAX_SCORE_KS
    cut = res.cutoffs
    part = test[[c for c in KEEP if c in test.columns]].copy()
    part["step"] = index
    part["score"] = scores
    part["p_value"] = conformal_p_values(res.calib_scores, scores)
    lone = lone_flags(res.t_lone, lambda: _score(res.detector, test, names, conditions, False))
    part["lone"] = np.ones(len(test), bool) if lone is None else lone
    decision = decide(scores, cut.t_good, cut.t_bad, outside, part["lone"].to_numpy())
    part["decision"] = decision if in_domain else withhold(decision)
    part["outside"] = outside
    part["in_domain"] = in_domain
    good = part["label"].to_numpy() == 0
    runs = part["runId"].to_numpy()
    row = {"step": index, "first_run": int(runs.min()) if len(runs) else -1,
           "last_run": int(runs.max()) if len(runs) else -1,
           "n_train_runs": len(res.step.train_runs), "n_calib_runs": len(res.step.calib_runs),
           "n_train_ls": res.n_train, "calib_folds": res.folds,
           "n_outside_conditions": int(outside.sum()), "score_ks": ks, "t_lone": res.t_lone,
           "n_bad_vetoed": int(((scores > cut.t_bad) & ~part["lone"].to_numpy()
                                & ~outside).sum()),
           "in_domain": bool(in_domain), "fit_seconds": res.fit_seconds,
           "calib_good_median": float(np.median(res.calib_scores)),
           "test_good_median": float(np.median(scores[good])) if good.any() else float("nan"),
           **{k: v for k, v in cut.to_dict().items() if k != "confidence"},
           **decision_metrics(part["decision"], part["label"], part["judged"], "step")}
    return part, row


def failure_p_values(res: StepResult, history: pd.DataFrame, names: list[str],
                     conditions: str | None) -> pd.DataFrame:
    """(runId, lumiId, p_value) of every flagged failure LS of ``history`` (any subsystem;
    every LS of its runs, sorted by run and LS) under a fitted step, inside its conditions
    range: what the combined GOOD cut-off of ``certify pd=all`` rests on
    (:mod:`dc_mlops.evaluation.combined`)."""
    return _p_values(res, _failures(_bad_ls_scores(res.detector, history, names, conditions,
                                                   res.calib_scores, res.step.history_runs)))


def known_failure_p_values(res: StepResult) -> pd.DataFrame:
    """:func:`failure_p_values` of the failures the step was fitted with (every failure of
    the runs before it, scored when its cut-offs were set): no second scoring."""
    return _p_values(res, res.failures)


def _p_values(res: StepResult, failures: pd.DataFrame | None) -> pd.DataFrame:
    """``failures`` (runId, lumiId, score) with their conformal p-values under ``res``."""
    if failures is None or failures.empty:
        return pd.DataFrame({"runId": np.zeros(0, np.int64), "lumiId": np.zeros(0, np.int64),
                             "p_value": np.zeros(0)})
    return pd.DataFrame({"runId": failures["runId"].to_numpy(),
                         "lumiId": failures["lumiId"].to_numpy(),
                         "p_value": conformal_p_values(res.calib_scores,
                                                       failures["score"].to_numpy())})


def _fit(det: Detector, part: pd.DataFrame, names: list[str], conditions: str | None,
         context_ls: int = 0) -> None:
    """Fit ``det`` on the (good) LS of ``part``, with its conditions and run context."""
    kw = {}
    c = conditions_of(part, conditions)
    if c is not None:
        kw["conditions"] = c
    if context_ls:
        kw.update(runs=part["runId"].to_numpy(), context_ls=context_ls)
    det.fit(part[names].to_numpy(np.float32), feature_names=names, **kw)


def _outside(det: Detector, part: pd.DataFrame, conditions: str | None) -> np.ndarray:
    """LS of ``part`` whose conditions lie outside the detector's fitted range."""
    c = conditions_of(part, conditions)
    return np.zeros(len(part), bool) if c is None else det.conditions_outside(c)


def _calibration_scores(det: Detector, part: pd.DataFrame, names: list[str],
                        conditions: str | None, context: bool = True) -> np.ndarray:
    """Scores of the good LS of ``part`` inside the detector's conditions range, each scored
    among every LS of its run (the others are never decided automatically, so they do not
    calibrate a cut-off either); alone, without run context, with ``context`` False."""
    keep = (part["label"].to_numpy() == 0) & ~_outside(det, part, conditions)
    return _score(det, part, names, conditions, context)[keep]


def _lone_cutoff(alone: list[np.ndarray]) -> float:
    """The cut-off an LS's own score must pass for BAD (greyzone.decide's ``lone``): the
    conformal cut-off at LONE_P of the good calibration LS scored alone (``alone``, by
    part); -inf (no veto) without them: a detector without run context, whose scores are
    the LS's own already."""
    return conformal_bad_cutoff(np.concatenate(alone), LONE_P) if alone else -float("inf")


def _bad_ls_scores(det: Detector, part: pd.DataFrame, names: list[str],
                   conditions: str | None, calib_scores: np.ndarray | None = None,
                   seen_runs: tuple = ()) -> pd.DataFrame:
    """Every bad LS of ``part`` (runId, lumiId, score, judged, failure, outside), each scored
    among every LS of its run (only the runs that hold one are scored): the known bad LS a
    step's GOOD cut-offs rest on, scored once for both.

    With ``calib_scores`` the bad LS of runs outside the certifier's domain get a NaN score
    (:func:`_foreign_failures`), so no cut-off rests on them; ``seen_runs`` are the runs the
    certifier was fitted or calibrated on."""
    runs = part["runId"].to_numpy()
    part = part[np.isin(runs, runs[part["label"].to_numpy() == 1])]
    bad = part["label"].to_numpy() == 1
    if not det.context_ls:  # each LS alone: the bad LS and a sample of their runs' good LS
        good = np.flatnonzero(~bad)
        keep = bad.copy()
        keep[good[::max(1, int(np.ceil(len(good) / MAX_REFERENCE_LS)))]] = True
        part, bad = part[keep], bad[keep]
    scores = _score(det, part, names, conditions)
    if calib_scores is not None:
        scores = _foreign_failures(scores, part, calib_scores, seen_runs)
    rows = part[bad]
    # tables without an origin (made by hand): every bad LS a flagged failure
    origin = rows["origin"] if "origin" in rows else np.full(len(rows), "failure")
    return pd.DataFrame({"runId": rows["runId"].to_numpy(), "lumiId": rows["lumiId"].to_numpy(),
                         "score": scores[bad], "judged": rows["judged"].to_numpy(bool),
                         "failure": failure_mask(rows["label"], origin),
                         "outside": _outside(det, rows, conditions)})


def _foreign_failures(scores: np.ndarray, part: pd.DataFrame, calib_scores: np.ndarray,
                      seen_runs: tuple) -> np.ndarray:
    """``scores`` of ``part`` with the bad LS of each run outside the certifier's domain set
    to NaN: the GOOD cut-off does not rest on them (and, NaN, they are no known failure).

    Why: a certifier fitted on a later era scores every LS of an earlier era high, failures
    and good LS alike (its calibration moved). Against the calibration LS every known
    failure of that era then looks extreme, and a GOOD cut-off resting on them is set far
    too loose: in the walk over the simulated 2018 (ZeroBias, ``score_mode=histogram``) a
    2018D certifier scored the good LS of 2018A-C at a median of 40-80 (its calibration
    LS: 1.9), no known 2018A or 2018B failure had a p-value above 0.05 in the first steps of
    2018C and 2018D (24-42 % of the era's own new failures did), and up to 32 % of a step's
    failures were certified GOOD (1.35 % over the walk, against a 1 % target). Ranking those
    failures within their own era instead (the same p-value against their era's good LS)
    swung the other way: under a foreign calibration a failure's own shift is diluted, and
    the walk certified 13 % of the good LS instead of 67 %. So they are left out.

    A run is outside when the median of its good LS the certifier never saw (not in
    ``seen_runs``) has a conformal p-value of at most :data:`FOREIGN_P` against the
    calibration LS: its typical good LS looks like a failure. (Not a KS distance: one run's
    good LS sit close together, and a run at a typical level is far, in KS, from the
    calibration LS of many runs.) A run with fewer than ``MIN_REFERENCE_LS`` such good LS
    is judged by the median of every such LS of its era (``era`` column; without it, of
    every such run). Runs the certifier was fitted or calibrated on are in its domain.
    """
    out = np.array(scores, dtype=np.float64)
    label = part["label"].to_numpy()
    runs = part["runId"].to_numpy()
    era = part["era"].astype(str) if "era" in part.columns else pd.Series("", part.index)
    reference = (label == 0) & np.isfinite(out) & ~np.isin(runs, seen_runs)
    limit = conformal_bad_cutoff(calib_scores, FOREIGN_P)
    ref = pd.DataFrame({"run": runs[reference], "era": era.to_numpy()[reference],
                        "score": out[reference]})
    by_run = ref.groupby("run")["score"].agg(["median", "size"])
    by_era = ref.groupby("era")["score"].agg(["median", "size"])
    candidates = pd.DataFrame({"run": runs, "era": era.to_numpy()})[
        (label == 1) & ~np.isin(runs, seen_runs)].drop_duplicates("run")
    # a run's own good LS when it has enough, else its era's
    own = by_run.reindex(candidates["run"]).to_numpy()
    pooled = by_era.reindex(candidates["era"]).to_numpy()
    judge = np.where((own[:, 1] >= MIN_REFERENCE_LS)[:, None], own, pooled)
    outside = (judge[:, 1] >= MIN_REFERENCE_LS) & (judge[:, 0] > limit)
    out[np.isin(runs, candidates["run"].to_numpy()[outside]) & (label == 1)] = np.nan
    return out


def _known_bad(scored: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The scores of the judged bad LS (the PD's own failures: ``t_good`` rests on them) and
    the failure episode of each (:func:`.greyzone.episode_ids`)."""
    j = scored[scored["judged"].to_numpy(bool) & np.isfinite(scored["score"].to_numpy())]
    return (j["score"].to_numpy(np.float64),
            episode_ids(j["runId"].to_numpy(), j["lumiId"].to_numpy()))


def _failures(scored: pd.DataFrame) -> pd.DataFrame:
    """The flagged failure LS of any subsystem inside the conditions range (runId, lumiId,
    score): the combined cut-off's known failures."""
    keep = (scored["failure"].to_numpy(bool) & ~scored["outside"].to_numpy(bool)
            & np.isfinite(scored["score"].to_numpy()))
    return scored.loc[keep, ["runId", "lumiId", "score"]].reset_index(drop=True)


def _score(det: Detector, part: pd.DataFrame, names: list[str], conditions: str | None,
           context: bool = True) -> np.ndarray:
    """Scores of the LS of ``part`` (each LS alone with ``context`` False). With run
    context, DCS-bad LS (a detector was off: DCS decided them before any model) take no part
    in their neighbours' context and get no score (NaN), as in ``certify``."""
    if len(part) == 0:
        return np.zeros(0)
    if det.context_ls and "origin" in part.columns:
        dcs = part["origin"].to_numpy().astype(str) == "dcs"
        if dcs.any():
            out = np.full(len(part), np.nan)
            out[~dcs] = _score(det, part[~dcs], names, conditions, context)
            return out
    X = part[names].to_numpy(np.float32)
    c = conditions_of(part, conditions)
    runs = part["runId"].to_numpy() if det.context_ls else None
    return det.score(X, conditions=c, runs=runs, context=context)

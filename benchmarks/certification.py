"""Certification benchmark (issues 9 and 12): does certification save expert work, at error
rates that hold, on the 2018 run/LS structure?

1. **Walk-forward** (the operational protocol, SPEC §4.1) over the simulated 2018 with the
   real run/LS structure (``structure`` = the shared DCS-only JSON, ``golden`` = the shared
   Golden JSON), the four PDs at once: per PD and detector, the same walk ``evaluate`` runs
   (:func:`dc_mlops.evaluation.walkforward.run_plan`, the ``evaluate`` defaults for the
   windows and targets): automation, correct automation, good->BAD, bad->GOOD, contamination
   and ROC AUC on the PD's own failures. Then **all PDs combined** per LS with the detectors
   ``promote pd=all`` would choose (the combination of target-meeting detectors whose
   combined walk meets both targets and decides the most; beside it each PD's own pick), decided by the
   product's own :func:`dc_mlops.evaluation.combined.combined_walk` (the combined cut-offs of
   ``certify pd=all``), measured on the flagged failures of every subsystem (unflagged
   failures of the truth table certified GOOD are counted too).
2. **Review feeding back** (SPEC §4.4): automation starts at the last quarter of the runs
   (the runs before it were certified by hand), the simulator's truth playing the DC expert
   on the grey and BAD LS. Per block and per PD: a frozen certifier (the window before the
   quarter, its cut-offs refreshed after each block by ``refresh_cutoffs``) beside the
   review loop (every step retrained on the labels review leaves:
   ``run_plan(feedback=True)``) and the walk with every LS labelled; and all PDs combined.
   ``--only-review`` runs this section alone.
3. **Peer**: the best PyOD detector on the same inputs (conditions fit included) through the
   same cut-offs and walk (``pip install -e '.[bench]'``; skipped, saying so, without it).
4. **Certify from raw histograms and from a feature table** (issue 9): ``dc-mlops certify`` of
   the 2018-sized JetHT era in a fresh process: wall time and peak memory, targets <= 60 s
   and <= 2 GiB on 2 cores.

    python benchmarks/certification.py                    # everything
    python benchmarks/certification.py --models pca --skip-certify --skip-peer

The walk uses the ``evaluate`` defaults except the window: 40 runs, as ``main`` (with 30 the
window misses bunch schemes and luminosity ranges, and their LS go to review), 2 calibration
folds as ``main`` and steps of 20 runs (with 4 folds and steps of 10, one PD and detector
took 18 minutes on a loaded machine: 52 steps of 5 fits each).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

from dc_mlops.data.features import MIN_EVENTS  # noqa: E402
from dc_mlops.data.lstable import LabelOptions, load_ls_table  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.evaluation.combined import combined_walk, hindsight_automation  # noqa: E402
from dc_mlops.evaluation.greyzone import (GOOD, GREY, decision_metrics,  # noqa: E402
                                          refresh_cutoffs)
from dc_mlops.evaluation.protocols import Step, latest_window, rolling_steps  # noqa: E402
from dc_mlops.evaluation.selection import rank, rank_combinations, summarise  # noqa: E402
from dc_mlops.evaluation.walkforward import certify_part, fit_step, ls_order, run_plan  # noqa: E402
from dc_mlops.settings import PDS, EvaluateSettings, SimulateSettings  # noqa: E402
from dc_mlops.steps.evaluate import certifier_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "certification_json"
CACHE = REPO / "benchmarks" / ".cache"
SEED = 2026
RATES = ["test_correct_automation_rate", "test_automation_rate", "test_good_as_bad_rate",
         "test_bad_as_good_rate", "test_contamination", "test_roc_auc"]


#: what a reader of the peer's rows must know
PEER_NOTE = {"ECOD": "\n\nPyOD's ECOD is transductive: `decision_function` refits its per-feature "
                     "ECDFs on the training LS *and the LS scored with them*, so a score depends on "
                     "the batch. Scoring the known failures in larger batches (since "
                     "commit baa7ded) moved its ZeroBias correct automation from 0.379 to 0.429 "
                     "and JetHT's bad→GOOD from 1.14 % to 0.20 %; our detectors' rows did not "
                     "move."}


def era_2018() -> Path:
    """The simulated 2018 (real structure, all PDs), written once and cached."""
    out = CACHE / f"era2018-all-seed{SEED}"
    if not (out / "meta.json").is_file():
        from dc_mlops.steps.simulate import run_simulate
        CACHE.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        run_simulate(SimulateSettings(pd="all", structure=str(SHARED / "json_DCSONLY_2018.txt"),
                                      golden=str(SHARED / "json_GOLDEN_2018.txt"), seed=SEED,
                                      out=str(out)))
        print(f"simulated the 2018 structure for all PDs in {time.time() - t0:.0f} s", flush=True)
    return out


def ls_frame(era: Path, pd_name: str) -> tuple[pd.DataFrame, list[str]]:
    t = load_ls_table(str(era), pd_name, LabelOptions(), "summary")
    f = t.frame
    f = f[f["EventsPerLs"].to_numpy() >= MIN_EVENTS]
    return ls_order(f).reset_index(drop=True), t.feature_names


def plan(frame: pd.DataFrame, s: EvaluateSettings) -> tuple[np.ndarray, np.ndarray, list[Step]]:
    per_run = frame.groupby("runId")["label"].apply(lambda x: int((x == 0).sum()))
    runs, n_good = per_run.index.to_numpy(), per_run.to_numpy()
    return runs, n_good, rolling_steps(runs, n_good, s.window_runs, s.calib_runs, s.step_runs)


def builder(name: str, seed: int = 0):
    if name.startswith("pyod:"):
        return lambda: pyod_detector(name[5:], seed)
    base, params = registry.parse_spec(name)  # a name or a variant, name:key=value
    if "seed" in registry.default_params(base):
        params["seed"] = seed
    return lambda: registry.build(base, **params)


def walk(era: Path, pds: list[str], models: list[str], s: EvaluateSettings) -> dict:
    """Every (PD, model): its walk's decisions and metrics."""
    out = {}
    for pd_name in pds:
        frame, names = ls_frame(era, pd_name)
        _, _, steps = plan(frame, s)
        for m in models:
            t0 = time.time()
            wf = run_plan(frame, names, steps, builder(m), s.conditions, s.max_good_as_bad,
                          s.max_bad_as_good, folds=s.calib_folds, context_ls=s.context_ls)
            out[(pd_name, m)] = wf
            mt = wf.metrics()
            print(f"{pd_name} {m}: {len(steps)} steps in {time.time() - t0:.0f} s, correct "
                  f"automation {mt['test_correct_automation_rate']:.3f}, good->BAD "
                  f"{mt['test_good_as_bad_rate']:.4f}, bad->GOOD {mt['test_bad_as_good_rate']:.4f}"
                  f", ROC AUC {mt['test_roc_auc']:.3f}", flush=True)
    return out


def per_era_rows(results: dict) -> list[list]:
    """good->BAD and bad->GOOD per era of the walk: where the cut-offs stop holding."""
    rows = []
    for (pd_name, m), wf in results.items():
        for era, d in wf.decisions.groupby("era", sort=True):
            mt = decision_metrics(d["decision"], d["label"], d["judged"], "e")
            rows.append([pd_name, m, era, len(d), f"{mt['e_automation_rate']:.3f}",
                         f"{mt['e_good_as_bad_rate']:.4f}", f"{mt['e_bad_as_good_rate']:.4f}",
                         int(mt["e_n_bad"])])
    return rows


def per_pd_rows(results: dict) -> list[list]:
    rows = []
    for (pd_name, m), wf in results.items():
        mt = wf.metrics()
        rows.append([pd_name, m] + [f"{mt[k]:.4f}" for k in RATES]
                    + [int(mt["test_n_bad"]), f"{wf.steps['t_good_supported'].mean():.0%}"])
    return rows


def chosen(results: dict, pd_name: str, s: EvaluateSettings) -> str | None:
    """The detector promote would pick for a PD (its best meeting both targets)."""
    rows = [{"model": m, "seed": 0, **wf.metrics()} for (p, m), wf in results.items()
            if p == pd_name and not m.startswith("pyod:")]
    if not rows:
        return None
    r = rank(summarise(pd.DataFrame(rows)), s.max_good_as_bad, s.max_bad_as_good)
    return str(r.iloc[0]["model"]) if r.iloc[0]["meets_targets"] else None


def combination(results: dict, pds: list[str], s: EvaluateSettings
                ) -> tuple[dict[str, str | None], str]:
    """What ``promote pd=all`` would put in Production: the best combination, by the combined
    walk, of the detectors meeting their PD's targets (:func:`rank_combinations`), else each
    PD's own pick; and a line saying which rule chose."""
    own = {p: chosen(results, p, s) for p in pds}
    options = {}
    for p in pds:
        rows = [{"model": m, "seed": 0, **wf.metrics()} for (q, m), wf in results.items()
                if q == p and not m.startswith("pyod:")]
        r = rank(summarise(pd.DataFrame(rows)), s.max_good_as_bad, s.max_bad_as_good)
        options[p] = {str(x.model): results[(p, str(x.model))].decisions
                      for x in r.itertuples() if x.meets_targets}
    if len(pds) < len(PDS) or not all(options.values()):
        return own, "each PD's own pick (a PD has no detector meeting its targets)"
    known = {p: {m: results[(p, m)].known_failures for m in o} for p, o in options.items()}
    ranking = rank_combinations(options, s.max_good_as_bad, s.max_bad_as_good, failures=known)
    top = ranking.iloc[0]
    if not top["meets_targets"]:
        return own, (f"each PD's own pick (none of {len(ranking)} combinations meets the "
                     f"targets on the combined walk; best: {top['why_not']})")
    return ({p: str(top[p]) for p in pds},
            f"promote pd=all: the best of {int(ranking['meets_targets'].sum())} combinations "
            f"(of {len(ranking)}) meeting both targets on the combined walk")


def combined(era: Path, results: dict, picks: dict[str, str | None],
             s: EvaluateSettings) -> dict:
    """All PDs per LS, as ``certify pd=all`` decides (the product's combined cut-offs), with
    each PD's pick (a PD without one: its most automating detector, said in the title)."""
    walks = {}
    for pd_name, m in picks.items():
        m = m or max((wf.metrics()["test_correct_automation_rate"], mm)
                     for (p, mm), wf in results.items() if p == pd_name)[1]
        walks[pd_name] = results[(pd_name, m)]
    d = combined_walk({p: w.decisions for p, w in walks.items()}, s.max_bad_as_good,
                      s.max_good_as_bad, failures={p: w.known_failures for p, w in walks.items()})
    m = decision_metrics(d["decision"], d["label"], d["failure"], "era")
    supported = d.groupby("step")["p_good"].first() < 1
    truth = pd.read_parquet(era / "truth.parquet")
    unflagged = truth[truth["origin"] == "unflagged"]
    uk = unflagged["run"].to_numpy(np.int64) * 10_000_000 + unflagged["ls"].to_numpy(np.int64)
    keys = d["runId"].to_numpy(np.int64) * 10_000_000 + d["lumiId"].to_numpy(np.int64)
    m["n_ls"] = len(d)
    m["good_fraction"] = float(np.mean(d["decision"] == GOOD))
    m["steps_supported"] = f"{int(supported.sum())} of {len(supported)}"
    m["unflagged_certified_good"] = int(np.isin(uk, keys[d["decision"].to_numpy() == GOOD]).sum())
    m["unflagged_in_walk"] = int(np.isin(uk, keys).sum())
    m["oracle_automation"], m["oracle_p_good"] = hindsight_automation(d, s.max_bad_as_good)
    return m


def combined_variants(results: dict, picks: dict[str, str | None], models: list[str],
                      s: EvaluateSettings) -> list[list]:
    """All PDs combined with promote's picks, with each PD's own pick (``promote pd=<PD>``),
    without the lone rule (an LS above t_bad need not be unusual on its own), and with one
    detector for every PD: per era, what each choice does to the Golden JSON."""
    def pick(pd_name: str, m: str | None) -> str:
        return m or max((wf.metrics()["test_correct_automation_rate"], mm)
                        for (p, mm), wf in results.items() if p == pd_name)[1]

    own = {p: pick(p, chosen(results, p, s)) for p in picks}
    variants = [("promote's picks", {p: pick(p, m) for p, m in picks.items()}, True),
                ("each PD's own pick (" + ", ".join(f"{p} {m}" for p, m in own.items()) + ")",
                 own, True),
                ("promote's picks, no lone rule", {p: pick(p, m) for p, m in picks.items()},
                 False)]
    variants += [(f"{m} for every PD", {p: m for p in picks}, True) for m in models]
    rows = []
    for what, chosen_, lone in variants:
        walks = {p: results[(p, m)].decisions for p, m in chosen_.items()}
        if not lone:
            walks = {p: w.assign(lone=True) for p, w in walks.items()}
        d = combined_walk(walks, s.max_bad_as_good, s.max_good_as_bad,
                          failures={p: results[(p, m)].known_failures
                                    for p, m in chosen_.items()})
        era = walks[next(iter(walks))].set_index(["runId", "lumiId"])["era"]
        d["era"] = era.reindex(pd.MultiIndex.from_arrays([d["runId"], d["lumiId"]])).to_numpy()
        for name, part in [("all", d)] + list(d.groupby("era", sort=True)):
            mt = decision_metrics(part["decision"], part["label"], part["failure"], "c")
            rows.append([what, name, len(part), f"{mt['c_automation_rate']:.4f}",
                         f"{mt['c_good_as_bad_rate']:.4f}", f"{mt['c_bad_as_good_rate']:.4f}",
                         int(mt["c_n_bad"]), f"{mt['c_contamination']:.5f}"])
    return rows


def quarter(steps: list[Step], runs: np.ndarray) -> int:
    """Index of the first step that certifies the last quarter of ``runs``."""
    cut = runs[int(len(runs) * 0.75)]
    return next(i for i, st in enumerate(steps) if min(st.test_runs) >= cut)


def review_stream(era: Path, pds: list[str], picks: dict, s: EvaluateSettings,
                  results: dict) -> tuple[list[list], list[list]]:
    """Review feeding back over the last quarter of the runs (automation starts there; the
    runs before it were certified by hand: fully labelled), per PD and all PDs combined.
    Three certifications of the same blocks, the simulator's truth playing the DC expert on
    the grey and the BAD LS:

    * *frozen*: the certifier of the window before the quarter certifies every block; after
      each block the verdicts refresh its cut-offs (``refresh_cutoffs``, what ``review``
      does between retrainings), the detector stays;
    * *review loop*: every step retrains on the labels review left
      (``run_plan(feedback=True)``): LS certified GOOD count as good; ``t_good`` and
      ``p_good`` rest on the failures of the hand-certified runs;
    * *every LS labelled*: the walk of section 1 (every earlier LS labelled by the truth).
    """
    rows, fed_walks, truth_walks, first_run = [], {}, {}, None
    fed_known, truth_known = {}, {}
    for pd_name in pds:
        m = picks.get(pd_name) or "pca"
        frame, names = ls_frame(era, pd_name)
        runs, _, steps = plan(frame, s)
        truth = results.get((pd_name, m)) or run_plan(
            frame, names, steps, builder(m), s.conditions, s.max_good_as_bad,
            s.max_bad_as_good, folds=s.calib_folds, context_ls=s.context_ls)
        first = quarter(steps, runs)
        t0 = time.time()
        fed = run_plan(frame, names, steps[first:], builder(m), s.conditions,
                       s.max_good_as_bad, s.max_bad_as_good, folds=s.calib_folds,
                       context_ls=s.context_ls, feedback=True)
        print(f"{pd_name} {m}: review loop in {time.time() - t0:.0f} s", flush=True)
        loop = fed.decisions.assign(step=fed.decisions["step"] + first)
        before = truth.decisions[truth.decisions["step"] < first]
        fed_walks[pd_name] = pd.concat([before, loop], ignore_index=True)
        truth_walks[pd_name] = truth.decisions
        tk = truth.known_failures
        fed_known[pd_name] = pd.concat(
            [tk[tk["step"] < first],
             fed.known_failures.assign(step=fed.known_failures["step"] + first)],
            ignore_index=True)
        truth_known[pd_name] = tk
        first_run = min(steps[first].test_runs)
        res = fit_step(frame, names, steps[first], builder(m), s.conditions, s.max_good_as_bad,
                       s.max_bad_as_good, s.calib_folds, s.context_ls)
        cut, calib, found_bad = res.cutoffs, res.calib_scores, np.zeros(0)
        for b, st in enumerate(steps[first:]):
            # the product's decision (lone rule, domain check) with the refreshed cut-offs
            part, _ = certify_part(dataclasses.replace(res, cutoffs=cut, calib_scores=calib),
                                   frame[frame["runId"].isin(st.test_runs)], names,
                                   s.conditions)
            score, d = part["score"].to_numpy(), part["decision"].to_numpy()
            y = part["label"].to_numpy()
            seen = (d != GOOD) & np.isfinite(score)  # the expert reviews grey and BAD LS
            found_bad = np.r_[found_bad, score[seen & (y == 1) & part["judged"].to_numpy(bool)]]
            frozen = float(np.mean(d[np.isfinite(score)] == GREY))
            cut, calib = refresh_cutoffs(calib, res.bad_scores,
                                         score[((d == GOOD) | (seen & (y == 0)))
                                               & np.isfinite(score)],
                                         score[:0], found_bad, s.max_good_as_bad,
                                         s.max_bad_as_good, known_bad_blocks=res.bad_blocks)
            mt = [decision_metrics(w["decision"], w["label"], w["judged"], "b")
                  for w in (fed.decisions[fed.decisions["step"] == b],
                            truth.decisions[truth.decisions["step"] == first + b])]
            rows.append([pd_name, m, b + 1, int(mt[0]["b_n_ls"]), f"{frozen:.3f}",
                         f"{mt[0]['b_grey_fraction']:.3f}", f"{mt[1]['b_grey_fraction']:.3f}",
                         f"{mt[0]['b_good_as_bad_rate']:.4f}",
                         f"{mt[0]['b_bad_as_good_rate']:.4f}",
                         f"{mt[1]['b_bad_as_good_rate']:.4f}",
                         int(fed.steps["n_failures_unseen"].iat[b])])
    combined_rows = []
    if len(pds) == len(PDS):
        for what, walks, known, known_until in (
                ("review loop", fed_walks, fed_known, first_run),
                ("every LS labelled", truth_walks, truth_known, None)):
            d = combined_walk(walks, s.max_bad_as_good, s.max_good_as_bad,
                              known_until=known_until, failures=known)
            d = d[d["runId"] >= first_run]
            mt = decision_metrics(d["decision"], d["label"], d["failure"], "c")
            combined_rows.append([what, len(d), f"{mt['c_automation_rate']:.4f}",
                                  f"{mt['c_grey_fraction']:.4f}",
                                  f"{mt['c_good_as_bad_rate']:.4f}",
                                  f"{mt['c_bad_as_good_rate']:.4f}", int(mt["c_n_bad"]),
                                  f"{mt['c_contamination']:.5f}"])
    return rows, combined_rows


def review_sections(era: Path, pds: list[str], picks: dict, s: EvaluateSettings,
                    results: dict) -> list[tuple[str, str]]:
    rows, combined_rows = review_stream(era, pds, picks, s, results)
    out = [("Review feeding back over the last quarter of the runs (automation starts there), "
            "the truth playing the DC expert on the grey and BAD LS: grey fraction of the frozen "
            "certifier (review-refreshed cut-offs), of the review loop (retrained on the "
            "reviewed labels) and of the walk with every LS labelled; rates of the review loop "
            "against the truth (bad→GOOD of the labelled walk beside it); failures the review "
            "loop certified GOOD, which then trained the next certifiers as good LS", table(
                ["PD", "detector", "block", "LS", "grey frozen", "grey review loop",
                 "grey every LS labelled", "good→BAD loop", "bad→GOOD loop",
                 "bad→GOOD labelled", "failures unseen"], rows))]
    if combined_rows:
        out.append(("Review feeding back, all PDs combined over the last quarter (the "
                    "combined cut-offs of certify pd=all; p_good of the review loop rests on "
                    "the failures of the hand-certified runs)", table(
                        ["labels", "LS", "automation", "grey", "good→BAD", "bad→GOOD",
                         "failure LS", "contamination"], combined_rows)))
    return out


PYOD = {"ECOD": ("ecod", "ECOD"), "IForest": ("iforest", "IForest"), "KNN": ("knn", "KNN"),
        "OCSVM": ("ocsvm", "OCSVM")}


def pyod_detector(model: str, seed: int = 0):
    """A PyOD detector behind the dc_mlops contract (conditions fit included): the peer goes
    through exactly the same correction, walk and cut-offs."""
    from importlib import import_module

    from dc_mlops.detectors.baselines import _SklearnDetector

    class Peer(_SklearnDetector):
        name = f"pyod-{model}"
        _fitted = ("est_",)

        def __init__(self, *, seed: int = 0):
            self.seed = seed

        def _fit_sklearn(self, X):
            module, cls = PYOD[model]
            kwargs = {"random_state": self.seed} if model == "IForest" else {}
            self.est_ = getattr(import_module(f"pyod.models.{module}"), cls)(**kwargs).fit(X)

        def _score_batch(self, X):
            return self.est_.decision_function(X)

    return Peer(seed=seed)


PEAK_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"""


def certify_cost(era: Path, work: Path) -> list[list]:
    """dc-mlops certify of the 2018-sized JetHT era, raw histograms and feature table."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    frame, names = ls_frame(era, "JetHT")
    s = settings(pd="JetHT")
    runs, n_good, _ = plan(frame, s)
    res = fit_step(frame, names, latest_window(runs, n_good, s.window_runs, s.calib_runs),
                   builder("pca"), s.conditions, s.max_good_as_bad, s.max_bad_as_good,
                   s.calib_folds, s.context_ls)
    code = """
import json, mlflow, numpy as np, pandas as pd, sys
from dc_mlops.detectors import load_detector
from dc_mlops.tracking.models import log_detector_model
det = load_detector(sys.argv[1]); spec = json.load(open(sys.argv[2]))
with mlflow.start_run():
    print(log_detector_model(det, spec, pd.read_parquet(sys.argv[3])))
"""
    res.detector.save(work / "det")
    history = frame[frame["runId"].isin(res.step.history_runs) & (frame["label"] == 0)]
    base = {"pd": "JetHT", "feature_names": names, "representation": "summary",
            "under_overflow": "drop", "positions": "beam_spot_relative"}
    spec = certifier_spec(base, "pca", s, res, history, names, s.conditions, "", "")
    (work / "spec.json").write_text(json.dumps(spec))
    history.head(20).to_parquet(work / "example.parquet")
    uri = subprocess.run([sys.executable, "-c", code, str(work / "det"), str(work / "spec.json"),
                          str(work / "example.parquet")], env=env, check=True, cwd=work,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    table_path = work / "jetht_features.parquet"
    conds = [c for c in ("lumi", "pileup", "t_fill") if c in frame.columns]
    frame[["runId", "lumiId", *conds, "EventsPerLs"] + names].to_parquet(table_path)
    rows = []
    for what, data, extra in (("raw histograms (era folder)", era, []),
                              ("feature table (Parquet)", table_path, [])):
        out = work / f"cert-{len(rows)}"
        t0 = time.time()
        # a fresh wrapper per command: RUSAGE_CHILDREN of this process would keep the peak
        # of every earlier child (the model logging, the other certify)
        proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER,
                               str(Path(sys.executable).parent / "dc-mlops"), "-q", "certify",
                               "--pd", "JetHT", "--data", str(data), "--model-uri", uri,
                               "--out", str(out), *extra], env=env, cwd=work,
                              capture_output=True, text=True)
        wall = time.time() - t0
        peak = int(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else 0
        if proc.returncode:
            raise SystemExit(f"certify failed: {proc.stderr[-2000:]}")
        n = json.loads((out / "summary.json").read_text())["counts"]["ls_total"]
        rows.append([what, n, f"{wall:.1f}", f"{peak / 1024:.0f}",
                     "yes" if wall <= 60 else "no", "yes" if peak / 1024 <= 2048 else "no"])
    return rows


def settings(**kw) -> EvaluateSettings:
    """The ``evaluate`` defaults with main's window and folds (see the module docstring)."""
    return EvaluateSettings(window_runs=40, calib_runs=10, calib_folds=2, step_runs=20, **kw)


def describe(s: EvaluateSettings) -> str:
    return (f"Simulated 2018 (real DCS-only structure and Golden JSON, seed {SEED}), walk-forward "
            f"with the `evaluate` defaults but main's window: window {s.window_runs} runs, cut-offs "
            f"cross-fitted over {s.calib_folds} run folds, steps of {s.step_runs} runs, "
            f"conditions={s.conditions}, run context {s.context_ls} LS, "
            f"targets good→BAD <= {s.max_good_as_bad:g} and bad→GOOD <= "
            f"{s.max_bad_as_good:g}. Targets of the issue: combined automation >= 90 % with "
            "good→BAD <= 1 % and contamination <= 0.1 %.\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pds", default="all")
    ap.add_argument("--models", default="mahalanobis,mahalanobis:score_mode=histogram,pca",
                    help="candidates per PD, as main's (dc_mlops.steps.main.MAIN_MODELS)")
    ap.add_argument("--peer", default="ECOD", help="PyOD detector to put through the cut-offs")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-certify", action="store_true")
    ap.add_argument("--only-certify", action="store_true",
                    help="only the certify cost (section 4), into results/certify_cost.md")
    ap.add_argument("--only-review", action="store_true",
                    help="only the review sections, with --review-model for every PD, into "
                         "results/certification_review.md")
    ap.add_argument("--review-model", default="pca",
                    help="with --only-review: the detector of every PD (the last full run "
                         "picked pca for every PD)")
    args = ap.parse_args()
    if args.only_review:
        pds = list(PDS) if args.pds == "all" else args.pds.split(",")
        s = settings()
        sections = review_sections(era_2018(), pds, {p: args.review_model for p in pds}, s, {})
        write("certification_review", "Certification benchmark: review feeding back",
              describe(s) + "\n\n".join(f"## {t}\n\n{b}" for t, b in sections),
              "python benchmarks/certification.py " + " ".join(sys.argv[1:]))
        return
    if args.only_certify:
        era = era_2018()
        with tempfile.TemporaryDirectory() as tmp:
            rows = certify_cost(era, Path(tmp))
        load = os.getloadavg()[0]
        write("certify_cost", "certify of a 2018-sized era: time and memory",
              f"Simulated 2018 (real DCS-only structure, seed {SEED}), JetHT, a pca certifier "
              "fitted on the newest window (cross-fitted cut-offs); `dc-mlops -q certify` in a "
              f"fresh process. Targets: <= 60 s and <= 2 GiB peak on 2 cores. Load average at "
              f"the end: {load:.1f}.\n\n" + table(["input", "LS", "seconds", "peak MiB",
                                                     "<= 60 s", "<= 2 GiB"], rows),
              "python benchmarks/certification.py --only-certify")
        return
    pds = list(PDS) if args.pds == "all" else args.pds.split(",")
    models = args.models.split(",")
    s = settings()
    era = era_2018()
    sections = []
    results = walk(era, pds, models, s)
    head = ["PD", "detector", "correct automation", "automation", "good→BAD", "bad→GOOD",
            "contamination", "ROC AUC", "judged bad LS", "steps with t_good supported"]
    sections.append(("Walk-forward per PD (the PD's own failures)", table(head,
                                                                           per_pd_rows(results))))
    sections.append(("The same walks per era", table(
        ["PD", "detector", "era", "LS", "automation", "good→BAD", "bad→GOOD", "judged bad LS"],
        per_era_rows(results))))
    picks, rule = combination(results, pds, s)
    if len(pds) == len(PDS):
        m = combined(era, results, picks, s)
        sections.append(("All PDs combined per LS, the combined cut-offs of certify pd=all "
                         "(the detectors promote would choose, " + rule + ": "
                         + ", ".join(f"{p} {v or 'none meets the targets: the most automating'}"
                                     for p, v in picks.items()) + ")", table(
            ["LS", "automation", "GOOD", "correct automation", "good→BAD", "bad→GOOD",
             "failure LS", "contamination", "steps with GOOD supported",
             "unflagged failures certified GOOD", "oracle automation (p_good)"],
            [[m["n_ls"], f"{m['era_automation_rate']:.4f}", f"{m['good_fraction']:.4f}",
              f"{m['era_correct_automation_rate']:.4f}", f"{m['era_good_as_bad_rate']:.4f}",
              f"{m['era_bad_as_good_rate']:.4f}", int(m["era_n_bad"]),
              f"{m['era_contamination']:.5f}", m["steps_supported"],
              f"{m['unflagged_certified_good']} of {m['unflagged_in_walk']}",
              f"{m['oracle_automation']:.4f} ({m['oracle_p_good']:.3g})"]]) + "\n\n"
            "Oracle automation (`combined.hindsight_automation`): the share decided if one "
            "`p_good` for the whole walk were set with hindsight on the walk's own failures at "
            "the bad→GOOD target (no confidence bound): what these detectors can tell apart at "
            "best. The gap to the automation column is what the honest cut-off gives up; the "
            "gap to 90 % is the detectors'."))
        sections.append(("All PDs combined: promote's picks, each PD's own pick, the lone "
                         "rule off, one detector for every PD, per era", table(
                             ["combination", "era", "LS", "automation", "good→BAD", "bad→GOOD",
                              "failure LS", "contamination"],
                             combined_variants(results, picks, models, s))))
    sections += review_sections(era, pds, picks, s, results)
    if not args.skip_peer:
        try:
            import pyod  # noqa: F401
            peer = walk(era, pds, [f"pyod:{args.peer}"], s)
            sections.append((f"Peer: PyOD {args.peer} through the same conditions fit, walk and "
                             "cut-offs", table(head, per_pd_rows(peer)) + PEER_NOTE.get(
                                 args.peer, "")))
        except ImportError:
            sections.append(("Peer", "PyOD is not installed (`pip install -e '.[bench]'`): "
                                     "skipped."))
    if not args.skip_certify:
        with tempfile.TemporaryDirectory() as tmp:
            sections.append(("`dc-mlops certify` of the 2018-sized JetHT era in a fresh process",
                             table(["input", "LS", "seconds", "peak MiB", "<= 60 s",
                                    "<= 2 GiB"], certify_cost(era, Path(tmp)))))
    body = describe(s) + "\n\n".join(f"## {t}\n\n{b}" for t, b in sections)
    write("certification", "Certification benchmark", body,
          "python benchmarks/certification.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()

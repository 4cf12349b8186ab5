"""The promotion rule (SPEC §5), in one place: which evaluated detector may certify.

A candidate is a detector (one model name) evaluated over several seeds on the same LS. It
*meets the targets* when its mean measured good->BAD rate is within ``max_good_as_bad`` and
its mean measured bad->GOOD rate within ``max_bad_as_good``; among those the highest mean
``metric`` (correct automation by default) wins, ties broken by ROC AUC. A candidate that
misses a target is never chosen, however much it automates: wrong BAD flags and bad LS in the
Golden JSON are not "automation". A rate that could not be measured (no bad LS among the
certified ones) does not meet its target, and neither does a detector that ranks the PD's
failures no better than chance (ROC AUC <= 0.5): its few right decisions would be luck.

All PDs at once (``promote pd=all``, :func:`rank_combinations`): among the combinations of
one target-meeting candidate per PD, the one whose combined walk (what goes into the Golden
JSON) meets both targets and decides the most LS rightly.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from dc_mlops.evaluation.combined import combined_walk
from dc_mlops.evaluation.greyzone import decision_metrics

RATES = ("test_good_as_bad_rate", "test_bad_as_good_rate")
SUMMARY = ("test_correct_automation_rate", "test_automation_rate", "test_good_as_bad_rate",
           "test_bad_as_good_rate", "test_contamination", "test_roc_auc", "test_pr_auc",
           "test_roc_auc_all")


def summarise(candidates: pd.DataFrame, columns: tuple[str, ...] = SUMMARY) -> pd.DataFrame:
    """Mean and spread over seeds per model: ``<metric>_mean``, ``<metric>_std``, n_seeds."""
    cols = [c for c in columns if c in candidates.columns]
    agg = candidates.groupby("model", sort=False)[cols].agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg["n_seeds"] = candidates.groupby("model", sort=False).size()
    return agg.reset_index()


def rank(summary: pd.DataFrame, max_good_as_bad: float, max_bad_as_good: float,
         metric: str = "test_correct_automation_rate") -> pd.DataFrame:
    """``summary`` with ``meets_targets`` and ``why_not`` columns, best first."""
    out = summary.copy()
    why = []
    for r in out.itertuples():
        gab = getattr(r, "test_good_as_bad_rate_mean")
        bag = getattr(r, "test_bad_as_good_rate_mean")
        reasons = []
        if not np.isfinite(gab):
            reasons.append("good->BAD not measured (no good LS certified in the walk)")
        elif gab > max_good_as_bad:
            reasons.append(f"good->BAD {gab:.4f} > {max_good_as_bad:g}")
        if not np.isfinite(bag):  # unmeasured is not met: nothing says failures are caught
            reasons.append("bad->GOOD not measured (no failure of the PD in the walk)")
        elif bag > max_bad_as_good:
            reasons.append(f"bad->GOOD {bag:.4f} > {max_bad_as_good:g}")
        auc = getattr(r, "test_roc_auc_mean", np.nan)
        if np.isfinite(auc) and not auc > 0.5:
            reasons.append(f"ROC AUC {auc:.3f}: no better than chance")
        why.append("; ".join(reasons))
    out["why_not"] = why
    out["meets_targets"] = out["why_not"] == ""
    key = f"{metric}_mean"
    if key not in out.columns:
        raise KeyError(metric)
    return out.assign(_m=out[key].fillna(-1), _a=out.get("test_roc_auc_mean", 0.0)).sort_values(
        ["meets_targets", "_m", "_a"], ascending=False).drop(columns=["_m", "_a"]
                                                             ).reset_index(drop=True)


def best_seed(candidates: pd.DataFrame, model: str,
              metric: str = "test_correct_automation_rate") -> pd.Series:
    """The seed of ``model`` whose certifier is registered: its best on ``metric`` (the model
    as a whole met the targets on the mean over seeds)."""
    rows = candidates[candidates["model"] == model]
    return rows.sort_values([metric, "test_roc_auc"], ascending=False).iloc[0]


def rank_combinations(walks: dict[str, dict[str, pd.DataFrame]], max_good_as_bad: float,
                      max_bad_as_good: float, metric: str = "walk_correct_automation_rate",
                      failures: dict[str, dict[str, pd.DataFrame | None]] | None = None
                      ) -> pd.DataFrame:
    """Every combination of one candidate per PD, ranked by what ``certify pd=all`` puts in
    the Golden JSON: the PDs' walks combined per LS (:func:`.combined.combined_walk`), the
    same targets on the combined rates (good->BAD over the good LS, bad->GOOD over every
    flagged failure LS), then the highest combined ``metric``, ties broken by the lower
    bad->GOOD.

    Why not each PD's own best: a PD's pick answers "how much does this PD decide alone",
    but an LS enters the Golden JSON only when every PD passes it, so the combination that
    automates most per PD is not the one that keeps failures out best (on the simulated 2018,
    the per-PD picks let 1.57 % of failures through against 1.01 % with pca for every PD).

    ``walks``: per PD, per candidate key (a model name, or a champion's label), its walk's
    per-LS decisions (``decisions.parquet`` of the candidate run). ``failures``: the same
    keys, each walk's known failures per step (``known_failures.parquet``;
    :func:`.combined.combined_walk`), None where a run predates them. Returns one row per
    combination: a column per PD holding its candidate key, the ``walk_*`` figures of
    :func:`.greyzone.decision_metrics`, ``meets_targets`` and ``why_not``; best first.
    """
    pds = list(walks)
    rows = []
    for keys in itertools.product(*(list(walks[p]) for p in pds)):
        d = combined_walk({p: walks[p][k] for p, k in zip(pds, keys)}, max_bad_as_good,
                          max_good_as_bad, failures={p: (failures or {}).get(p, {}).get(k)
                                                     for p, k in zip(pds, keys)})
        m = decision_metrics(d["decision"], d["label"], d["failure"], "walk")
        gab, bag = m["walk_good_as_bad_rate"], m["walk_bad_as_good_rate"]
        reasons = []
        if not np.isfinite(gab) or gab > max_good_as_bad:
            reasons.append(f"good->BAD {gab:.4f} > {max_good_as_bad:g}" if np.isfinite(gab)
                           else "good->BAD not measured")
        if not np.isfinite(bag) or bag > max_bad_as_good:
            reasons.append(f"bad->GOOD {bag:.4f} > {max_bad_as_good:g}" if np.isfinite(bag)
                           else "bad->GOOD not measured (no failure in the walk)")
        rows.append(dict(zip(pds, keys)) | m | {"why_not": "; ".join(reasons)})
    out = pd.DataFrame(rows)
    if metric not in out.columns:
        raise KeyError(metric)
    out["meets_targets"] = out["why_not"] == ""
    return out.assign(_m=out[metric].fillna(-1), _b=out["walk_bad_as_good_rate"].fillna(1)
                      ).sort_values(["meets_targets", "_m", "_b"], ascending=[False, False, True],
                                    kind="stable").drop(columns=["_m", "_b"]
                                                        ).reset_index(drop=True)

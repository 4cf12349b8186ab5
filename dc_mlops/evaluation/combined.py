"""All PDs together: the decision that goes into the Golden JSON (SPEC §7) and its GOOD cut-off.

An LS enters the Golden JSON only when every PD certifies its subsystems GOOD; it is BAD as
soon as one PD flags it. The per-PD GOOD cut-off (:mod:`.greyzone`) answers "how many of this
PD's own failures would it certify GOOD?" and rests on them alone: on a history of a few
weeks EGamma has tens of ECAL failure LS it can see, far from the 299 that a 1 % claim at
95 % confidence needs, so it certifies nothing GOOD and, through the combination, neither
does anyone. The Golden JSON asks another question: of the LS a DC expert flagged bad (any
subsystem), how many would *every* PD let through? Every flagged failure LS of the history
answers it (an ECAL failure that EGamma misses may be caught by JetHT's calorimeter
histograms), so the combined rule has as many failures to rest on as the history has.

The rule: an LS is GOOD when every PD's conformal p-value (:func:`.greyzone.conformal_p_values`,
against that PD's good calibration LS) exceeds one common ``p_good``, no PD flags it BAD, and
every PD decided it inside its conditions range and domain. ``p_good`` is the smallest value
whose one-sided bound on the share of known failure LS that would pass (their smallest
p-value over the PDs above ``p_good``) stays within ``max_bad_as_good``: the same bound as the
per-PD cut-off (:func:`.greyzone.bounded_good_cutoff`), on the combined p-value, counting the
failure episodes (blocks of consecutive LS) the LS come in.
With too few known failures nothing is certified GOOD and the number needed is reported.

BAD works the other way round: an LS is BAD as soon as one PD flags it, so the good LS that
some PD flags add up over the PDs (each PD within 1 % made 1.4 % of the good LS of the
walk over simulated 2018D BAD for the Golden JSON). Together, each of the k PDs flags BAD at
``max_good_as_bad / k`` (a Bonferroni split of the target; the PDs' false flags overlap, so
the union stays below it): :func:`joint_t_bad`.

For a PD, ``p > p_good`` is ``score <= t`` with ``t`` the conformal cut-off of its calibration
scores at ``p_good`` (:func:`joint_t_good`), so certification applies the joint rule through
each PD's ``t_good`` and ``t_bad`` and the one decision rule, :func:`.greyzone.decide`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from dc_mlops.data.responsibility import NOT_JUDGED_ORIGINS
from dc_mlops.evaluation.greyzone import (BAD, CONFIDENCE, GOOD, GREY, bad_needed,
                                          bounded_good_cutoff, conformal_bad_cutoff,
                                          episode_ids)

KEYS = ["runId", "lumiId"]


@dataclass(frozen=True)
class JointCutoff:
    """The combined GOOD cut-off and what it rests on."""

    p_good: float  # GOOD when every PD's p-value exceeds it (1.0: nothing is GOOD)
    bound: float  # one-sided upper bound on the share of failure LS certified GOOD
    n_failures: int  # known failure LS (scored by every PD) it rests on
    max_bad_as_good: float
    bad_needed: int
    confidence: float = CONFIDENCE
    n_pds: int = 1  # PDs certified together (each flags BAD at its share of the target)
    n_blocks: int = 0  # failure episodes (blocks of consecutive LS) they form (0: not counted)

    @property
    def supported(self) -> bool:
        return self.bound <= self.max_bad_as_good

    def to_dict(self) -> dict:
        return asdict(self) | {"supported": self.supported}


def failure_mask(label, origin) -> np.ndarray:
    """Bad LS a DC expert flagged (a failure or a human flag), not DCS-bad or low statistics:
    the LS the combined certification must keep out of the Golden JSON."""
    origin = np.asarray(origin).astype(str)
    return (np.asarray(label) == 1) & ~np.isin(origin, NOT_JUDGED_ORIGINS)


def joint_cutoff(min_p_failures: np.ndarray, max_bad_as_good: float,
                 confidence: float = CONFIDENCE, n_pds: int = 1,
                 blocks: np.ndarray | None = None) -> JointCutoff:
    """``p_good`` from the smallest p-value over the PDs of each known failure LS.

    ``blocks``: the failure episode of each LS (:func:`.greyzone.episode_ids`). Failures
    come in blocks of consecutive LS (a sector off for 20 minutes) whose LS pass or fail
    together; counted as independent draws, main's 1 607 failure LS in 57 blocks let 1.8 %
    of the walk's failures through where it certified GOOD, against a 0.98 % bound. With
    ``blocks`` the bound is the clustered one of :func:`.greyzone.bounded_good_cutoff`."""
    m = np.asarray(min_p_failures, dtype=np.float64)
    # a failure passes when its smallest p-value exceeds p_good: the per-PD rule on -p
    t, bound = bounded_good_cutoff(-m, max_bad_as_good, confidence, blocks)
    p_good = 1.0 if bound > max_bad_as_good or not np.isfinite(t) else float(-t)
    n_blocks = 0 if blocks is None else int(len(np.unique(blocks)))
    return JointCutoff(p_good, float(bound), int(len(m)), max_bad_as_good,
                       bad_needed(max_bad_as_good, confidence), confidence, n_pds, n_blocks)


def joint_t_good(calibration_scores: np.ndarray, p_good: float) -> float:
    """A PD's score cut-off for the joint rule: ``score < t`` is ``p-value > p_good`` (up to
    ties, which stay GREY); ``p_good`` 1 gives -inf (nothing GOOD)."""
    if p_good >= 1.0:
        return -float("inf")
    return conformal_bad_cutoff(calibration_scores, p_good)


def joint_t_bad(calibration_scores: np.ndarray, max_good_as_bad: float, n_pds: int) -> float:
    """A PD's BAD cut-off when ``n_pds`` PDs are certified together: the conformal cut-off at
    ``max_good_as_bad / n_pds``."""
    return conformal_bad_cutoff(calibration_scores, max_good_as_bad / max(1, n_pds))


def joint_failures(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every known failure LS that every PD scored: ``runId``, ``lumiId``, ``min_p`` (the
    smallest p-value over the PDs), ``pd`` (the PD it comes from: the one that sees the LS
    best) and ``block`` (its failure episode among them, :func:`.greyzone.episode_ids`),
    sorted by run and LS.

    ``tables``: per PD, (runId, lumiId, p_value) of the history's failure LS."""
    merged = None
    for pd_name, t in tables.items():
        part = t[KEYS + ["p_value"]].drop_duplicates(KEYS).rename(columns={"p_value": pd_name})
        merged = part if merged is None else merged.merge(part, on=KEYS, how="inner")
    if merged is None or merged.empty:
        return pd.DataFrame({"runId": [], "lumiId": [], "min_p": [], "pd": [], "block": []})
    merged = merged.sort_values(KEYS, kind="stable").reset_index(drop=True)
    # a PD without a p-value (NaN) has no say, as in pandas' min; none at all stays NaN
    p = np.nan_to_num(merged[list(tables)].to_numpy(np.float64), nan=np.inf)
    min_p = p.min(axis=1)
    return merged[KEYS].assign(min_p=np.where(np.isinf(min_p), np.nan, min_p),
                               pd=np.asarray(list(tables))[p.argmin(axis=1)],
                               block=episode_ids(merged["runId"], merged["lumiId"]))


#: blocks of :func:`hardest_failures` that ``certify``'s summary names (all are in its CSV)
HARDEST_SHOWN = 3


def hardest_failures(failures: pd.DataFrame, p_good: float) -> pd.DataFrame:
    """The known failure blocks a combined GOOD cut-off rests on, least visible first: per
    block (``run``, ``first_ls``, ``last_ls``, ``n_ls``) the largest smallest-p-value over its
    LS (``max_p``: how typical its least visible LS looks to the PD that sees it best,
    ``pd``) and ``n_ls_above`` (LS with every PD's p-value above ``p_good``: the cut-off
    lets them through).

    Why: these blocks hold ``p_good`` where it is, so they decide how much is certified.
    A DC expert checks their labels first (one mislabelled LS of a good run can hold the whole
    cut-off up), and a detector developer sees which failures the detectors miss.

    ``failures``: :func:`joint_failures`'s table."""
    cols = ["run", "first_ls", "last_ls", "n_ls", "max_p", "pd", "n_ls_above"]
    if failures.empty:
        return pd.DataFrame({c: [] for c in cols})
    f = failures.sort_values(["block", "min_p"], ascending=[True, False], kind="stable")
    g = f.assign(above=f["min_p"].to_numpy(np.float64) > p_good).groupby("block", sort=False)
    out = pd.DataFrame({"run": g["runId"].first(), "first_ls": g["lumiId"].min(),
                        "last_ls": g["lumiId"].max(), "n_ls": g.size(),
                        "max_p": g["min_p"].first(), "pd": g["pd"].first(),
                        "n_ls_above": g["above"].sum()})
    return out.sort_values(["max_p", "run", "first_ls"], ascending=[False, True, True],
                           kind="stable").reset_index(drop=True)[cols]


def describe_hardest(blocks: list[dict]) -> str:
    """``run 320531 LS 220-433 (3 of 214 LS pass, p up to 0.41 in ZeroBias), ...``: the
    blocks of :func:`hardest_failures` as a summary names them."""
    return ", ".join(
        f"run {b['run']} LS {b['first_ls']}"
        f"{'' if b['first_ls'] == b['last_ls'] else '-' + str(b['last_ls'])} "
        f"({b['n_ls_above']} of {b['n_ls']} LS pass, p up to {b['max_p']:.2g} in {b['pd']})"
        for b in blocks)


def combined_walk(walks: dict[str, pd.DataFrame], max_bad_as_good: float,
                  max_good_as_bad: float, confidence: float = CONFIDENCE,
                  known_until: int | None = None,
                  failures: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The combined decision of the PDs' walk-forward certifications (one row per LS that
    every PD certified), as ``certify pd=all`` would have decided it at each step.

    ``walks``: per PD, the walk's per-LS table (``runId``, ``lumiId``, ``step``, ``label``,
    ``origin``, ``decision``, ``p_value``, ``outside``, optionally ``in_domain``: a step out
    of its domain decides nothing, as in ``certify``, and ``lone``: BAD needs the LS unusual
    on its own, :func:`.greyzone.decide`). The steps follow the runs of the
    first PD's walk; the ``p_good`` of a step rests on the failure LS of the runs before it
    (every LS is decided by models and cut-offs that saw only the past); BAD is each PD's
    p-value at ``max_good_as_bad`` / the number of PDs.

    ``failures`` (:attr:`.walkforward.WalkForward.known_failures`, per PD): each step's
    p-values of every failure LS known before it, the first window's included, as
    ``certify`` rests ``p_good`` on every failure of the certifier's history. Without them
    for every PD (None: walks logged before they were kept) a step rests on the failures
    that earlier steps certified: never on the first window's runs, so a faint failure
    there, which ``certify`` counts, is missed (main's walk set ``p_good`` at 0.18-0.25
    where ``certify`` needed 0.73).

    ``known_until`` (the walks of a review loop, :func:`.walkforward.run_plan` with
    ``feedback``, from that run on): the known failures ``p_good`` rests on are those of
    the runs before it (fully labelled); the failures a review finds later are not a fair
    sample (a failure certified GOOD is never shown again).
    """
    names = list(walks)
    merged = None
    for pd_name, d in walks.items():
        # a step out of its domain (in_domain False) decides none of its LS
        d = d.assign(outside=d["outside"].to_numpy(bool) | ~d["in_domain"].to_numpy(bool)) \
            if "in_domain" in d else d
        if "lone" not in d:  # walks made before the lone rule: no veto
            d = d.assign(lone=True)
        cols = {"decision": f"d_{pd_name}", "p_value": f"p_{pd_name}",
                "outside": f"o_{pd_name}", "step": f"s_{pd_name}", "lone": f"l_{pd_name}"}
        part = d[KEYS + ["label", "origin", *cols]].rename(columns=cols)
        merged = part if merged is None else merged.merge(
            part.drop(columns=["label", "origin"]), on=KEYS, how="inner")
    out = merged.sort_values(KEYS, kind="stable").reset_index(drop=True)
    p = out[[f"p_{n}" for n in names]].to_numpy(np.float64)
    outside = out[[f"o_{n}" for n in names]].to_numpy(bool)
    lone = out[[f"l_{n}" for n in names]].to_numpy(bool)
    min_p = p.min(axis=1)
    fail = failure_mask(out["label"], out["origin"])
    step = out[f"s_{names[0]}"].to_numpy()
    runs = out["runId"].to_numpy()
    decision = np.full(len(out), GREY, dtype=object)
    p_good = np.ones(len(out))
    inside = ~outside.any(axis=1)
    # BAD: one PD's p-value at or below its share of the target (the conformal rule of
    # greyzone.conformal_bad_cutoff at max_good_as_bad / k), inside its conditions, the LS
    # unusual on its own for that PD (greyzone.decide's ``lone``)
    bad = ((p <= max_good_as_bad / len(names)) & ~outside & lone).any(axis=1)
    labelled = fail if known_until is None else fail & (runs < known_until)
    blocks = np.full(len(out), -1, dtype=np.int64)
    blocks[fail] = episode_ids(runs[fail], out["lumiId"].to_numpy()[fail])
    use_known = failures is not None and all(failures.get(p) is not None for p in names)
    for s in np.unique(step):
        rows = step == s
        if use_known:
            j = joint_failures({p: _known_at(failures[p], s, known_until) for p in names})
            cut = joint_cutoff(j["min_p"].to_numpy(), max_bad_as_good, confidence,
                               blocks=j["block"].to_numpy())
        else:
            known = labelled & (runs < runs[rows].min())
            cut = joint_cutoff(min_p[known], max_bad_as_good, confidence, blocks=blocks[known])
        p_good[rows] = cut.p_good
    decision[inside & (min_p > p_good)] = GOOD
    decision[bad] = BAD
    return out[KEYS + ["label", "origin"]].assign(step=step, min_p=min_p, p_good=p_good,
                                                  failure=fail, decision=decision.astype(str))


def _known_at(failures: pd.DataFrame, step, known_until: int | None) -> pd.DataFrame:
    """One PD's known failures at ``step`` (those of the runs before ``known_until`` only)."""
    f = failures[failures["step"].to_numpy() == step]
    return f if known_until is None else f[f["runId"].to_numpy() < known_until]


def hindsight_automation(walk: pd.DataFrame, max_bad_as_good: float) -> tuple[float, float]:
    """The most the detectors of a combined walk (:func:`combined_walk`'s output) could
    decide at the bad->GOOD target: one ``p_good`` for the whole walk chosen with hindsight
    on the walk's own failures (no confidence bound, no waiting for known failures), and that
    ``p_good``. Never a cut-off to certify with: it tells the detectors' limit (what they can
    tell apart) from what the honest cut-off gives up. BAD flags, and LS outside their
    conditions or domain (GREY though above their step's ``p_good``), stay as decided; the
    share is over the good and flagged failure LS, as :func:`.greyzone.decision_metrics`."""
    dec = walk["decision"].to_numpy().astype(str)
    min_p = walk["min_p"].to_numpy(np.float64)
    fail = walk["failure"].to_numpy(bool)
    can = (dec != BAD) & ~((dec == GREY) & (min_p > walk["p_good"].to_numpy()))
    fp = np.sort(min_p[fail & can])
    k = int(np.floor(max_bad_as_good * fail.sum()))  # failures the target lets through
    t = float(fp[len(fp) - k - 1]) if len(fp) > k else 0.0  # at most k failures above it
    keep = (walk["label"].to_numpy() == 0) | fail  # the LS decision_metrics counts
    return float(np.mean(((dec == BAD) | (can & (min_p > t)))[keep])), t

"""The grey zone: two cut-offs that split decision values into GOOD, GREY and BAD (SPEC §4.3).

This module is the one place where a score becomes a decision (``decide``) and where the
decision figures of SPEC §4.2 are computed (``decision_metrics``).

* BAD cut-off ``t_bad`` from held-out good LS (calibration), as a conformal p-value: a LS is
  flagged BAD when p = (1 + #{calibration scores >= s}) / (n + 1) <= alpha. For exchangeable
  good LS this bounds the share of good LS flagged BAD by alpha in finite samples. LS of one
  fill are not exchangeable with LS of another, so the callers calibrate on the *newest* runs
  before the data they certify (the walk-forward protocol) and the measured rate is always
  reported beside the target.
* GOOD cut-off ``t_good`` from the known bad LS the PD can see (bad LS of earlier runs, of the
  subsystems it is responsible for): a LS is certified GOOD when its score is below the
  (k+1)-th smallest known-bad score, with k the largest count such that the one-sided
  Clopper-Pearson upper bound (``confidence``, 95 % by default) on the share of bad LS below
  the cut-off stays within ``max_bad_as_good``. With m known bad LS and none below the cut-off
  the bound is 1 - (1 - confidence)^(1/m) (about 3/m): few bad LS cannot support a small
  target. Then ``t_good`` is still the lowest known-bad score (the best the data allow), the
  cut-off is marked unsupported, and ``bad_needed`` says how many known bad LS would support
  the target.
* Failures come in episodes (a sector off for twenty minutes: a block of consecutive LS), and
  the LS of one episode pass or fail together. Counted as independent draws they claim more
  than they can hold: in the walk over the simulated 2018 (benchmarks/results/
  certification.md) the LS-count bound let 2.5 % of ZeroBias's failures through (pca) and,
  all PDs combined, 1.57 % into the Golden JSON, against a 1 % target. Given each known bad
  LS's episode (``blocks``, :func:`episode_ids`), the bound is the Korn-Graubard interval for
  clustered samples (:func:`clustered_rate_upper_bound`): the Clopper-Pearson bound on an
  effective number of LS, the count divided by the design effect the passing LS show across
  episodes. Passes spread over many episodes cost little; passes piled into one episode
  count as about one draw. There it let 1.6 % and 0.78 % through. No bound on past failures
  covers a kind of failure fainter than every known one (then no known LS passes and no
  design effect can be measured).

Scores equal to a cut-off fall in the grey zone: GOOD is ``s < t_good``, BAD is ``s > t_bad``.
"""
from __future__ import annotations

import math
import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import norm, t as t_dist

GOOD, GREY, BAD = "GOOD", "GREY", "BAD"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Cutoffs:
    """Both cut-offs with the targets they were set for and what they rest on."""

    t_good: float
    t_bad: float
    max_good_as_bad: float
    max_bad_as_good: float
    n_calib_good: int  # good LS the BAD cut-off rests on
    n_known_bad: int  # bad LS the GOOD cut-off rests on
    bad_as_good_bound: float  # one-sided upper bound on bad->GOOD at t_good (CONFIDENCE)
    bad_needed: int  # known bad LS that would support max_bad_as_good with none below t_good
    confidence: float = CONFIDENCE
    n_bad_blocks: int = 0  # failure episodes the known bad LS form (0: not counted)

    @property
    def t_good_supported(self) -> bool:
        """Do the known bad LS support the bad->GOOD target at the stated confidence?"""
        return self.bad_as_good_bound <= self.max_bad_as_good

    def to_dict(self) -> dict:
        return asdict(self) | {"t_good_supported": self.t_good_supported}


def conformal_bad_cutoff(calib_good: np.ndarray, alpha: float) -> float:
    """Smallest cut-off whose conformal p-value test flags at most alpha of good LS.

    With k = floor(alpha (n + 1)), flagging s > (k-th largest calibration score) is exactly
    p(s) <= alpha; k = 0 (too few calibration LS for this alpha) flags nothing.
    """
    s = np.sort(np.asarray(calib_good, dtype=np.float64))[::-1]
    k = int(np.floor(alpha * (len(s) + 1) + 1e-12))
    return float(s[k - 1]) if k >= 1 else float("inf")


def conformal_p_values(calib_good: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """p = (1 + #{calibration >= s}) / (n + 1) for each score: small = unlike good LS."""
    s = np.sort(np.asarray(calib_good, dtype=np.float64))
    above = len(s) - np.searchsorted(s, np.asarray(scores, dtype=np.float64), side="left")
    return (1.0 + above) / (len(s) + 1.0)


def rate_upper_bound(k: int, m: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen k times in m trials."""
    if m <= 0:
        return 1.0
    if k >= m:
        return 1.0
    return float(beta_dist.ppf(confidence, k + 1, m - k))


def bad_needed(max_rate: float, confidence: float = CONFIDENCE) -> int:
    """Known bad LS needed to claim a bad->GOOD rate <= max_rate when none pass the cut-off."""
    if max_rate <= 0:
        return math.inf  # type: ignore[return-value]
    return int(math.ceil(math.log(1 - confidence) / math.log1p(-max_rate)))


def episode_ids(runs, ls) -> np.ndarray:
    """Per LS, the index of its episode: the block of consecutive LS (one run, LS numbers one
    apart) it belongs to among the LS given."""
    key = np.asarray(runs, dtype=np.int64) * 100_000_000 + np.asarray(ls, dtype=np.int64)
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(key, kind="stable")
    ordered = np.concatenate([[0], np.cumsum(np.diff(key[order]) > 1)])
    out = np.empty(len(key), dtype=np.int64)
    out[order] = ordered
    return out


class _EpisodeBound:
    """The clustered bound of the k lowest known-bad scores, as k grows one LS at a time."""

    def __init__(self, blocks: np.ndarray, confidence: float):
        _, self.of = np.unique(blocks, return_inverse=True)
        sizes = np.bincount(self.of).astype(np.float64)
        self.passed = np.zeros(len(sizes))
        self.m, self.n_blocks, self.confidence = len(blocks), len(sizes), confidence
        self.sum_n2 = float(np.sum(sizes ** 2))
        self.sizes, self.sum_x2, self.sum_xn, self.k = sizes, 0.0, 0.0, 0

    def add(self, i: int) -> float:
        """Count the known bad LS ``i`` as passing; the bound with every LS added so far."""
        b = self.of[i]
        self.sum_x2 += 2 * self.passed[b] + 1
        self.sum_xn += self.sizes[b]
        self.passed[b] += 1
        self.k += 1
        r = self.k / self.m
        # between-episode variance of the ratio estimate (episodes as clusters); one episode
        # has none, and clustered_rate_upper_bound supports nothing on it
        ss = self.sum_x2 - 2 * r * self.sum_xn + r * r * self.sum_n2
        var = self.n_blocks / max(1, self.n_blocks - 1) * ss / self.m ** 2
        return clustered_rate_upper_bound(self.k, self.m, self.n_blocks, var, self.confidence)


def clustered_rate_upper_bound(k: int, m: int, n_blocks: int, variance: float,
                               confidence: float = CONFIDENCE) -> float:
    """One-sided Korn-Graubard upper bound on a rate seen in k of m LS drawn as ``n_blocks``
    episodes, ``variance`` the between-episode variance of k / m (Korn and Graubard 1998,
    Survey Methodology 24: 193-201).

    The effective number of LS is m divided by the design effect, k / m (1 - k / m) /
    ``variance`` (never above m), scaled by (z / t with n_blocks - 1 degrees of freedom)^2;
    the Clopper-Pearson bound follows on it. With k = 0 no design effect can be measured and
    the bound is the LS-count bound."""
    if k == 0 or m <= 0:
        return rate_upper_bound(k, m, confidence)
    if k >= m or n_blocks < 2:
        return 1.0
    r = k / m
    n_eff = m if variance <= 0 else min(m, r * (1 - r) / variance)
    n_eff *= (norm.ppf(confidence) / t_dist.ppf(confidence, n_blocks - 1)) ** 2
    x = r * n_eff
    return float(beta_dist.ppf(confidence, x + 1, n_eff - x)) if x < n_eff else 1.0


def bounded_good_cutoff(known_bad: np.ndarray, max_rate: float,
                        confidence: float = CONFIDENCE, blocks: np.ndarray | None = None
                        ) -> tuple[float, float]:
    """(t_good, bound): certify GOOD below the (k+1)-th smallest known-bad score, k as large as
    the one-sided bound on the bad->GOOD rate allows (k = 0 when nothing is supported).

    ``blocks`` (the episode of each known bad LS, :func:`episode_ids`): the clustered bound
    of :func:`clustered_rate_upper_bound`; without it the LS count as independent draws. k
    stops growing at the first LS whose pass would break the target (the clustered bound is
    not monotone in k).

    No known bad LS: nothing is known about failures, nothing is certified (-inf, 1.0).
    """
    scores = np.asarray(known_bad, dtype=np.float64)
    m = len(scores)
    if m == 0:
        return -float("inf"), 1.0
    order = np.argsort(scores, kind="stable")
    b = scores[order]
    if blocks is None:
        k = 0
        while k + 1 < m and rate_upper_bound(k + 1, m, confidence) <= max_rate:
            k += 1
        return float(b[k]), rate_upper_bound(k, m, confidence)
    if len(blocks) != m:
        raise ValueError("one episode per known bad LS")
    episodes = _EpisodeBound(np.asarray(blocks)[order], confidence)
    k, bound = 0, rate_upper_bound(0, m, confidence)
    while k + 1 < m:
        nxt = episodes.add(k)
        if nxt > max_rate:
            break
        k, bound = k + 1, nxt
    return float(b[k]), bound


def fit_cutoffs(calib_good: np.ndarray, known_bad: np.ndarray, max_good_as_bad: float,
                max_bad_as_good: float, confidence: float = CONFIDENCE,
                bad_blocks: np.ndarray | None = None) -> Cutoffs:
    """Both cut-offs; ``bad_blocks``, the episode of each known bad LS, makes the GOOD bound
    count episodes (:func:`bounded_good_cutoff`)."""
    if not 0 <= max_good_as_bad < 1 or not 0 <= max_bad_as_good < 1:
        raise ValueError("error-rate targets must lie in [0, 1)")
    t_bad = conformal_bad_cutoff(calib_good, max_good_as_bad)
    t_good, bound = bounded_good_cutoff(known_bad, max_bad_as_good, confidence, bad_blocks)
    if bound > max_bad_as_good:
        # too few known failures to claim the target: certify nothing GOOD (LS below the
        # lowest known failure may still be failures nobody has seen yet); BAD still works
        t_good = -float("inf")
    return Cutoffs(min(t_good, t_bad), t_bad, max_good_as_bad, max_bad_as_good,
                   int(len(calib_good)), int(len(known_bad)), bound,
                   bad_needed(max_bad_as_good, confidence), confidence,
                   0 if bad_blocks is None else int(len(np.unique(bad_blocks))))


#: BAD needs the LS itself, without its run context, to be among this share of the least
#: typical good LS (conformal p-value of its own score). See :func:`decide`.
LONE_P = 0.1


def decide(scores: np.ndarray, t_good: float, t_bad: float,
           outside: np.ndarray | None = None, lone: np.ndarray | None = None) -> np.ndarray:
    """GOOD below t_good, BAD above t_bad, GREY in between (ties are GREY).

    ``outside`` marks LS whose run conditions (pile-up) lie outside the range the detector
    was fitted on: its score there is an extrapolation, so neither cut-off applies and the
    LS goes to a person (GREY), whatever its score.

    ``lone`` (detectors that read run context) marks LS that look unusual on their own: the
    score of the LS alone, without its neighbours, has a conformal p-value of at most
    :data:`LONE_P` against the good calibration LS scored alone. An LS above ``t_bad`` but
    ordinary on its own goes to review instead of BAD: with run context a good LS next to a
    strong failure shares part of its shift, and on the 5 000 new LS of README command 1,
    52 of the 55 good LS flagged BAD sat within 8 LS of a failure. The veto only ever turns
    BAD into GREY (good->BAD can only fall); a failure strong enough to be flagged through
    its block is unusual on its own too, and on those LS it kept every failure flagged."""
    scores = np.asarray(scores, dtype=np.float64)
    above = scores > t_bad
    if lone is not None:
        above &= np.asarray(lone, dtype=bool)
    d = np.where(scores < t_good, GOOD, np.where(above, BAD, GREY))
    if outside is not None:
        d = np.where(np.asarray(outside, dtype=bool), GREY, d)
    return d


def lone_flags(t_lone: float | None, score_alone: Callable[[], np.ndarray]
               ) -> np.ndarray | None:
    """``decide``'s ``lone``: each LS's own score (``score_alone()``, the detector without
    run context) above ``t_lone``; None (no veto) when there is no finite ``t_lone``: a
    detector without run context, or a certifier made before the rule."""
    if t_lone is None or not np.isfinite(t_lone):
        return None
    return np.asarray(score_alone(), dtype=np.float64) > t_lone


def withhold(decisions: np.ndarray) -> np.ndarray:
    """A certifier outside its domain (SPEC §7: its scores moved away from its calibration
    LS) decides nothing: its GOOD and its BAD both go to review. Both cut-offs rest on new
    good LS scoring like the calibration ones; at the start of an era they score tens of
    times higher, and BAD alone made 66-90 % of the good LS BAD in the first block of each
    new era of the simulated 2018 (benchmarks/results/certification.md)."""
    d = np.asarray(decisions).astype(object)
    d[(d == GOOD) | (d == BAD)] = GREY
    return d.astype(str)


def decision_metrics(decisions: np.ndarray, labels: np.ndarray, judged: np.ndarray | None = None,
                     prefix: str = "test") -> dict[str, float]:
    """SPEC §4.2 figures of GOOD/GREY/BAD decisions against labels (0 good, 1 bad).

    ``judged`` marks the bad LS the detector answers for (its subsystems); bad LS it does not
    judge, and LS without a label (-1), are left out of every figure. Rates with an empty
    denominator are NaN (undefined), never a flattering 0.
    """
    d = np.asarray(decisions).astype(str)
    labels = np.asarray(labels).astype(int)
    bad = labels == 1
    if judged is not None:
        bad &= np.asarray(judged, dtype=bool)
    good = labels == 0
    keep = good | bad
    d, good, bad = d[keep], good[keep], bad[keep]
    n = len(d)
    certified = d == GOOD
    flagged = d == BAD

    def share(num: np.ndarray, den: np.ndarray) -> float:
        return float(num.sum() / den.sum()) if den.sum() else float("nan")

    return {
        f"{prefix}_automation_rate": float(np.mean(d != GREY)) if n else float("nan"),
        f"{prefix}_correct_automation_rate": float(np.mean((certified & good) | (flagged & bad)))
        if n else float("nan"),
        f"{prefix}_good_as_bad_rate": share(flagged & good, good),
        f"{prefix}_bad_as_good_rate": share(certified & bad, bad),
        f"{prefix}_contamination": share(certified & bad, certified),
        f"{prefix}_good_certified_rate": share(certified & good, good),
        f"{prefix}_bad_flagged_rate": share(flagged & bad, bad),
        f"{prefix}_grey_fraction": float(np.mean(d == GREY)) if n else float("nan"),
        f"{prefix}_n_ls": float(n),
        f"{prefix}_n_bad": float(bad.sum()),
    }


#: an LS a PD cannot judge for lack of events (the low-statistics cut)
LOW = "LOW_STATISTICS"
#: an LS outside the DCS-only JSON: a detector was off, DCS already decided it is bad
DCS = "DCS_BAD"


def combine(decisions: np.ndarray, ls_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One decision per LS from the decisions of every PD (or subsystem) on it (SPEC §7).

    ``ls_index[i]`` names the LS of ``decisions[i]``. An LS is BAD when any says BAD (or DCS),
    GOOD only when every one says GOOD, LOW_STATISTICS when one lacked the events to judge
    and none says BAD, GREY otherwise. Returns (unique LS index, decision per LS).
    """
    d = np.asarray(decisions).astype(str)
    keys, inv = np.unique(np.asarray(ls_index), return_inverse=True)
    n = len(keys)

    def any_of(*values: str) -> np.ndarray:
        hit = np.zeros(n, bool)
        np.logical_or.at(hit, inv, np.isin(d, values))
        return hit

    out = np.full(n, GREY, dtype=object)
    all_good = ~any_of(GREY, BAD, LOW, DCS)
    out[all_good] = GOOD
    out[any_of(LOW)] = LOW
    out[any_of(BAD)] = BAD
    out[any_of(DCS)] = DCS
    return keys, out.astype(str)


def refresh_cutoffs(calib_good: np.ndarray, known_bad: np.ndarray, new_good: np.ndarray,
                    flagged_unverified: np.ndarray, verified_bad: np.ndarray,
                    max_good_as_bad: float, max_bad_as_good: float,
                    confidence: float = CONFIDENCE, known_bad_blocks: np.ndarray | None = None
                    ) -> tuple[Cutoffs, np.ndarray]:
    """Cut-offs after a DC expert's review (SPEC §4.4): they adapt as verdicts arrive.

    * ``t_bad``: the good LS of the reviewed era (certified GOOD, or verified GOOD) join the
      calibration LS, so the BAD cut-off rests on more and newer good LS (a small calibration
      set makes the conformal cut-off conservative: the grey zone shrinks from above as it
      grows). They are not a random sample of the era's good LS: good LS flagged BAD that
      nobody checked are missing, and leaving them out would pull ``t_bad`` down review after
      review. They stand in from the unverified BAD-flagged LS: the lowest-scoring of those
      (the likeliest to be good), as many as a certifier meeting its target flags wrongly
      (``max_good_as_bad`` of the good LS). Verdicts on BAD-flagged LS, when the expert gives
      them, replace the stand-ins by the truth.
    * ``t_good``: its one-sided bound rests on the known bad LS of fully labelled runs only.
      Bad LS found in a review are not a random sample of bad LS (those certified GOOD were
      never shown to the expert), so they cannot loosen the bound; they tighten it: ``t_good``
      never stays above a verified bad LS (a bad LS an expert found among certified GOOD LS
      pulls it down at once).

    Returns the new cut-offs and the calibration scores they rest on.
    """
    new_good = np.asarray(new_good, dtype=np.float64)
    flagged = np.sort(np.asarray(flagged_unverified, dtype=np.float64))
    n_tail = min(len(flagged), int(math.ceil(max_good_as_bad * len(new_good)
                                             / max(1e-12, 1 - max_good_as_bad))))
    calib = np.concatenate([np.asarray(calib_good, dtype=np.float64), new_good,
                            flagged[:n_tail]])
    cut = fit_cutoffs(calib, known_bad, max_good_as_bad, max_bad_as_good, confidence,
                      known_bad_blocks)
    verified_bad = np.asarray(verified_bad, dtype=np.float64)
    if len(verified_bad) and verified_bad.min() < cut.t_good:
        cut = dataclasses.replace(cut, t_good=float(verified_bad.min()))
    return cut, calib

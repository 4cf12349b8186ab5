"""How visible each failure LS is to a DC expert, per PD: the rule that makes the labels.

SPEC §2.5 asks for labels a human could have given. A shifter sees a failure when a
monitored histogram of some PD looks different from good LS taken *at the same pile-up*
(multiplicities and isolation sums grow with pile-up, so a comparison across pile-up would
see conditions, not failures). Definition, for a failure LS of scenario s and a PD p:

    visibility_p = max over h in A_p(s), i in 0..6 of
                   |f_i(E_fail[h]) - f_i(E_good[h])| / sigma_{p,h,i}(pile-up of the LS)

* A_p(s): the histograms of p that s touches (:func:`affected_histograms`); empty -> NaN.
* E_fail / E_good: the noise-free expected histograms of that LS with and without its
  failure (same conditions; :func:`expected_counts`), f_i the 7-number summary (SPEC §2.2),
  which does not depend on the number of events, so events do not enter.
* sigma: the LS-to-LS spread of good LS at the same pile-up, measured on a reference
  sample of good LS of the same era simulated *with* noise (Poisson counts at the PD's
  events per LS, drifts inside fills and between eras): each feature is fitted against
  pile-up with a quadratic (the smooth dependence), and the robust spread (1.4826 x MAD)
  of the residuals is taken in pile-up quantile bins and interpolated in pile-up.

A failure LS is **flagged** (bad in the Golden JSON) when some PD shows it (visibility >= 1
in at least one PD), **subtle** when it is at most 3 in every PD that shows it, **obvious**
above 5. Unflagged failures stay in the Golden JSON and are kept in the truth table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.data.features import BUILTIN_SETS
from dc_mlops.data.summary import summarize

#: the PDs a visibility is measured in, in the order of the truth table's columns
VISIBILITY_PDS = tuple(BUILTIN_SETS)
N_REFERENCE = 2500  # good LS simulated with noise to measure the spread
N_PILEUP_BINS = 6
SUBTLE_MAX, OBVIOUS_MIN = 3.0, 5.0
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Spread:
    """The good-LS spread of one PD's features as a function of pile-up."""

    pileup_nodes: np.ndarray  # (k,) median pile-up of each bin
    sigma: dict[str, np.ndarray]  # histogram -> (k, 7)

    def at(self, hist: str, pileup: np.ndarray) -> np.ndarray:
        """(n, 7) spread of the histogram's summary at each pile-up (flat outside)."""
        sig = self.sigma[hist]
        if len(self.pileup_nodes) == 1:
            return np.broadcast_to(sig[0], (len(pileup), sig.shape[1]))
        return np.stack([np.interp(pileup, self.pileup_nodes, sig[:, i])
                         for i in range(sig.shape[1])], axis=1)


def reference_spreads(truth, seed: int) -> dict[str, Spread]:
    """Spread of every built-in PD's features on good LS of ``truth``, per pile-up.

    The reference LS are drawn (with their own random streams) from the LS in no failure
    or DCS block, so the spread and hence the labels depend only on the seed and the
    structure, never on which PD is being written.
    """
    from dc_mlops.data.simulator import shapes as S
    from dc_mlops.data.simulator.generate import (_STREAM_REFERENCE, _events, _expected_chunk,
                                                  _noise, _pd_key, _stream)
    from dc_mlops.data.simulator.structure import LOW_STATS
    clean = np.flatnonzero(truth.block < 0)
    rng = _stream(seed, _STREAM_REFERENCE)
    rows = np.sort(rng.choice(clean, size=min(N_REFERENCE, len(clean)), replace=False)) \
        if len(clean) else np.arange(min(N_REFERENCE, len(truth.table)))
    pu_all = truth.table["pileup"].to_numpy()
    out = {}
    for pd_name in VISIBILITY_PDS:
        events = _events(pd_name, truth, seed)
        keep = rows[events[rows] >= LOW_STATS]
        keep = keep if len(keep) >= 20 else rows
        pu = pu_all[keep]
        names = list(BUILTIN_SETS[pd_name])
        specs = [S.spec(h) for h in names]
        noise = _stream(seed, _STREAM_REFERENCE, _pd_key(pd_name))
        expected = _expected_chunk(truth, events, specs, 0, 0, False, keep)
        feats = {h: summarize(_noise(m, noise), sp.edges) for h, m, sp in zip(names, expected, specs)}
        out[pd_name] = _fit_spread(pu, feats, {h: sp.edges for h, sp in zip(names, specs)})
    return out


def _fit_spread(pu: np.ndarray, feats: dict[str, np.ndarray], edges: dict[str, np.ndarray]
                ) -> Spread:
    n = len(pu)
    k = N_PILEUP_BINS if n >= 50 * N_PILEUP_BINS else 1
    bounds = np.quantile(pu, np.linspace(0, 1, k + 1))
    which = np.clip(np.searchsorted(bounds, pu, side="right") - 1, 0, k - 1)
    nodes = np.array([np.median(pu[which == b]) for b in range(k)])
    x = (pu - pu.mean()) / max(pu.std(), 1e-9)
    design = np.stack([np.ones(n), x, x ** 2], axis=1) if n > 10 else np.ones((n, 1))
    project = np.linalg.pinv(design)  # one small pseudo-inverse serves every feature
    sigma = {}
    for h, f in feats.items():
        ok = np.isfinite(f).all(axis=1)
        coef = (project if ok.all() else np.linalg.pinv(design[ok])) @ f[ok]
        resid = f[ok] - design[ok] @ coef
        sig = np.full((k, f.shape[1]), np.nan)
        for b in range(k):
            r = resid[which[ok] == b]
            if len(r):
                sig[b] = _MAD_TO_SIGMA * np.median(np.abs(r - np.median(r, axis=0)), axis=0)
        # a floor of 1 % of a bin: below it no histogram shows a difference to the eye
        floor = 0.01 * float(np.min(np.diff(edges[h])))
        sigma[h] = np.maximum(np.nan_to_num(sig, nan=floor), floor)
    return Spread(nodes, sigma)


def failure_shifts(truth, rows: np.ndarray, pd_name: str):
    """The noise-free change of the 7-number summaries a failure makes, histogram by
    histogram: yields ``(positions, histogram, delta)`` with ``delta`` (len(positions), 7) =
    summary with the failure - summary without it, for the failure LS ``rows[positions]``
    and each histogram of ``pd_name`` their scenario touches (chunked like the simulator).

    ``rows`` index ``truth.table``; each must lie in a failure or DCS block. Low-statistics
    blocks change no shape and yield nothing."""
    from dc_mlops.data.simulator import shapes as S
    from dc_mlops.data.simulator.failures import affected_histograms
    from dc_mlops.data.simulator.generate import CHUNK, _expected_chunk
    rows = np.asarray(rows, np.int64)
    if not len(rows):
        return
    scen = truth.blocks["scenario"].to_numpy()[truth.block[rows]]
    ones = np.ones(len(truth.table))  # the summary does not depend on the event count
    for s in np.unique(scen):
        names = [] if s == "low_stats" else affected_histograms(str(s), pd_name)
        if not names:
            continue
        specs = [S.spec(h) for h in names]
        pos = np.flatnonzero(scen == s)
        for a in range(0, len(pos), CHUNK):
            part = pos[a:a + CHUNK]
            r = rows[part]
            e1 = _expected_chunk(truth, ones, specs, 0, 0, True, r)
            e0 = _expected_chunk(truth, ones, specs, 0, 0, False, r)
            for h, m1, m0, sp in zip(names, e1, e0, specs):
                yield part, h, summarize(m1, sp.edges) - summarize(m0, sp.edges)


def visibilities(truth, rows: np.ndarray, spreads: dict[str, Spread]) -> np.ndarray:
    """(len(rows), n_PDs) visibility of each failure LS in each PD (NaN: PD not touched).

    ``rows`` index ``truth.table``; each must lie in a failure or DCS block. Low-statistics
    blocks change no shape and get NaN everywhere.
    """
    rows = np.asarray(rows, np.int64)
    out = np.full((len(rows), len(VISIBILITY_PDS)), np.nan)
    pu = truth.table["pileup"].to_numpy()
    for j, pd_name in enumerate(VISIBILITY_PDS):
        for part, h, delta in failure_shifts(truth, rows, pd_name):
            v = np.nanmax(np.abs(delta) / spreads[pd_name].at(h, pu[rows[part]]), axis=1)
            out[part, j] = np.fmax(np.nan_to_num(out[part, j], nan=0.0), v)
    return out


def max_visibility(vis: np.ndarray) -> np.ndarray:
    """Visibility in the PD that shows the LS best (NaN where no PD is touched)."""
    with np.errstate(all="ignore"):
        return np.where(np.isnan(vis).all(axis=1), np.nan, np.nanmax(np.nan_to_num(vis, nan=-1), axis=1))


def visibility_shares(truth: pd.DataFrame, pd_name: str | None = None) -> dict[str, float]:
    """Shares among flagged failure LS of a truth table: subtle, obvious; and unflagged.

    ``pd_name=None``: the label rule (the best PD per LS). With a PD: among the flagged
    failure LS that PD shows (visibility >= 1 there), subtle/obvious by its own visibility.
    ``unflagged`` is the share of failure LS (flagged or not) that no PD shows.
    """
    fail = truth[truth["origin"].isin(["failure", "unflagged"])]
    flagged = fail[fail["origin"] == "failure"]
    cols = [f"visibility_{p}" for p in VISIBILITY_PDS]
    if pd_name is None:
        v = max_visibility(flagged[cols].to_numpy(float))
    else:
        v = flagged[f"visibility_{pd_name}"].to_numpy(float)
        v = v[v >= 1]
    v = v[np.isfinite(v)]
    n = max(len(v), 1)
    return {"n": int(len(v)), "subtle": float(np.sum((v >= 1) & (v <= SUBTLE_MAX)) / n),
            "obvious": float(np.sum(v > OBVIOUS_MIN) / n),
            "unflagged": float((fail["origin"] == "unflagged").mean()) if len(fail) else float("nan")}

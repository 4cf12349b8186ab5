"""Fills, runs, lumisections, instantaneous luminosity, pile-up and events per LS.

Why it is built this way: models see luminosity and pile-up through almost every
histogram (multiplicities, isolation sums, MET resolution), so the LS sequence must carry
the real time structure of LHC running: fills whose luminosity decays exponentially, runs
cut from fills, pile-up proportional to luminosity, and trigger-driven event counts that
step with prescale columns. Everything here depends on (seed, eras, n_ls) or on a given
certification JSON only, never on the PD, so all PDs of one seed share runs, LS and labels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.features import MIN_EVENTS
from dc_mlops.data.simulator.conditions import (ERAS, LS_PER_HOUR, LS_SECONDS, era_of_runs,
                                                pileup_of)
from dc_mlops.errors import DataError

BUNCH_SCHEMES = np.array([2556, 2544, 2460, 1866, 1214])
BUNCH_PROBS = np.array([0.45, 0.30, 0.12, 0.08, 0.05])
MIN_RUN_LS, MAX_RUN_LS = 20, 1500

# PD trigger model: events/LS = LS_SECONDS * rate. ZeroBias is a fixed-prescale random
# trigger (rate follows the number of bunches, not lumi); the physics PDs follow lumi and
# are divided by the prescale column, which steps up with lumi.
PD_RATE = {  # Hz per unit lumi (1e33) for physics PDs; Hz at full machine for ZeroBias
    "ZeroBias": 90.0, "JetHT": 24.0, "EGamma": 34.0, "SingleMuon": 28.0,
}
LOW_STATS = MIN_EVENTS  # the low-statistics cut of preprocess and certify


def _fill_lumi(rng: np.random.Generator, era: str) -> tuple[float, float, float, int]:
    """Peak lumi, lifetime (h), start offset (h) and bunch count of one fill."""
    peak = ERAS[era].peak_lumi * rng.uniform(0.78, 1.06)
    tau = rng.uniform(9.0, 16.0)
    t0 = rng.uniform(0.0, 0.6)
    nb = int(rng.choice(BUNCH_SCHEMES, p=BUNCH_PROBS))
    return peak * nb / 2556.0, tau, t0, nb


def synth_structure(eras: list[str], n_ls: int, rng: np.random.Generator) -> pd.DataFrame:
    """Synthetic LS table of ``n_ls`` LS spread over ``eras`` (shares as in 2018).

    Columns: run, ls, fill, era, lumi, pileup, n_bunches, t_fill (h), run_frac.
    """
    if n_ls < 10 * len(eras):
        raise DataError(f"n_ls={n_ls} is too small: need at least 10 LS per era")
    shares = np.array([ERAS[e].ls_share for e in eras])
    budget = np.floor(n_ls * shares / shares.sum()).astype(int)
    budget[-1] += n_ls - budget.sum()
    parts = []
    for era, n_era in zip(eras, budget):
        parts.append(_synth_era(era, int(n_era), rng))
    return pd.concat(parts, ignore_index=True)


def _synth_era(era: str, n_era: int, rng: np.random.Generator) -> pd.DataFrame:
    run_len: list[int] = []
    run_fill: list[int] = []
    run_start_h: list[float] = []
    fills: list[tuple[float, float, float, int]] = []
    left = n_era
    while left > 0:
        fill_len = min(left, int(rng.uniform(5.0, 16.0) * LS_PER_HOUR))
        if left - fill_len < MIN_RUN_LS:
            fill_len = left
        peak, tau, t0, nb = _fill_lumi(rng, era)
        fills.append((peak, tau, t0, nb))
        t = t0
        remaining = fill_len
        while remaining > 0:
            length = int(np.clip(rng.lognormal(np.log(380), 0.8), MIN_RUN_LS, MAX_RUN_LS))
            if remaining - length < MIN_RUN_LS:
                length = remaining
            if length > MAX_RUN_LS:  # a long remainder: split it in two
                length = remaining // 2
            run_len.append(length)
            run_fill.append(len(fills) - 1)
            run_start_h.append(t)
            t += (length + rng.integers(2, 40)) / LS_PER_HOUR  # a short gap between runs
            remaining -= length
        left -= fill_len
    n_runs = len(run_len)
    e = ERAS[era]
    span = e.last_run - e.first_run + 1
    if n_runs > span:
        raise DataError(f"n_ls too large for era {era}: {n_runs} runs do not fit in its "
                        f"{span} run numbers")
    runs = np.sort(rng.choice(span, size=n_runs, replace=False)) + e.first_run
    fill_numbers = e.first_fill + np.cumsum(rng.integers(1, 5, size=len(fills))) - 1
    run_len_a = np.asarray(run_len)
    rid = np.repeat(np.arange(n_runs), run_len_a)
    starts = np.r_[0, np.cumsum(run_len_a)[:-1]]
    ls = np.arange(len(rid)) - starts[rid] + 1
    fill_idx = np.asarray(run_fill)[rid]
    peak, tau, _, nb = (np.array(v) for v in zip(*fills))
    t_fill = np.asarray(run_start_h)[rid] + (ls - 0.5) / LS_PER_HOUR
    return _finish(runs[rid], ls, fill_numbers[fill_idx], np.full(len(rid), era),
                   peak[fill_idx], tau[fill_idx], nb[fill_idx], t_fill,
                   (ls - 1) / np.maximum(run_len_a[rid] - 1, 1), rng)


def _finish(runs, ls, fill, era, peak, tau, nb, t_fill, run_frac, rng) -> pd.DataFrame:
    # exponential decay with a little LS-to-LS jitter (luminosity levelling, emittance)
    lumi = peak * np.exp(-t_fill / tau) * (1 + 0.01 * rng.standard_normal(len(runs)))
    return pd.DataFrame({
        "run": np.asarray(runs, np.int64), "ls": np.asarray(ls, np.int64),
        "fill": np.asarray(fill, np.int64), "era": np.asarray(era, dtype=object),
        "lumi": lumi, "pileup": pileup_of(lumi, nb), "n_bunches": np.asarray(nb, np.int64),
        "t_fill": t_fill, "run_frac": run_frac,
    })


def structure_from_json(structure: CertJSON, eras: list[str], rng: np.random.Generator
                        ) -> pd.DataFrame:
    """The exact run/LS set of a certification JSON, restricted to ``eras``.

    Fills are synthesised: consecutive runs share a fill (a new fill starts with
    probability 0.4, or after a long gap in run numbers); time inside a fill accumulates
    over the runs' LS, so luminosity decays across the runs of one fill.
    """
    runs, ls = structure.lumisections()
    era = era_of_runs(runs)
    keep = np.isin(era, eras)
    runs, ls, era = runs[keep], ls[keep], era[keep]
    if len(runs) == 0:
        raise DataError(f"the structure JSON has no run in era(s) {', '.join(eras)}")
    run_ids, first, counts = np.unique(runs, return_index=True, return_counts=True)
    run_max_ls = np.maximum.reduceat(ls, first)
    n_runs = len(run_ids)
    gap = np.r_[10_000, np.diff(run_ids)]
    new_fill = (rng.random(n_runs) < 0.4) | (gap > 40)
    new_fill[0] = True
    fill_of_run = np.cumsum(new_fill) - 1
    n_fills = int(fill_of_run[-1]) + 1
    era_first = era[first]
    fills = [_fill_lumi(rng, str(era_first[np.argmax(fill_of_run == f)]))
             for f in range(n_fills)]
    peak, tau, t0, nb = (np.array(v) for v in zip(*fills))
    # hours from fill start to each run's start: previous runs of the fill + short gaps
    run_hours = run_max_ls / LS_PER_HOUR + rng.integers(2, 40, n_runs) / LS_PER_HOUR
    cum = np.cumsum(run_hours)
    fill_start_cum = np.r_[0.0, cum][np.flatnonzero(new_fill)]
    run_start = t0[fill_of_run] + np.r_[0.0, cum[:-1]] - fill_start_cum[fill_of_run]
    first_fill = ERAS[str(era_first[0])].first_fill
    fill_numbers = first_fill + np.cumsum(rng.integers(1, 4, n_fills)) - 1
    rid = np.repeat(np.arange(n_runs), counts)
    f = fill_of_run[rid]
    t_fill = run_start[rid] + (ls - 0.5) / LS_PER_HOUR
    return _finish(runs, ls, fill_numbers[f], era, peak[f], tau[f], nb[f], t_fill,
                   (ls - 1) / np.maximum(run_max_ls[rid] - 1, 1), rng)


def events_per_ls(pd_name: str, lumi: np.ndarray, n_bunches: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Events of one PD in each LS from its trigger rate, prescale column and noise.

    Physics PDs: rate = sigma_PD * L / (1 + 0.25 * column), the prescale column stepping
    up by one every 3 units of lumi above 6 (so the rate does not simply follow lumi).
    ZeroBias: a fixed rate per filled bunch. A few-per-cent rate jitter (dead time,
    HLT farm) and Poisson noise on top.
    """
    lumi = np.asarray(lumi, float)
    if pd_name == "ZeroBias":
        rate = PD_RATE["ZeroBias"] * np.asarray(n_bunches) / 2556.0
    else:
        sigma = PD_RATE.get(pd_name, 25.0)
        column = np.clip(np.floor((lumi - 6.0) / 3.0), 0, 5)
        rate = sigma * lumi / (1 + 0.25 * column)
    mean = LS_SECONDS * rate * (1 + 0.04 * rng.standard_normal(len(lumi)))
    return rng.poisson(np.maximum(mean, 1.0)).astype(np.int64)

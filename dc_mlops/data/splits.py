"""Splits (SPEC §4.1): test runs never share a run with what the model learnt from.

Three ways to pick the test runs and the reference runs the model learns from:

* ``runs``: the DC expert names them (``train_runs``, ``test_runs``: lists and ranges);
  other runs are left out. This is how reference runs are chosen in practice.
* ``chronological`` (default): the latest runs are the test.
* ``random``: runs in a seeded random order, then as chronological (a same-era comparison).

The parts:

* ``train``, ``val``: good LS of the reference runs; the detector learns from train and
  early-stops on val;
* ``calib``: good LS of the reference runs never seen in fitting: the conformal calibration
  set of the BAD cut-off and the reference for drift checks;
* ``test``: every LS (good and bad) of the test runs;
* ``known_bad``: bad LS of the reference runs, the failures an expert already knows, used for
  the GOOD cut-off and tuning.

Train, val and calib are whole reference runs when there are at least three runs with good
LS, shared out by their *good*-LS counts (an all-bad run must not land in val and leave it
empty). With fewer (one or two reference runs, the usual case for a DC expert), they are
contiguous blocks of LS cut from each run and dealt out in turn, so each part spans the
run's conditions (the luminosity decays along a run); neighbouring LS then sit in different
parts, which makes val/calib slightly optimistic, and the log says so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dc_mlops.errors import DataError

SPLITS = ("train", "val", "calib", "test", "known_bad")
MODES = ("runs", "chronological", "random")
MIN_RUNS_WHOLE = 3  # reference runs with good LS needed to split train/val/calib by run
log = logging.getLogger("dc_mlops")


@dataclass(frozen=True)
class SplitFractions:
    """Shares of LS for train/val/calib; test (chronological/random) takes the rest."""

    train: float = 0.5
    val: float = 0.15
    calib: float = 0.15

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.calib) <= 0 or self.train + self.val + self.calib >= 1:
            raise DataError("split fractions must be positive and leave a share for test")

    @property
    def reference(self) -> np.ndarray:
        """train : val : calib within the reference runs, summing to 1."""
        f = np.array([self.train, self.val, self.calib])
        return f / f.sum()


def split_table(frame: pd.DataFrame, fractions: SplitFractions = SplitFractions(),
                mode: str = "chronological", seed: int = 0,
                train_runs: list[tuple[int, int]] | None = None,
                test_runs: list[tuple[int, int]] | None = None) -> dict[str, pd.DataFrame]:
    """The five parts of ``frame`` (an LS table with runId, lumiId, label)."""
    runs = frame["runId"].to_numpy()
    bad = frame["label"].to_numpy() == 1
    uniq = np.unique(runs)
    if mode == "runs":
        if not train_runs or not test_runs:
            raise DataError("split_mode=runs needs train_runs and test_runs")
        ref = _select(uniq, train_runs, "train_runs")
        test = _select(uniq, test_runs, "test_runs")
        both = np.intersect1d(ref, test)
        if len(both):
            raise DataError(f"run {both[0]} is in both train_runs and test_runs")
    elif mode in ("chronological", "random"):
        order = np.random.default_rng(seed).permutation(len(uniq)) if mode == "random" \
            else np.arange(len(uniq))
        ref, test = _latest_as_test(uniq[order], runs, fractions)
    else:
        raise DataError(f"unknown split mode {mode!r}: use one of {', '.join(MODES)}")
    in_ref = np.isin(runs, ref)
    good_ref = in_ref & ~bad
    for r in ref if mode == "runs" else ():  # a named reference run must be usable
        if not (good_ref & (runs == r)).any():
            n = int((runs == r).sum())
            raise DataError(f"run {r} has no good LS (all {n} LS are bad or low-statistics): "
                            "it cannot be a training run; drop it from train_runs")
    if not good_ref.any():
        raise DataError(f"no good LS to train on: {_describe(frame, ref, test)}; name reference "
                        "runs with split_mode=runs, train_runs and test_runs")
    part = np.full(len(frame), "", dtype=object)
    part[good_ref] = _train_val_calib(frame[good_ref], ref, fractions)
    out = {name: frame[part == name] for name in ("train", "val", "calib")}
    out["test"] = frame[np.isin(runs, test)]
    out["known_bad"] = frame[in_ref & bad]
    for name in ("train", "val", "calib", "test"):
        if len(out[name]) == 0:
            raise DataError(f"the {name} split is empty: {_describe(frame, ref, test)}")
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def _select(uniq: np.ndarray, ranges: list[tuple[int, int]], name: str) -> np.ndarray:
    picked = []
    for first, last in ranges:
        hit = uniq[(uniq >= first) & (uniq <= last)]
        if not len(hit):
            what = f"run {first} is" if first == last else f"no run of {first}-{last} is"
            raise DataError(f"{name}: {what} {'not ' if first == last else ''}in the data (its runs span "
                            f"{uniq.min()}-{uniq.max()}, {len(uniq)} runs)")
        picked.append(hit)
    return np.unique(np.concatenate(picked))


def _latest_as_test(ordered: np.ndarray, runs: np.ndarray, fractions: SplitFractions
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The last runs holding the test share of all LS (at least one run) are the test."""
    if len(ordered) < 2:
        raise DataError(f"the data has {len(ordered)} run: a run-wise split needs reference runs "
                        "and test runs (or split_mode=runs with LS blocks of one reference run)")
    counts = pd.Series(runs).value_counts().reindex(ordered).to_numpy()
    share = 1 - fractions.train - fractions.val - fractions.calib
    from_end = np.cumsum(counts[::-1]) / counts.sum()
    n_test = int(np.clip(np.searchsorted(from_end, share) + 1, 1, len(ordered) - 1))
    return ordered[:-n_test], ordered[-n_test:]


def _train_val_calib(good: pd.DataFrame, ref: np.ndarray, fractions: SplitFractions
                     ) -> np.ndarray:
    """train/val/calib for each good LS of the reference runs (in their order ``ref``)."""
    runs = good["runId"].to_numpy()
    per_run = pd.Series(runs).value_counts().reindex(ref).fillna(0).to_numpy()
    names = np.array(["train", "val", "calib"])
    if (per_run > 0).sum() >= MIN_RUNS_WHOLE:
        # whole runs, by cumulative good-LS count; every part gets at least one run
        cum = np.cumsum(per_run) / per_run.sum()
        bounds = np.cumsum(fractions.reference)[:-1]
        part = np.searchsorted(bounds, cum - 0.5 * per_run / per_run.sum())
        part = _every_part_once(part, per_run > 0)
        return names[part][pd.Index(ref).get_indexer(runs)]
    # too few runs: interleaved blocks of contiguous LS inside each run
    n_good = len(good)
    size = int(np.clip(n_good // 30, 5, 50))
    order = np.lexsort((good["lumiId"].to_numpy(), runs))
    block = np.empty(n_good, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(runs[order]) != 0) + 1]
    offset = 0
    for a, b in zip(starts, np.r_[starts[1:], n_good]):
        k = np.arange(b - a) // size
        block[order[a:b]] = offset + k
        offset += int(k.max()) + 1
    quota = fractions.reference
    given = np.zeros(3)
    part_of_block = np.empty(offset, np.int64)
    for i in range(offset):  # deal the blocks out, always to the part furthest behind
        p = int(np.argmax(quota * (i + 1) - given))
        part_of_block[i] = p
        given[p] += 1
    log.info("split: %d reference run(s) with good LS: train/val/calib are interleaved blocks "
             "of %d LS (%d blocks); val and calib neighbour training LS, so their losses are "
             "slightly optimistic", int((per_run > 0).sum()), size, offset)
    return names[part_of_block[block]]


def _every_part_once(part: np.ndarray, has_good: np.ndarray) -> np.ndarray:
    part = part.copy()
    for p in range(3):
        if not ((part == p) & has_good).any():
            sizes = np.bincount(part[has_good], minlength=3)
            donor = int(np.argmax(sizes))
            idx = np.flatnonzero((part == donor) & has_good)
            part[idx[0] if p < donor else idx[-1]] = p
            part = np.sort(part)  # parts stay contiguous in run order
    return part


def _describe(frame: pd.DataFrame, ref: np.ndarray, test: np.ndarray) -> str:
    good = frame[frame["label"] == 0].groupby("runId").size()
    ref_txt = ", ".join(f"{r} ({int(good.get(r, 0))} good LS)" for r in ref[:6])
    return (f"reference runs {ref_txt}{' ...' if len(ref) > 6 else ''}; "
            f"{len(test)} test run(s)")

"""Data throughput: simulate and summarise an era, and the summary against a per-LS loop.

Measures, for 100 000 LS of JetHT (26 histograms): wall time and peak memory of the
simulator, of the vectorised 7-number summary, and the summary's throughput against a
straightforward per-LS numpy loop on the same histograms (the loop runs on a subsample and
is scaled, since it would take minutes). Targets (issue 2): simulate + summarise <= 30 s and
the summary >= 50x the loop, on 2 cores.

    python benchmarks/data_throughput.py [--n-ls 100000] [--pd JetHT]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

from dc_mlops.data.features import SUMMARY_QUANTILES  # noqa: E402
from dc_mlops.data.simulator import simulate  # noqa: E402
from dc_mlops.data.summary import summarize  # noqa: E402


def loop_summary(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The straightforward version: one LS at a time, numpy inside, same definitions."""
    widths = np.diff(edges)
    centers = edges[:-1] + 0.5 * widths
    q = np.asarray(SUMMARY_QUANTILES)
    out = np.empty((len(counts), 7))
    for i, row in enumerate(counts.astype(np.float64)):
        cum = np.cumsum(row)
        total = cum[-1]
        targets = q * total
        idx = np.minimum(np.searchsorted(cum, targets, side="left"), len(row) - 1)
        before = np.where(idx > 0, cum[idx - 1], 0.0)
        frac = np.clip((targets - before) / np.maximum(row[idx], 1e-300), 0.0, 1.0)
        out[i, :5] = edges[idx] + frac * widths[idx]
        mean = row @ centers / total
        out[i, 5] = mean
        out[i, 6] = np.sqrt(max(row @ centers**2 / total - mean**2, 0.0))
    return out


def measure(fn):
    """Wall time of a plain call, then peak traced memory of a second call (tracemalloc
    slows numpy down, so the two are never taken together)."""
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ls", type=int, default=100_000)
    ap.add_argument("--pd", default="JetHT")
    ap.add_argument("--loop-ls", type=int, default=5_000, help="LS the per-LS loop runs on")
    args = ap.parse_args()

    sim, t_sim, m_sim = measure(lambda: simulate(args.pd, n_ls=args.n_ls, seed=1))
    h = sim.histograms
    _, t_sum, m_sum = measure(lambda: {k: summarize(v, h.edges[k]) for k, v in h.counts.items()})
    n_loop = min(args.loop_ls, h.n_ls)
    t0 = time.perf_counter()
    loop = {k: loop_summary(v[:n_loop], h.edges[k]) for k, v in h.counts.items()}
    t_loop = (time.perf_counter() - t0) * h.n_ls / n_loop
    vec = {k: summarize(v[:n_loop], h.edges[k]) for k, v in h.counts.items()}
    agree = max(float(np.nanmax(np.abs(vec[k] - loop[k]))) for k in vec)
    n_hist = len(h.counts)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    rows = [
        ["simulate", f"{h.n_ls:,} LS x {n_hist} hists", f"{t_sim:.1f}", f"{m_sim:,.0f}",
         f"{h.n_ls / t_sim:,.0f}"],
        ["summarise (vectorised)", f"{h.n_ls:,} LS x {n_hist} hists", f"{t_sum:.2f}",
         f"{m_sum:,.0f}", f"{h.n_ls / t_sum:,.0f}"],
        ["summarise (per-LS loop)", f"{n_loop:,} LS, scaled to {h.n_ls:,}", f"{t_loop:.1f}", "-",
         f"{h.n_ls / t_loop:,.0f}"],
        ["simulate + summarise", "", f"{t_sim + t_sum:.1f}", f"peak RSS {rss:,.0f}", ""],
    ]
    body = table(["step", "size", "seconds", "peak MiB (tracemalloc)", "LS/s"], rows)
    body += (f"\n\nVectorised summary vs per-LS loop: **{t_loop / t_sum:.0f}x** faster "
             f"(max |difference| {agree:.1e} in units of the axes). Targets: simulate + summarise <= 30 s, >= 50x.")
    write("data_throughput", f"Data throughput: {args.pd}, {h.n_ls:,} LS", body,
          f"python benchmarks/data_throughput.py --n-ls {args.n_ls} --pd {args.pd}")


if __name__ == "__main__":
    main()

"""Scoring speed (LS/s) at era scale: 200 000 JetHT-sized LS (d = 182), 2 cores.

pca and vanilla_ae (default backend, TensorFlow, eager per batch) fitted on a simulated
JetHT split (``tests/detectors/simulated.py``), then one ``score`` call on the test LS tiled
to ``--rows`` rows, with the conditions correction on (its per-LS interpolation included)
and off. Best of ``--repeats`` calls. No GPU on this machine: CPU figures only.

    python benchmarks/scoring_speed.py
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from _report import command_line, table, write  # noqa: E402

from dc_mlops.detectors import registry  # noqa: E402
from tests.detectors.simulated import same_era_split  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="pca,vanilla_ae")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="scoring_speed")
    args = ap.parse_args(argv)
    logging.getLogger("dc_mlops").setLevel(logging.ERROR)
    command = command_line("scoring_speed.py", argv)
    sp = same_era_split("JetHT", n_ls=40000, seed=1, max_train=3000)
    reps = int(np.ceil(args.rows / len(sp.test)))
    X = np.tile(sp.X("test"), (reps, 1))[:args.rows].astype(np.float32)
    c = np.tile(sp.c("test"), reps)[:args.rows]
    rows = []
    for name in args.models.split(","):
        for cond in ("pileup", "none"):
            det = registry.build(name)
            kw = {} if cond == "none" else {"conditions": sp.c("train"),
                                            "conditions_val": sp.c("val")}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det.fit(sp.X("train"), sp.X("val"), **kw)
            best = np.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                det.score(X, None if cond == "none" else c)
                best = min(best, time.perf_counter() - t0)
            rows.append([name, cond, f"{X.shape[0]:,} × {X.shape[1]}", f"{best:.2f}",
                         f"{X.shape[0] / best:,.0f}"])
            print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    body = (f"JetHT feature set 2 (d = {X.shape[1]}), float32 input, one `score` call, best of "
            f"{args.repeats}; load average {load:.1f} on the 2 cores when measured (shared "
            "machine). Target (issue 11): >= 200 000 LS/s for JetHT. No GPU here.\n\n"
            + table(["detector", "conditions", "rows × features", "seconds", "LS/s"], rows))
    write(args.name, "Scoring speed at era scale", body, command.strip())


if __name__ == "__main__":
    main()

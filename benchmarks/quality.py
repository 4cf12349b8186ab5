"""Detection quality of every registered detector against the null model (issue 11).

The same measurement ``tests/detectors/test_quality.py`` asserts, printed as a table: a
same-era simulated ZeroBias split (``tests/detectors/simulated.py``: one era, 40 000 LS,
simulator seed 1, runs shuffled, at most 3 000 good training LS), judged on ZeroBias's own
failures of moderate visibility (2-8 in the truth table); every detector at its defaults with
the conditions fit on pile-up, against *distance to the training mean on the same corrected
inputs* (what a collapsed autoencoder computes). Test LS outside the training pile-up range
are left out (the product sends them to review).

    python benchmarks/quality.py
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from _report import table, write  # noqa: E402

from dc_mlops import console  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from tests.detectors.simulated import same_era_split  # noqa: E402


def main() -> None:
    console.configure()  # library start-up noise off, as in the product's commands
    logging.getLogger("dc_mlops").setLevel(logging.ERROR)
    split = same_era_split("ZeroBias", n_ls=40000, seed=1, max_train=3000)
    c_tr, c_te = split.c("train"), split.c("test")
    inside = (c_te >= c_tr.min()) & (c_te <= c_tr.max())
    y = split.y[inside]
    rows, null = [], None
    for name in registry.names():
        t0 = time.time()
        det = registry.build(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det.fit(split.X("train"), split.X("val"), conditions=c_tr,
                    conditions_val=split.c("val"))
        if null is None:
            corr = det.correction_
            centre = corr.transform(split.X("train"), c_tr).mean(axis=0)
            d = np.linalg.norm(corr.transform(split.X("test"), c_te) - centre, axis=1)
            null = roc_auc_score(y, d[inside])
            rows.append(["distance to the training mean (null)", "-",
                         f"{null:.4f}", "-", "-"])
        auc = roc_auc_score(y, det.score(split.X("test"), c_te)[inside])
        rows.append([name, registry.family(name), f"{auc:.4f}", f"{auc - null:+.4f}",
                     f"{time.time() - t0:.0f}"])
        print(" | ".join(rows[-1]), flush=True)
    body = (f"ZeroBias, one era (2018B), 40 000 LS, simulator seed 1; {len(split.train)} good "
            f"training LS, {int(inside.sum())} test LS inside the training pile-up range, "
            f"{int(y.sum())} judged failure LS in "
            f"{split.test.loc[split.y == 1, 'runId'].nunique()} runs. Detectors at their "
            "defaults, conditions fit on pile-up, seed 0.\n\n"
            + table(["detector", "family", "ROC AUC", "vs null", "fit+score s"], rows))
    write("quality", "Detection quality against the null model", body,
          "python benchmarks/quality.py")


if __name__ == "__main__":
    main()

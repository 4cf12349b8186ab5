"""Promotion margin (issue 12): how steady is one combination's lead over another, step by step?

``promote --pd all`` picks the combination of Production candidates whose combined walk
decides the most (SPEC §5), however small its lead. This reads a folder where
``dc-mlops main`` ran (its ``mlflow.db`` and ``mlruns``: the evaluate runs' per-LS
``decisions.parquet`` and each step's known failures, ``known_failures.parquet``), recombines every pair of PD picks through the product's own
:func:`dc_mlops.evaluation.combined.combined_walk`, and prints, per walk step, the share of
LS decided by the chosen combination and by mahalanobis for every PD, with the difference.

    dc-mlops main                                   # in some folder, e.g. a clean clone
    python benchmarks/combination_steps.py --store <that folder> \\
        --pick ZeroBias=pca,JetHT=mahalanobis,EGamma=mahalanobis,SingleMuon=mahalanobis
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import command_line, table, write  # noqa: E402

from dc_mlops.evaluation.combined import combined_walk  # noqa: E402
from dc_mlops.evaluation.greyzone import GREY  # noqa: E402
from dc_mlops.settings import PDS  # noqa: E402


def walks(store: Path) -> dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame | None]]:
    """(PD, model) -> the per-LS decisions of its evaluate run in ``store`` and the known
    failures of each step (None for runs logged before they were kept)."""
    con = sqlite3.connect(store / "mlflow.db")
    runs = pd.read_sql("select r.run_uuid, r.experiment_id, e.name, p.value as model from runs r"
                       " join params p on p.run_uuid = r.run_uuid join experiments e on "
                       "e.experiment_id = r.experiment_id where p.key = 'model'", con)
    out = {}
    for r in runs.itertuples():
        art = store / "mlruns" / str(r.experiment_id) / r.run_uuid / "artifacts"
        f, k = art / "decisions.parquet", art / "known_failures.parquet"
        pd_name = next((p for p in PDS if r.name.endswith(p)), None)
        if f.is_file() and pd_name:
            out[(pd_name, r.model)] = (pd.read_parquet(f),
                                       pd.read_parquet(k) if k.is_file() else None)
    return out


def per_step(w: dict, pick: dict[str, str]) -> tuple[pd.Series, float]:
    """Share of LS decided per step of the combined walk, and over the whole walk."""
    c = combined_walk({p: w[(p, pick[p])][0] for p in PDS}, 0.01, 0.01,
                      failures={p: w[(p, pick[p])][1] for p in PDS})
    return c.groupby("step")["decision"].apply(lambda d: float((d != GREY).mean())), \
        float((c["decision"] != GREY).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="folder where dc-mlops main ran")
    ap.add_argument("--pick", required=True, help="PD=model,... the chosen combination")
    ap.add_argument("--out", default="combination_steps")
    a = ap.parse_args()
    pick = dict(kv.split("=") for kv in a.pick.split(","))
    w = walks(Path(a.store))
    chosen, chosen_all = per_step(w, pick)
    base, base_all = per_step(w, {p: "mahalanobis" for p in PDS})
    diff = chosen - base
    rows = [[s, f"{chosen[s]:.3f}", f"{base[s]:.3f}", f"{100 * diff[s]:+.1f}"] for s in diff.index]
    rows.append(["all", f"{chosen_all:.3f}", f"{base_all:.3f}",
                 f"{100 * (chosen_all - base_all):+.1f}"])
    moving = diff[diff.abs() > 0]
    sem = moving.std(ddof=1) / np.sqrt(len(moving)) if len(moving) > 1 else np.nan
    body = (f"Store: `{a.store}`; chosen: {a.pick}. Share of LS decided per walk step "
            "(combined_walk, targets 1 %), against mahalanobis for every PD.\n\n"
            + table(["step", "chosen", "mahalanobis for every PD", "difference (points)"], rows)
            + f"\n\nSteps where the two differ: {len(moving)}; mean difference "
              f"{100 * moving.mean():+.1f} points, standard error {100 * sem:.1f}.\n")
    print(body)
    write(a.out, "Promotion margin: a combination's lead step by step", body,
          command_line("combination_steps.py", None))


if __name__ == "__main__":
    main()

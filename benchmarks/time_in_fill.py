"""Time in fill as a condition (issue 12): does fitting each feature against the hours since
the fill's stable beams, beside pile-up and luminosity, keep good LS of old fills out of BAD?

Why the question: the beam spot walks along z and the luminous region lengthens during a
fill, and ECAL transparency drops; none of these is a function of pile-up or luminosity
across fills (a long fill reaches a given luminosity hours after a short one). In the walk
over ``main``'s history the last run of a 16-hour fill (run 322747) had its vertex-z
quantiles 1.1-1.7 spreads off per LS after the pile-up/luminosity fit, and with the run
context 20-25 % of its good LS were flagged BAD in every PD.

On two histories (as ``benchmarks/score_modes.py``: ``main``'s, walked with ``main``'s
sizes, and the simulated 2018 with the real run/LS structure, walked as
``benchmarks/certification.py``), each PD is walked forward with the product's own
:func:`dc_mlops.evaluation.walkforward.run_plan` twice per detector: conditions from
pile-up and luminosity only (the LS table without its ``t_fill`` column), and with the time
in fill (the table as the era folder gives it). Per PD: ROC AUC on its own failures,
automation, good->BAD, bad->GOOD, and the worst run's good->BAD (runs with at least 100 good
LS). All PDs combined (one detector for every PD, as ``certify pd=all`` decides): automation,
the rates on every flagged failure, contamination and the hindsight limit.

    python benchmarks/time_in_fill.py                      # both histories, ~25 min here
    python benchmarks/time_in_fill.py --histories main     # ~5 min
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import certification  # noqa: E402
from _report import command_line, table, write  # noqa: E402
from score_modes import history_walk  # noqa: E402

from dc_mlops import console  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.evaluation.combined import combined_walk, hindsight_automation  # noqa: E402
from dc_mlops.evaluation.greyzone import BAD, decision_metrics  # noqa: E402
from dc_mlops.evaluation.protocols import rolling_steps  # noqa: E402
from dc_mlops.evaluation.walkforward import run_plan  # noqa: E402
from dc_mlops.settings import PDS, EvaluateSettings  # noqa: E402

#: label -> (detector, parameters)
DETECTORS = {"mahalanobis": ("mahalanobis", {}),
             "mahalanobis histogram": ("mahalanobis", {"score_mode": "histogram"}),
             "pca": ("pca", {})}
#: label -> whether the LS table keeps its t_fill column
CONDITIONS = {"pile-up, lumi": False, "pile-up, lumi, time in fill": True}
MIN_RUN_GOOD = 100


def worst_run(decisions: pd.DataFrame) -> str:
    """The largest good->BAD of one run (runs with at least MIN_RUN_GOOD good LS), and which."""
    good = decisions[decisions["label"].to_numpy() == 0]
    per = good.assign(bad=good["decision"].to_numpy() == BAD).groupby("runId")["bad"].agg(
        ["mean", "size"])
    per = per[per["size"] >= MIN_RUN_GOOD]
    if per.empty:
        return ""
    run = per["mean"].idxmax()
    return f"{per.loc[run, 'mean']:.3f} (run {run})"


def walks(era: Path, s: EvaluateSettings, sizes, detectors: list[str]) -> dict:
    """(pd, conditions label, detector label) -> WalkForward."""
    out = {}
    for pd_name in PDS:
        frame, names = certification.ls_frame(era, pd_name)
        if "t_fill" not in frame.columns:
            raise SystemExit(f"error: {era} has no t_fill in its conditions: delete the cached "
                             "folder so that it is simulated again")
        per = frame.groupby("runId")["label"].apply(lambda x: int((x == 0).sum()))
        w = sizes(len(per))
        plan = rolling_steps(per.index.to_numpy(), per.to_numpy(), w["window_runs"],
                             w["calib_runs"], w["step_runs"])
        for cond, keep in CONDITIONS.items():
            part = frame if keep else frame.drop(columns=["t_fill"])
            for label in detectors:
                model, params = DETECTORS[label]
                t0 = time.time()
                wf = run_plan(part, list(names), plan,
                              lambda: registry.build(model, **params),  # noqa: B023
                              s.conditions, s.max_good_as_bad, s.max_bad_as_good,
                              folds=w["calib_folds"], context_ls=s.context_ls)
                out[(pd_name, cond, label)] = wf
                m = wf.metrics()
                print(f"{era.name} {pd_name} {label}, {cond}: {time.time() - t0:.0f} s, "
                      f"good->BAD {m['test_good_as_bad_rate']:.4f}", flush=True)
    return out


def rows(history: str, res: dict, detectors: list[str], s: EvaluateSettings) -> list[list]:
    out = []
    for label in detectors:
        for cond in CONDITIONS:
            for pd_name in PDS:
                wf = res[(pd_name, cond, label)]
                m = wf.metrics()
                out.append([history, pd_name, label, cond, f"{m['test_roc_auc']:.4f}",
                             f"{m['test_automation_rate']:.3f}",
                             f"{m['test_good_as_bad_rate']:.4f}",
                             f"{m['test_bad_as_good_rate']:.4f}", "",
                             worst_run(wf.decisions), ""])
            d = combined_walk({p: res[(p, cond, label)].decisions for p in PDS},
                              s.max_bad_as_good, s.max_good_as_bad,
                              failures={p: res[(p, cond, label)].known_failures for p in PDS})
            m = decision_metrics(d["decision"], d["label"], d["failure"], "test")
            limit, _ = hindsight_automation(d, s.max_bad_as_good)
            out.append([history, "**all PDs combined**", label, cond, "",
                        f"**{m['test_automation_rate']:.3f}**",
                        f"{m['test_good_as_bad_rate']:.4f}",
                        f"{m['test_bad_as_good_rate']:.4f}",
                        f"{m['test_contamination']:.4f}", "", f"{limit:.3f}"])
    return out


def main(argv: list[str] | None = None) -> None:
    console.configure()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", default="main,2018")
    ap.add_argument("--detectors", default=",".join(DETECTORS),
                    help="comma-separated, of: " + ", ".join(DETECTORS))
    a = ap.parse_args(argv)
    detectors = [d.strip() for d in a.detectors.split(",") if d.strip()]
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown:
        raise SystemExit(f"error: unknown detector {unknown[0]!r}: one of {', '.join(DETECTORS)}")
    t0 = time.time()
    table_rows = []
    for history in a.histories.split(","):
        era, s, sizes = history_walk(history)
        res = walks(era, s, sizes, detectors)
        table_rows += rows(history, res, detectors, s)
    headers = ["history", "PD", "detector", "conditions", "ROC AUC", "automation", "good→BAD",
               "bad→GOOD", "contamination", "worst run's good→BAD", "hindsight limit"]
    body = ("Each PD walked forward with conditions fitted on pile-up and luminosity, or on "
            "pile-up, luminosity and the time in fill (each feature against the column that "
            "explains it best); detectors at their defaults, run context at its default; "
            "targets good→BAD ≤ 0.01 and bad→GOOD ≤ 0.01. `main`: the history `main` "
            "simulates, walked with `main`'s sizes; `2018`: the simulated 2018 with the real "
            "run/LS structure, walked as `benchmarks/certification.py`. ROC AUC on each PD's "
            "own failures; worst run: the largest share of one run's good LS flagged BAD "
            f"(runs with ≥ {MIN_RUN_GOOD} good LS); combined: one detector for every PD, "
            "rates on every flagged failure; hindsight limit: the share one GOOD cut-off set "
            "on the walk's own failures (no bound) would decide. "
            f"Total {(time.time() - t0) / 60:.1f} min.\n\n" + table(headers, table_rows))
    write("time_in_fill", "Time in fill as a condition, in the walk-forward protocol", body,
          command_line("time_in_fill.py", argv))


if __name__ == "__main__":
    main()

"""Calibration benchmark (issue 12): does the BAD cut-off hold its good->BAD target in the
walk-forward protocol, and what does each way of calibrating cost in automation?

The history ``main`` simulates (the four PDs of 2018D on the same runs, 40 000 LS, seed 0)
is walked forward as ``main`` walks it (``dc_mlops.steps.main.main_walk`` sizes,
``evaluate``'s targets, conditions fit and run context at their defaults), with the product's
own :func:`dc_mlops.evaluation.walkforward.run_plan`, once per way of calibrating ``t_bad``:

* ``newest``: the newest ``calib_runs`` of the window, held out from training (``calib_folds=0``);
* ``crossfit``: out-of-fold scores of every window run, 4 run folds (``calib_folds=4``, the
  default of ``evaluate``), the certifier fitted on the whole window.

Per way, the PDs' walks of the first detector are also combined per LS as ``certify
pd=all`` decides (:func:`dc_mlops.evaluation.combined.combined_walk`): the Golden JSON's
rates on every flagged failure.

Per PD and detector: measured good->BAD, bad->GOOD, contamination, automation and correct
automation on every LS the walk certified, and ROC AUC on the PD's judged failures.

    python benchmarks/calibration.py                 # mahalanobis and pca, about 15 min here
    python benchmarks/calibration.py --models pca --pds ZeroBias
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

from dc_mlops.data.features import MIN_EVENTS  # noqa: E402
from dc_mlops.data.lstable import LabelOptions, load_ls_table  # noqa: E402
from dc_mlops.data.simulator import write_simulation  # noqa: E402
from dc_mlops import console  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.evaluation.protocols import rolling_steps  # noqa: E402
from dc_mlops.evaluation.walkforward import run_plan  # noqa: E402
from dc_mlops.evaluation.combined import combined_walk  # noqa: E402
from dc_mlops.evaluation.greyzone import decision_metrics  # noqa: E402
from dc_mlops.settings import PDS, EvaluateSettings, MainSettings  # noqa: E402
from dc_mlops.steps.main import HISTORY_ERAS, main_walk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
N_LS, SEED = MainSettings().n_ls, 0
WAYS = {"newest": 0, "crossfit": 4}


def history() -> Path:
    out = CACHE / f"history-all-seed{SEED}-n{N_LS}"
    if not (out / "meta.json").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        write_simulation(out, list(PDS), HISTORY_ERAS.split(","), N_LS, SEED)
    return out


def main() -> None:
    console.configure()  # library start-up noise off, as in the product's commands
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pds", default=",".join(PDS))
    ap.add_argument("--models", default="mahalanobis,pca")
    a = ap.parse_args()
    s = EvaluateSettings()
    era = history()
    rows, walks = [], {}
    for pd_name in a.pds.split(","):
        t = load_ls_table(str(era), pd_name, LabelOptions(), "summary")
        frame = t.frame[t.frame["EventsPerLs"].to_numpy() >= MIN_EVENTS].reset_index(drop=True)
        per = frame.groupby("runId")["label"].apply(lambda x: int((x == 0).sum()))
        w = main_walk(len(per))
        plan = rolling_steps(per.index.to_numpy(), per.to_numpy(), w["window_runs"],
                             w["calib_runs"], w["step_runs"])
        n_judged = int((frame["judged"] & (frame["label"] == 1)).sum())
        for model in a.models.split(","):
            for way, folds in WAYS.items():
                t0 = time.time()
                wf = run_plan(frame, list(t.feature_names), plan,
                              lambda: registry.build(model), s.conditions, s.max_good_as_bad,
                              s.max_bad_as_good, folds=folds, context_ls=s.context_ls)
                if model == a.models.split(",")[0]:
                    walks.setdefault(way, {})[pd_name] = wf
                m = wf.metrics()
                d = wf.decisions
                rows.append([pd_name, model, way, len(plan), n_judged,
                             int((d["judged"] & (d["label"] == 1)).sum()),
                             f"{m['test_good_as_bad_rate']:.4f}",
                             f"{m['test_bad_as_good_rate']:.4f}",
                             f"{m['test_contamination']:.4f}",
                             f"{m['test_automation_rate']:.3f}",
                             f"{m['test_correct_automation_rate']:.3f}",
                             f"{m['test_roc_auc']:.3f}", f"{time.time() - t0:.0f}"])
                print(" | ".join(map(str, rows[-1])), flush=True)
    for way, per_pd in walks.items() if len(a.pds.split(",")) > 1 else ():
        d = combined_walk({p: w.decisions for p, w in per_pd.items()}, s.max_bad_as_good,
                          s.max_good_as_bad,
                          failures={p: w.known_failures for p, w in per_pd.items()})
        m = decision_metrics(d["decision"], d["label"], d["failure"], "test")
        rows.append(["all PDs combined", a.models.split(",")[0], way, "", "",
                     int(d["failure"].sum()), f"{m['test_good_as_bad_rate']:.4f}",
                     f"{m['test_bad_as_good_rate']:.4f}", f"{m['test_contamination']:.4f}",
                     f"{m['test_automation_rate']:.3f}",
                     f"{m['test_correct_automation_rate']:.3f}", "", ""])
        print(" | ".join(map(str, rows[-1])), flush=True)
    headers = ["PD", "detector", "t_bad from", "steps", "judged bad (history)",
               "judged bad (certified)", "good→BAD", "bad→GOOD", "contamination",
               "automation", "correct automation", "ROC AUC", "seconds"]
    body = (f"History of `main`: the four PDs of {HISTORY_ERAS}, {N_LS} LS, seed {SEED}; "
            f"walk sizes of `main` (`main_walk`), targets good→BAD ≤ {s.max_good_as_bad}, "
            f"bad→GOOD ≤ {s.max_bad_as_good}, conditions fit on {s.conditions}, run context "
            f"{s.context_ls} LS. `newest`: "
            "t_bad on the newest runs of the window (`calib_folds=0`); `crossfit`: on "
            "out-of-fold scores of every window run (`calib_folds=4`, the default). LS "
            "outside the fitted pile-up range go to review in both. Rates are measured on "
            "every LS the walk certified (NaN: nothing to measure).\n\n"
            + table(headers, rows))
    write("calibration", "Calibration of the BAD cut-off in the walk-forward protocol", body,
          "python benchmarks/calibration.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()

"""Score modes of ``mahalanobis`` (issue 12): the whole distance (``sum``, the default) or the
mean of the ``top_n`` largest per-feature terms (``topn``), in the walk-forward protocol.

A failure often moves a few of a PD's 98-203 features; summed over all of them its shift
competes with the spread of every other feature. Does scoring on the largest terms tell
failures apart better, and does that reach the Golden JSON through the cut-offs that hold?

On two histories, each PD walked forward with the product's own
:func:`dc_mlops.evaluation.walkforward.run_plan` once per mode, then all PDs combined per
LS as ``certify pd=all`` decides (:func:`dc_mlops.evaluation.combined.combined_walk`, the
GOOD cut-off resting on every failure known before each step):

* ``main``: the history ``main`` simulates (four PDs of 2018D, 40 000 LS, seed 0), walked
  with ``main``'s sizes and ``evaluate``'s defaults (as ``benchmarks/calibration.py``);
* ``2018``: the simulated 2018 with the real run/LS structure, walked as
  ``benchmarks/certification.py`` walks it (its ``settings``).

Per PD: ROC AUC on its own failures, automation, good->BAD and bad->GOOD. Combined:
automation, the rates on every flagged failure, contamination, and the hindsight limit
(:func:`dc_mlops.evaluation.combined.hindsight_automation`: what one GOOD cut-off set on the
walk's own failures would decide, the detectors' separation without the price of a bound).

    python benchmarks/score_modes.py                 # both histories, about 20 min here
    python benchmarks/score_modes.py --histories main
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibration  # noqa: E402
import certification  # noqa: E402
from _report import command_line, table, write  # noqa: E402

from dc_mlops import console  # noqa: E402
from dc_mlops.data.lstable import LabelOptions, load_ls_table  # noqa: E402
from dc_mlops.data.context import ls_order  # noqa: E402
from dc_mlops.data.features import MIN_EVENTS  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.evaluation.combined import combined_walk, hindsight_automation  # noqa: E402
from dc_mlops.evaluation.greyzone import decision_metrics  # noqa: E402
from dc_mlops.evaluation.protocols import rolling_steps  # noqa: E402
from dc_mlops.evaluation.walkforward import run_plan  # noqa: E402
from dc_mlops.settings import PDS, EvaluateSettings  # noqa: E402
from dc_mlops.steps.main import main_walk  # noqa: E402

MODES = ("sum", "topn")


def walks(era: Path, s: EvaluateSettings, sizes) -> dict:
    """(pd, mode) -> WalkForward; ``sizes(n_runs)``: the walk's window, calib and step runs."""
    out = {}
    for pd_name in PDS:
        t = load_ls_table(str(era), pd_name, LabelOptions(), "summary")
        frame = ls_order(t.frame[t.frame["EventsPerLs"].to_numpy() >= MIN_EVENTS])
        per = frame.groupby("runId")["label"].apply(lambda x: int((x == 0).sum()))
        w = sizes(len(per))
        plan = rolling_steps(per.index.to_numpy(), per.to_numpy(), w["window_runs"],
                             w["calib_runs"], w["step_runs"])
        for mode in MODES:
            t0 = time.time()
            out[(pd_name, mode)] = run_plan(
                frame, list(t.feature_names), plan,
                lambda: registry.build("mahalanobis", score_mode=mode), s.conditions,
                s.max_good_as_bad, s.max_bad_as_good, folds=w["calib_folds"],
                context_ls=s.context_ls)
            m = out[(pd_name, mode)].metrics()
            print(f"{era.name} {pd_name} {mode}: {time.time() - t0:.0f} s, ROC AUC "
                  f"{m['test_roc_auc']:.4f}, automation {m['test_automation_rate']:.3f}",
                  flush=True)
    return out


def rows(history: str, results: dict, s: EvaluateSettings) -> list[list]:
    out = []
    for mode in MODES:
        for pd_name in PDS:
            m = results[(pd_name, mode)].metrics()
            out.append([history, pd_name, mode, f"{m['test_roc_auc']:.4f}",
                        f"{m['test_automation_rate']:.3f}",
                        f"{m['test_good_as_bad_rate']:.4f}",
                        f"{m['test_bad_as_good_rate']:.4f}",
                        f"{m['test_contamination']:.4f}", ""])
        d = combined_walk({p: results[(p, mode)].decisions for p in PDS}, s.max_bad_as_good,
                          s.max_good_as_bad,
                          failures={p: results[(p, mode)].known_failures for p in PDS})
        m = decision_metrics(d["decision"], d["label"], d["failure"], "test")
        limit, _ = hindsight_automation(d, s.max_bad_as_good)
        out.append([history, "**all PDs combined**", mode, "",
                    f"**{m['test_automation_rate']:.3f}**",
                    f"{m['test_good_as_bad_rate']:.4f}", f"{m['test_bad_as_good_rate']:.4f}",
                    f"{m['test_contamination']:.4f}", f"{limit:.3f}"])
    return out


def main(argv: list[str] | None = None) -> None:
    console.configure()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", default="main,2018")
    a = ap.parse_args(argv)
    table_rows = []
    for history in a.histories.split(","):
        if history == "main":
            s = EvaluateSettings()
            res = walks(calibration.history(), s, main_walk)
        elif history == "2018":
            s = certification.settings()
            res = walks(certification.era_2018(), s,
                        lambda n: {"window_runs": s.window_runs, "calib_runs": s.calib_runs,
                                   "step_runs": s.step_runs, "calib_folds": s.calib_folds})
        else:
            raise SystemExit(f"error: unknown history {history!r}: main or 2018")
        table_rows += rows(history, res, s)
    headers = ["history", "PD", "score_mode", "ROC AUC", "automation", "good→BAD",
               "bad→GOOD", "contamination", "hindsight limit"]
    body = ("`mahalanobis` with `score_mode=sum` (the squared distance, the default) and "
            "`score_mode=topn` (mean of the 10 largest per-feature terms), conditions fit "
            "and run context at their defaults, each PD walked forward; targets good→BAD ≤ "
            "0.01 and bad→GOOD ≤ 0.01. `main`: the history `main` simulates, walked with "
            "`main`'s sizes; `2018`: the simulated 2018 with the real run/LS structure, "
            "walked as `benchmarks/certification.py`. ROC AUC on each PD's own failures; "
            "combined rates on every flagged failure; hindsight limit: the share one GOOD "
            "cut-off set on the walk's own failures (no bound) would decide.\n\n"
            + table(headers, table_rows))
    write("score_modes", "Score modes of mahalanobis in the walk-forward protocol", body,
          command_line("score_modes.py", argv))


if __name__ == "__main__":
    main()

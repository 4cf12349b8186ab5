"""Score modes of ``mahalanobis`` (issue 12): the whole distance (``sum``, the default), the
mean of the ``top_n`` largest per-feature terms (``topn``) or the largest per-histogram
distance (``histogram``), in the walk-forward protocol.

A failure often moves a few of a PD's 98-203 features; summed over all of them its shift
competes with the spread of every other feature. Does scoring on the largest terms, or on
the worst histogram's own distance, tell failures apart better, and does that reach the
Golden JSON through the cut-offs that hold?

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

    python benchmarks/score_modes.py --modes sum,topn,histogram   # both histories, ~35 min
    python benchmarks/score_modes.py --histories main --modes topn --top-n 1,3,10,20,40 \
        --out score_modes_top_n                      # which top_n
    python benchmarks/score_modes.py --histories main --modes sum --context 8,12,16,24 \
        --out score_modes_context                    # how wide a run context
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
from dc_mlops.data.context import CONTEXT_LS  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.evaluation.combined import combined_walk, hindsight_automation  # noqa: E402
from dc_mlops.evaluation.greyzone import decision_metrics  # noqa: E402
from dc_mlops.evaluation.protocols import rolling_steps  # noqa: E402
from dc_mlops.evaluation.walkforward import run_plan  # noqa: E402
from dc_mlops.settings import PDS, EvaluateSettings  # noqa: E402
from dc_mlops.steps.main import main_walk  # noqa: E402

def variants(modes: list[str], top_ns: list[int], contexts: list[int]
             ) -> dict[str, tuple[dict, int]]:
    """label -> (mahalanobis parameters, run context in LS): every mode at every context,
    ``topn`` at every ``top_n``."""
    out = {}
    for k in contexts:
        for mode in modes:
            for n in (top_ns if mode == "topn" else [None]):
                label = mode + ("" if n is None else f" {n}") + f", context {k}"
                out[label] = ({"score_mode": mode} | ({} if n is None else {"top_n": n}), k)
    return out


def history_walk(history: str):
    """``main`` or ``2018`` -> (era folder, settings, ``sizes(n_runs)``: the walk's window,
    calibration and step runs and calibration folds), as each history is walked."""
    if history == "main":
        return calibration.history(), EvaluateSettings(), main_walk
    if history == "2018":
        s = certification.settings()
        return certification.era_2018(), s, lambda n: {
            "window_runs": s.window_runs, "calib_runs": s.calib_runs,
            "step_runs": s.step_runs, "calib_folds": s.calib_folds}
    raise SystemExit(f"error: unknown history {history!r}: main or 2018")


def walks(era: Path, s: EvaluateSettings, sizes, kinds: dict[str, tuple[dict, int]]) -> dict:
    """(pd, label) -> WalkForward; ``sizes(n_runs)``: the walk's window, calib and step runs
    and calibration folds."""
    out = {}
    for pd_name in PDS:
        frame, names = certification.ls_frame(era, pd_name)
        per = frame.groupby("runId")["label"].apply(lambda x: int((x == 0).sum()))
        w = sizes(len(per))
        plan = rolling_steps(per.index.to_numpy(), per.to_numpy(), w["window_runs"],
                             w["calib_runs"], w["step_runs"])
        for label, (params, context) in kinds.items():
            t0 = time.time()
            out[(pd_name, label)] = run_plan(
                frame, list(names), plan, lambda: registry.build("mahalanobis", **params),
                s.conditions, s.max_good_as_bad, s.max_bad_as_good, folds=w["calib_folds"],
                context_ls=context)
            m = out[(pd_name, label)].metrics()
            print(f"{era.name} {pd_name} {label}: {time.time() - t0:.0f} s, ROC AUC "
                  f"{m['test_roc_auc']:.4f}, automation {m['test_automation_rate']:.3f}",
                  flush=True)
    return out


def rows(history: str, results: dict, labels: list[str], s: EvaluateSettings) -> list[list]:
    out = []
    for label in labels:
        for pd_name in PDS:
            m = results[(pd_name, label)].metrics()
            out.append([history, pd_name, label, f"{m['test_roc_auc']:.4f}",
                        f"{m['test_automation_rate']:.3f}",
                        f"{m['test_good_as_bad_rate']:.4f}",
                        f"{m['test_bad_as_good_rate']:.4f}",
                        f"{m['test_contamination']:.4f}", ""])
        d = combined_walk({p: results[(p, label)].decisions for p in PDS}, s.max_bad_as_good,
                          s.max_good_as_bad,
                          failures={p: results[(p, label)].known_failures for p in PDS})
        m = decision_metrics(d["decision"], d["label"], d["failure"], "test")
        limit, _ = hindsight_automation(d, s.max_bad_as_good)
        out.append([history, "**all PDs combined**", label, "",
                    f"**{m['test_automation_rate']:.3f}**",
                    f"{m['test_good_as_bad_rate']:.4f}", f"{m['test_bad_as_good_rate']:.4f}",
                    f"{m['test_contamination']:.4f}", f"{limit:.3f}"])
    return out


def main(argv: list[str] | None = None) -> None:
    console.configure()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", default="main,2018")
    ap.add_argument("--modes", default="sum,topn,histogram")
    ap.add_argument("--top-n", default="10", help="top_n values of the topn mode")
    ap.add_argument("--context", default=str(CONTEXT_LS), help="run context values, in LS")
    ap.add_argument("--out", default="score_modes", help="results file name")
    a = ap.parse_args(argv)
    kinds = variants(a.modes.split(","), [int(x) for x in a.top_n.split(",")],
                     [int(x) for x in a.context.split(",")])
    table_rows = []
    for history in a.histories.split(","):
        era, s, sizes = history_walk(history)
        res = walks(era, s, sizes, kinds)
        table_rows += rows(history, res, list(kinds), s)
    headers = ["history", "PD", "mahalanobis", "ROC AUC", "automation", "good→BAD",
               "bad→GOOD", "contamination", "hindsight limit"]
    body = ("`mahalanobis` with `score_mode=sum` (the squared distance, the default) and "
            "`score_mode=topn` (mean of the `top_n` largest per-feature terms; the number "
            "after `topn`) and `score_mode=histogram` (one distance per histogram, the "
            "largest), conditions fit at its default and the run context given (LS on "
            "each side), each PD walked forward; targets good→BAD ≤ "
            "0.01 and bad→GOOD ≤ 0.01. `main`: the history `main` simulates, walked with "
            "`main`'s sizes; `2018`: the simulated 2018 with the real run/LS structure, "
            "walked as `benchmarks/certification.py`. ROC AUC on each PD's own failures; "
            "combined rates on every flagged failure; hindsight limit: the share one GOOD "
            "cut-off set on the walk's own failures (no bound) would decide.\n\n"
            + table(headers, table_rows))
    write(a.out, "Score modes of mahalanobis in the walk-forward protocol", body,
          command_line("score_modes.py", argv))


if __name__ == "__main__":
    main()

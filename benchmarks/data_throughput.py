"""Data throughput and the simulator's labels, on the real 2018 run/LS structure.

Sections (each heavy step runs in a child process, so its peak memory is its own):

1. ``simulate pd=all`` on the 2018 structure (``json_DCSONLY_2018.txt`` restricted to the
   eras 2018A-D, bad LS = structure minus ``json_GOLDEN_2018.txt``), four PDs written to one
   era folder: wall time and peak RSS.
2. The labels it made, per PD: among flagged failure LS the PD shows (visibility >= 1
   there), the share that is subtle (1-3) and obvious (> 5); the label rule's shares (best
   PD per LS; SPEC: each >= 25 %); the share of failure LS no PD shows (left unflagged, in
   Golden). The same for the synthetic mode (100 000 LS, two seeds).
3. The raw-histogram loader: ``load_ls_table`` of the JetHT histograms of that era (the
   2018-sized era as raw histograms -> features, labels, conditions): time and peak RSS.
   Targets (issue 9): <= 60 s and <= 2 GiB on 2 cores.
4. Under/overflow on the real pixel fixture: ``drop`` vs ``fold`` (IsolationForest, 5 seeds).
5. The vectorised 7-number summary against a per-LS loop (100 000 LS of JetHT).

    python benchmarks/data_throughput.py [--quick]

``--quick`` uses era 2018C only and 20 000 synthetic LS (for a try-out; the committed
results are without it). Timings are on a shared 2-core machine: the load average is
printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CERT = REPO.parent / "shared" / "data" / "certification_json"
PIXEL = REPO.parent / "shared" / "data" / "cms2017B_zerobias_pixel"
PDS = ["ZeroBias", "JetHT", "EGamma", "SingleMuon"]


# ------------------------------------------------------------------ child steps
def _child(step: str, args: dict) -> dict:
    """Run one step in this process and return its own figures."""
    t0 = time.perf_counter()
    out: dict = {}
    if step == "simulate_all":
        from dc_mlops.data.certjson import read_certjson
        from dc_mlops.data.simulator import write_simulation
        labels = write_simulation(args["out"], PDS, args["eras"], 0, 0,
                                  read_certjson(CERT / "json_DCSONLY_2018.txt"),
                                  read_certjson(CERT / "json_GOLDEN_2018.txt"))
        out["n_ls"] = len(labels.conditions)
        out["n_runs"] = int(labels.conditions["run"].nunique())
    elif step == "load":
        from dc_mlops.data.lstable import LabelOptions, load_ls_table
        t = load_ls_table(args["out"], args["pd"], LabelOptions())
        out["n_ls"] = len(t.frame)
        out["n_features"] = len(t.feature_names)
    elif step == "simulate_one":
        from dc_mlops.data.simulator import simulate
        from dc_mlops.data.summary import summarize
        sim = simulate("JetHT", n_ls=args["n_ls"], seed=1)
        out["t_simulate"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        for k, v in sim.histograms.counts.items():
            summarize(v, sim.histograms.edges[k])
        out["t_summary"] = time.perf_counter() - t1
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(step: str, **args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, __file__, "--child", step, json.dumps(args)],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{step} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ sections
def shares_table(truth) -> list[list]:
    from dc_mlops.data.responsibility import DEFAULT_MAP, subsystems_of
    from dc_mlops.data.simulator import visibility_shares
    rows = []
    overall = visibility_shares(truth)
    rows.append(["label rule (best PD per LS)", overall["n"], f"{overall['subtle']:.1%}",
                 f"{overall['obvious']:.1%}", f"{overall['unflagged']:.1%}", "-"])
    for pd_name in PDS:
        s = visibility_shares(truth, pd_name)
        mine = truth[truth["subsystem"].isin(subsystems_of(pd_name, DEFAULT_MAP))
                     & (truth["origin"] == "failure")]
        rows.append([pd_name, s["n"], f"{s['subtle']:.1%}", f"{s['obvious']:.1%}", "",
                     f"{len(mine):,}"])
    return rows


def synthetic_shares(n_ls: int, seeds: list[int]) -> list[list]:
    import pandas as pd

    from dc_mlops.data.simulator import era_labels, make_truth
    from dc_mlops.data.simulator.conditions import DEFAULT_ERAS
    truth = pd.concat([era_labels(make_truth(DEFAULT_ERAS, n_ls, s, None, None)).truth
                       for s in seeds])
    return shares_table(truth)


def under_overflow_table() -> list[list]:
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from dc_mlops.data.lstable import LabelOptions, load_ls_table
    csv = PIXEL / "chargeInner_PXLayer_1_runs297047-297050.csv"
    rows = []
    for rep in ("summary", "bins"):
        for mode in ("drop", "fold"):
            t = load_ls_table(str(csv), "auto", LabelOptions(label_column="good_pixel"), rep,
                              under_overflow=mode)
            f = t.frame
            runs, ls = f["runId"].to_numpy(), f["lumiId"].to_numpy()
            ref = (runs == 297050) & (f["label"] == 0).to_numpy()
            train = ref & (ls <= np.median(ls[ref]))
            test = (ref & ~train) | (runs < 297050)
            y = (runs[test] < 297050).astype(int)
            X = f[t.feature_names].to_numpy()
            aucs = [roc_auc_score(y, -IsolationForest(random_state=s).fit(X[train])
                                  .score_samples(X[test])) for s in range(5)]
            rows.append([rep, mode, int(train.sum()), f"{int((y == 0).sum())} / {int(y.sum())}",
                         f"{np.mean(aucs):.3f} +- {np.std(aucs):.3f}"])
    return rows


def loop_summary(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The straightforward version: one LS at a time, numpy inside, same definitions."""
    from dc_mlops.data.features import SUMMARY_QUANTILES
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


def summary_vs_loop(n_ls: int) -> tuple[list[list], str]:
    from dc_mlops.data.simulator import simulate
    from dc_mlops.data.summary import summarize
    one = run_child("simulate_one", n_ls=n_ls)
    sim = simulate("JetHT", n_ls=min(n_ls, 20_000), seed=1)
    h = sim.histograms
    n_loop = min(5_000, h.n_ls)
    t0 = time.perf_counter()
    loop = {k: loop_summary(v[:n_loop], h.edges[k]) for k, v in h.counts.items()}
    t_loop = (time.perf_counter() - t0) * n_ls / n_loop
    vec = {k: summarize(v[:n_loop], h.edges[k]) for k, v in h.counts.items()}
    agree = max(float(np.nanmax(np.abs(vec[k] - loop[k]))) for k in vec)
    rows = [["simulate JetHT (in memory)", f"{n_ls:,} LS x 26", f"{one['t_simulate']:.1f}",
             f"{n_ls / one['t_simulate']:,.0f}"],
            ["7-number summary (vectorised)", f"{n_ls:,} LS x 26", f"{one['t_summary']:.2f}",
             f"{n_ls / one['t_summary']:,.0f}"],
            ["7-number summary (per-LS loop)", f"{n_loop:,} LS, scaled", f"{t_loop:.1f}",
             f"{n_ls / t_loop:,.0f}"]]
    note = (f"Vectorised summary vs per-LS loop: **{t_loop / one['t_summary']:.0f}x** (max "
            f"|difference| {agree:.1e} in units of the axes); peak RSS of simulate + summary "
            f"{one['peak_mib']:,.0f} MiB.")
    return rows, note


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="era 2018C and 20 000 synthetic LS")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], json.loads(args.child[1]))))
        return
    import pandas as pd
    eras = ["2018C"] if args.quick else ["2018A", "2018B", "2018C", "2018D"]
    n_synth = 20_000 if args.quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="dc-mlops-bench-"))
    try:
        out = work / "era2018"
        load0 = os.getloadavg()[0]
        sim = run_child("simulate_all", out=str(out), eras=eras)
        load = run_child("load", out=str(out), pd="JetHT")
        truth = pd.read_parquet(out / "truth.parquet")
        size_gb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**30
        load1 = os.getloadavg()[0]
        speed = table(["step", "size", "seconds", "peak RSS MiB", "target"], [
            ["simulate pd=all (2018 structure + Golden)",
             f"{sim['n_ls']:,} LS x 4 PDs, {sim['n_runs']} runs ({size_gb:.1f} GiB on disk)",
             f"{sim['seconds']:.0f}", f"{sim['peak_mib']:,.0f}", "-"],
            ["raw JetHT histograms -> LS table (load_ls_table)",
             f"{load['n_ls']:,} LS x {load['n_features']} features", f"{load['seconds']:.0f}",
             f"{load['peak_mib']:,.0f}", "<= 60 s, <= 2048 MiB"],
        ])
        origin = truth["origin"].value_counts()
        counts = (f"Truth table: {origin.get('failure', 0):,} flagged failure LS (the real human-bad "
                  f"LS), {origin.get('low_stats', 0):,} low-statistics LS, "
                  f"{origin.get('unflagged', 0):,} unflagged failure LS added on good LS (in the "
                  f"Golden JSON); flagged failure LS with visibility < 1 in every PD: "
                  f"{int(((truth['origin'] == 'failure') & (truth.filter(like='visibility_').fillna(0).max(axis=1) < 1)).sum())}.")
        head = ["PD", "flagged failure LS it shows", "subtle (1-3)", "obvious (> 5)",
                "failure LS left unflagged", "flagged LS of its subsystems"]
        real = table(head, shares_table(truth))
        synth = table(head, synthetic_shares(n_synth, [0, 1]))
        uo = table(["representation", "under/overflow", "train LS", "test good / bad",
                    "ROC AUC (5 seeds)"], under_overflow_table())
        loop_rows, loop_note = summary_vs_loop(n_synth)
        loop = table(["step", "size", "seconds", "LS/s"], loop_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = (f"Load average of the shared 2-core machine: {load0:.1f} before, {load1:.1f} after "
            "the first two steps (other engineers' jobs; timings are inflated accordingly).\n\n"
            f"## Speed and memory\n\n{speed}\n\n"
            f"## Labels on the real 2018 structure ({', '.join(eras)})\n\n"
            "Per PD: among the flagged failure LS that the PD shows (visibility >= 1 there), the "
            "share with visibility 1-3 and > 5 in that PD. First row: the label rule, the best PD "
            "per LS (SPEC §2.5: subtle >= 25 %, obvious >= 25 %). The bad LS are the real "
            "human-bad LS (structure minus Golden): each block's strength is solved so that some "
            "PD shows it, with a seeded visibility mix (dc_mlops.data.simulator.generate."
            f"_solve_severities).\n\n{real}\n\n{counts}\n\n"
            f"## Labels in the synthetic mode ({n_synth:,} LS, seeds 0 and 1)\n\n"
            "Strengths drawn from each scenario's physical prior; what no PD shows stays "
            f"unflagged.\n\n{synth}\n\n"
            "## Under/overflow on the real pixel fixture (ZeroBias 2017B, chargeInner_PXLayer_1)\n\n"
            "IsolationForest (scikit-learn defaults), trained on the first half (by LS) of run "
            "297050's pixel-good LS, tested on its second half against the pixel-bad runs "
            f"297047-297049 (labels: the fixture's good_pixel column).\n\n{uo}\n\n"
            f"## 7-number summary\n\n{loop}\n\n{loop_note}")
    write("data_throughput", "Data throughput and labels: the 2018 structure, four PDs", body,
          "python benchmarks/data_throughput.py" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()

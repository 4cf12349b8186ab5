"""Certification benchmark (issue 4): the grey zone per PD and detector, and certify throughput.

1. Automation: per PD, the repo's fixed benchmark (simulated 2018A-D, seed 2026, run-wise
   chronological split as ``preprocess`` does it), every detector trained through the real
   steps (``train`` -> ``evaluate``) and its grey zone set at ``max_bad_as_good=0.001`` and
   ``max_good_as_bad=0.01``: automation rate and measured error rates on the test LS.
2. Throughput: an era the size of 2018 (the real run/LS structure of the 2018 DCS-only JSON,
   258 508 LS, Golden JSON labels) for JetHT, written as a feature table (Parquet); then
   ``dc-mlops certify`` end to end in a fresh process (read Parquet -> score -> write the
   outputs), wall time and peak memory (ru_maxrss), against the targets <= 60 s, <= 2 GiB.

    python benchmarks/certification.py                       # both parts, all PDs and models
    python benchmarks/certification.py --pds JetHT --models pca,sparse_ae --skip-throughput
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

from dc_mlops.data.certjson import read_certjson  # noqa: E402
from dc_mlops.data.features import get_feature_set  # noqa: E402
from dc_mlops.data.simulator import simulate, write_era  # noqa: E402
from dc_mlops.data.summary import summarize  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402
from dc_mlops.settings import (EvaluateSettings, PreprocessSettings, PromoteSettings,  # noqa: E402
                               TrainSettings)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "certification_json"
SEED, N_LS = 2026, 30000
TARGETS = {"max_bad_as_good": 0.001, "max_good_as_bad": 0.01}


def automation(pds: list[str], models: list[str], epochs: int, lr: float, work: Path) -> list[list]:
    import mlflow
    from dc_mlops.steps.evaluate import run_evaluate
    from dc_mlops.steps.preprocess import run_preprocess
    from dc_mlops.steps.train import run_train
    rows = []
    for pd_name in pds:
        era = work / f"{pd_name}-era"
        if not era.exists():
            write_era(simulate(pd_name, n_ls=N_LS, seed=SEED), era)
        pre = run_preprocess(PreprocessSettings(pd=pd_name, data=str(era))).run_id
        for m in models:
            run_train(TrainSettings(model=m, pd=pd_name, epochs=epochs, learning_rate=lr,
                                    preprocess_run=pre))
            print(f"trained {pd_name} {m}", flush=True)
        ev = run_evaluate(EvaluateSettings(pd=pd_name, models=",".join(models), seeds="0",
                                           preprocess_run=pre, **TARGETS))
        for r in ev.candidates.itertuples():
            rows.append([pd_name, r.model, f"{r.test_automation_rate:.3f}",
                         f"{r.test_bad_as_good_rate:.4f}", f"{r.test_good_as_bad_rate:.4f}",
                         f"{r.test_roc_auc:.3f}", f"{r.t_good:.4g}", f"{r.t_bad:.4g}"])
        mlflow.end_run()
    return rows


def throughput(work: Path, model: str) -> tuple[list[list], dict]:
    """Certify a 2018-sized JetHT era written as a feature table, in a fresh process."""
    from dc_mlops.steps.evaluate import run_evaluate
    from dc_mlops.steps.preprocess import run_preprocess
    from dc_mlops.steps.promote import run_promote
    from dc_mlops.steps.train import run_train
    era = work / "JetHT-history"
    if not era.exists():
        write_era(simulate("JetHT", n_ls=N_LS, seed=SEED), era)
    pre = run_preprocess(PreprocessSettings(pd="JetHT", data=str(era))).run_id
    run_train(TrainSettings(model=model, pd="JetHT", epochs=60, learning_rate=1e-3,
                            preprocess_run=pre))
    ev = run_evaluate(EvaluateSettings(pd="JetHT", models=model, seeds="0", preprocess_run=pre,
                                       **TARGETS))
    run_promote(PromoteSettings(pd="JetHT", evaluation_run=ev.run_id))
    t0 = time.perf_counter()
    sim = simulate("JetHT", seed=SEED + 1,
                   structure=read_certjson(SHARED / "json_DCSONLY_2018.txt"),
                   golden=read_certjson(SHARED / "json_GOLDEN_2018.txt"))
    t_sim = time.perf_counter() - t0
    h = sim.histograms
    fs = get_feature_set("JetHT")
    cols = {"runId": h.runs, "lumiId": h.ls}
    info = sim.lumisections.set_index(["run", "ls"]).reindex(pd.MultiIndex.from_arrays([h.runs, h.ls]))
    cols["lumi"] = info["lumi"].to_numpy()
    cols["EventsPerLs"] = info["events"].to_numpy()
    for name in fs.histograms:
        values = summarize(h.counts[name], h.edges[name])
        cols.update({f"{name}_{i}": values[:, i].astype(np.float32) for i in range(7)})
    table_path = work / "JetHT_feature2_2018.parquet"
    pd.DataFrame(cols).to_parquet(table_path, index=False)
    sim.golden.write(work / "golden_2018.json")
    del sim, h, cols
    out = work / "certify-2018"
    # peak memory from VmHWM, which a new program image starts afresh (ru_maxrss would carry
    # over the benchmark parent's own peak through fork + exec)
    code = ("import sys, time, json, re; t=time.perf_counter(); "
            "from dc_mlops.cli import main; rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t, "
            "'maxrss_mib': int(hwm) / 1024}))")
    proc = subprocess.run([sys.executable, "-c", code, "-q", "certify", "--pd", "JetHT",
                           "--data", str(table_path), "--golden-json", str(work / "golden_2018.json"),
                           "--out", str(out)], capture_output=True, text=True, env=os.environ)
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((out / "summary.json").read_text())
    n = summary["counts"]["ls_total"]
    rows = [["simulate the 2018 structure (not part of certify)", f"{n:,}", f"{t_sim:.1f}", "-", "-"],
            [f"certify end to end ({model}, feature Parquet)", f"{n:,}", f"{stats['seconds']:.1f}",
             f"{stats['maxrss_mib']:,.0f}", f"{n / stats['seconds']:,.0f}"]]
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pds", default="ZeroBias,JetHT,EGamma,SingleMuon")
    ap.add_argument("--models", default=",".join(registry.names()))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--throughput-model", default="sparse_ae")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-automation", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        os.chdir(work)
        body = ""
        if not args.skip_automation:
            rows = automation(args.pds.split(","), args.models.split(","), args.epochs,
                              args.learning_rate, work)
            body += ("## Automation at max_bad_as_good=0.001, max_good_as_bad=0.01\n\n"
                     f"Fixed benchmark: simulated 2018A-D, {N_LS} LS, seed {SEED}; chronological "
                     "run-wise split (train/val/calib on the early runs, test on the latest); "
                     f"autoencoders {args.epochs} epochs max, lr {args.learning_rate}, early "
                     "stopping; one seed.\n\n")
            body += table(["PD", "detector", "automation", "bad→GOOD", "good→BAD", "ROC AUC",
                           "t_good", "t_bad"], rows)
        if not args.skip_throughput:
            rows, summary = throughput(work, args.throughput_model)
            body += ("\n\n## Certify throughput, an era the size of 2018 (JetHT)\n\n"
                     "Targets: <= 60 s and <= 2 GiB peak on 2 cores.\n\n")
            body += table(["step", "LS", "seconds", "peak RSS MiB", "LS/s"], rows)
            body += (f"\n\nAutomation on that era: {summary['automation_rate']:.3f}; in domain: "
                     f"{summary['domain']['in_domain']}; agreement with its Golden JSON: "
                     f"{json.dumps(summary.get('agreement_with_golden', {}))}")
        cmd = "python benchmarks/certification.py " + " ".join(sys.argv[1:])
        write("certification", "Certification: grey zone and throughput", body, cmd.strip())


if __name__ == "__main__":
    main()

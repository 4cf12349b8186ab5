"""The ``main`` chain on the embedded simulator: simulate -> preprocess (-> train, evaluate,
promote, certify as they are built), ending with how to open the MLflow UI."""
from __future__ import annotations

import logging

from dc_mlops.settings import MainSettings, PreprocessSettings, SimulateSettings
from dc_mlops.steps.preprocess import run_preprocess
from dc_mlops.steps.simulate import run_simulate
from dc_mlops.tracking.runs import tracking_uri

log = logging.getLogger("dc_mlops")


def run_main(s: MainSettings) -> dict[str, str]:
    from pathlib import Path
    out = Path(SimulateSettings().out) / f"{s.pd}-seed{s.seed}-n{s.n_ls}"
    if not (out / "meta.json").is_file():
        run_simulate(SimulateSettings(pd=s.pd, n_ls=s.n_ls, seed=s.seed, out=str(out)))
    pre = run_preprocess(PreprocessSettings(pd=s.pd, data=str(out), seed=s.seed))
    uri = tracking_uri()
    print("\n== dc_mlops main: done ==")
    print(f"preprocess run: {pre.run_id}{' (reused)' if pre.reused else ''}")
    print(f"Open the results:  mlflow ui --backend-store-uri {uri} --port 5000"
          "   then browse http://127.0.0.1:5000")
    return {"preprocess": pre.run_id}

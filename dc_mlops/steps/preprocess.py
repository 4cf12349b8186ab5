"""The ``preprocess`` step: input -> features -> low-statistics filter -> run-wise split.

Artifacts of the run (read back by ``train`` and ``evaluate``):
``splits/{train,val,calib,test,known_bad}.parquet``, ``features.json`` (feature names,
representation, PD), ``data_report.png``. Everything is loaded and validated before the
run starts, so bad input never leaves a run behind.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dc_mlops.data.lstable import LabelOptions, LSTable, load_ls_table
from dc_mlops.data.splits import SPLITS, SplitFractions, split_table
from dc_mlops.errors import DataError
from dc_mlops.evaluation.plots import data_report
from dc_mlops.settings import PreprocessSettings, SimulateSettings
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.ui import run_name

log = logging.getLogger("dc_mlops")
STEP = "preprocess"


@dataclass(frozen=True)
class PreprocessResult:
    run_id: str
    reused: bool
    counts: dict[str, int]


def default_data(s: PreprocessSettings) -> str:
    """With no data given, simulate the default era once (cached under data/simulated/)."""
    from dc_mlops.steps.simulate import run_simulate
    sim = SimulateSettings(pd=s.pd, seed=s.seed)
    out = Path(sim.out) / f"{s.pd}-seed{s.seed}-n{sim.n_ls}"
    if not (out / "meta.json").is_file():
        run_simulate(dataclasses.replace(sim, out=str(out)))
    return str(out)


def digest_of(path: Path) -> str:
    """Content digest of a file or of every file in a folder (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _label_inputs(s: PreprocessSettings) -> list[Path]:
    return [Path(p) for p in (s.golden_json, s.dcs_bad, s.human_bad, s.failures) if p]


def run_preprocess(s: PreprocessSettings) -> PreprocessResult:
    data = s.data or default_data(s)
    fractions = SplitFractions(s.train_fraction, s.val_fraction, s.calib_fraction)
    if s.min_events < 0:
        raise DataError(f"min_events must be >= 0, got {s.min_events}")
    table = load_ls_table(data, s.pd, LabelOptions(s.golden_json, s.label_column, s.dcs_bad,
                                                   s.human_bad, s.failures), s.representation)
    digest = hashlib.sha256("".join(digest_of(p) for p in [Path(data), *_label_inputs(s)])
                           .encode()).hexdigest()[:16]
    settings = {k: v for k, v in dataclasses.asdict(s).items() if k != "data"}
    key = tr.cache_key(STEP, settings, digest)
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    found = tr.find_finished_run(exp, STEP, key)
    if found:
        log.info("preprocess: reusing finished run %s (same inputs and parameters)", found)
        return PreprocessResult(found, True, {})
    frame, low_stats = _filter_low_statistics(table.frame, s.min_events)
    parts = split_table(frame, fractions, s.split_mode, s.seed)
    counts = _counts(table, frame, parts, low_stats)
    with tr.tracked_run(exp, STEP, run_name(STEP, pd=table.feature_set.name), key,
                        tags={tr.TAG_PD: s.pd, "dc_mlops.data_digest": digest}) as run:
        tr.log_params({**settings, "data": data})
        tr.log_metrics(counts)
        tr.log_dataset(frame[table.feature_names + ["runId", "lumiId", "label"]],
                       source=str(Path(data).resolve()), name=f"{Path(data).name}", digest=digest,
                       context="preprocess")
        for name in SPLITS:
            tr.log_frame(parts[name], "splits", f"{name}.parquet")
        tr.log_text(json.dumps(_feature_spec(table, s), indent=2), "features.json")
        tr.log_figure(data_report(frame, table.feature_names,
                                  f"{table.feature_set.name}: {len(frame)} LS after the "
                                  f"low-statistics cut (min_events={s.min_events})"),
                      "data_report.png")
        run_id = run.info.run_id
    log.info("preprocess: %s", ", ".join(f"{k}={v}" for k, v in counts.items()
                                        if k.startswith("n_") and "__" not in k))
    return PreprocessResult(run_id, False, counts)


def _filter_low_statistics(frame: pd.DataFrame, min_events: int) -> tuple[pd.DataFrame, int]:
    keep = frame["EventsPerLs"].to_numpy() >= min_events
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def _feature_spec(table: LSTable, s: PreprocessSettings) -> dict:
    return {"pd": table.feature_set.name, "histograms": list(table.feature_set.histograms),
            "representation": s.representation, "feature_names": table.feature_names}


def _counts(table: LSTable, frame: pd.DataFrame, parts: dict[str, pd.DataFrame],
            low_stats: int) -> dict[str, int]:
    counts = {"n_ls_input": len(table.frame) + table.dropped_empty, "n_ls_low_stats": low_stats,
              "n_ls_empty_histogram": table.dropped_empty, "n_ls": len(frame),
              "n_bad": int(frame["label"].sum())}
    for name, part in parts.items():
        counts[f"n_{name}"] = len(part)
        counts[f"n_{name}_runs"] = int(part["runId"].nunique())
    test = parts["test"]
    counts["n_test_bad"] = int(test["label"].sum())
    bad = frame[frame["label"] == 1]
    for origin, n in bad["origin"].value_counts().items():
        counts[f"n_bad_origin__{origin}"] = int(n)
    for sub, n in bad["subsystem"].replace("", "unknown").value_counts().items():
        counts[f"n_bad_subsystem__{sub}"] = int(n)
    return counts

"""The ``preprocess`` step: input -> features -> low-statistics filter -> split, tracked.

Artifacts of the run (read back by ``train`` and ``evaluate``):
``splits/{train,val,calib,test,known_bad}.parquet`` (every split carries ``runId, lumiId,
lumi, pileup, EventsPerLs, era, label, origin, subsystem, scenario, judged`` and the
features), ``features.json`` (PD, histograms, representation, feature names, which run
conditions exist, the under/overflow treatment and the responsibility map, so that
``certify`` reads new data the same way), ``data_report.png``. Everything is loaded and
validated before the run starts, so bad input never leaves a run behind. Only ``main``
simulates data: ``preprocess`` needs ``data``.
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
from dc_mlops.data.responsibility import load_responsibility
from dc_mlops.data.splits import SPLITS, SplitFractions, split_table
from dc_mlops.errors import DataError
from dc_mlops.evaluation.plots import data_report
from dc_mlops.settings import PDS, PreprocessSettings, parse_runs
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.ui import run_name

log = logging.getLogger("dc_mlops")
STEP = "preprocess"


@dataclass(frozen=True)
class PreprocessResult:
    run_id: str
    reused: bool
    counts: dict[str, int]


def digest_of(path: Path, skip: tuple[str, ...] = ()) -> str:
    """Content digest of a file or of every file in a folder (names and bytes); ``skip``:
    top-level subfolders left out (the other PDs of an era folder: GBs never read here)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and p.relative_to(path).parts[0] not in skip) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _inputs(s: PreprocessSettings) -> list[Path]:
    return [Path(p) for p in (s.data, s.golden_json, s.dcs_bad, s.human_bad, s.failures,
                              s.conditions_table, s.responsibility) if p]


def run_preprocess(s: PreprocessSettings) -> PreprocessResult:
    if not s.data:
        raise DataError("preprocess needs data: a simulated era folder, a feature table or raw "
                        "histograms (only `main` simulates an era by itself; `dc-mlops "
                        "simulate` writes one)")
    if s.golden_json and s.label_column:  # settings refuse it too; keep the rule here
        raise DataError("give either golden_json or label_column, not both")
    fractions = SplitFractions(s.train_fraction, s.val_fraction, s.calib_fraction)
    mapping = load_responsibility(s.responsibility)
    table = load_ls_table(s.data, s.pd, LabelOptions(s.golden_json, s.label_column, s.dcs_bad,
                                                     s.human_bad, s.failures),
                          s.representation, conditions_table=s.conditions_table,
                          under_overflow=s.under_overflow, responsibility=mapping,
                          min_events=s.min_events)
    frame, low_stats = _filter_low_statistics(table.frame, s.min_events)
    parts = split_table(frame, fractions, s.split_mode, s.seed,
                        parse_runs(s.train_runs, "train_runs") if s.train_runs else None,
                        parse_runs(s.test_runs, "test_runs") if s.test_runs else None)
    name = table.feature_set.name
    others = tuple(p for p in PDS if p != name) if name in PDS else ()
    digest = hashlib.sha256("".join(digest_of(p, others) for p in _inputs(s)).encode()
                            ).hexdigest()[:16]
    settings = {k: v for k, v in dataclasses.asdict(s).items() if k != "data"}
    # what the LS table makes of the inputs: a table made another way is not reused
    key = tr.cache_key(STEP, settings | {"positions": "beam_spot_relative"}, digest)
    exp = tr.ensure_experiment(tr.experiment_name(s.pd))
    counts = _counts(table, frame, parts, low_stats)
    found = tr.find_finished_run(exp, STEP, key)
    if found:
        print(f"preprocess run {found} ({table.feature_set.name}): reused, same inputs and "
              f"parameters; {_summary_line(counts)}")
        return PreprocessResult(found, True, counts)
    spec = feature_spec(table, s, mapping)
    with tr.tracked_run(exp, STEP, run_name(STEP, pd=table.feature_set.name), key,
                        tags={tr.TAG_PD: s.pd, "dc_mlops.data_digest": digest}) as run:
        tr.log_params({**settings, "data": s.data})
        tr.log_metrics(counts)
        tr.log_dataset(frame[table.feature_names + ["runId", "lumiId", "label"]],
                       source=str(Path(s.data).resolve()), name=f"{Path(s.data).name}",
                       digest=digest, context="preprocess")
        for name in SPLITS:
            tr.log_frame(parts[name], "splits", f"{name}.parquet")
        tr.log_text(json.dumps(spec, indent=2), "features.json")
        tr.log_figure(data_report(frame, table.feature_names,
                                  f"{table.feature_set.name}: {len(frame)} LS after the "
                                  f"low-statistics cut (min_events={s.min_events})"),
                      "data_report.png")
        run_id = run.info.run_id
    print(f"preprocess run {run_id} ({table.feature_set.name}): {_summary_line(counts)}")
    if not table.conditions:
        log.info("preprocess: no run conditions for these LS (lumi/pileup are NaN); train with "
                 "conditions=none, or give conditions_table")
    return PreprocessResult(run_id, False, counts)


def _summary_line(counts: dict[str, int]) -> str:
    parts = "/".join(str(counts.get(f"n_{p}", 0)) for p in SPLITS)
    return (f"{counts.get('n_ls', 0)} LS ({counts.get('n_bad', 0)} bad, "
            f"{counts.get('n_judged', 0)} judged), train/val/calib/test/known_bad = {parts}")


def _filter_low_statistics(frame: pd.DataFrame, min_events: int) -> tuple[pd.DataFrame, int]:
    keep = frame["EventsPerLs"].to_numpy() >= min_events
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def feature_spec(table: LSTable, s: PreprocessSettings, mapping: dict[str, str]) -> dict:
    """What a later reader needs to read new data the same way (``features.json``)."""
    return {"pd": table.feature_set.name, "histograms": list(table.feature_set.histograms),
            "representation": s.representation, "feature_names": table.feature_names,
            "under_overflow": table.under_overflow or s.under_overflow,
            "conditions_available": list(table.conditions),
            "conditions_source": table.conditions_source,
            "conditions_granularity": table.conditions_granularity,
            "responsibility": mapping, "min_events": s.min_events,
            # summaries of the vertex positions are relative to the beam spot (LS table)
            "positions": "beam_spot_relative" if s.representation == "summary" else "absolute"}


def _counts(table: LSTable, frame: pd.DataFrame, parts: dict[str, pd.DataFrame],
            low_stats: int) -> dict[str, int]:
    counts = {"n_ls_input": len(table.frame) + table.dropped_empty, "n_ls_low_stats": low_stats,
              "n_ls_empty_histogram": table.dropped_empty, "n_ls": len(frame),
              "n_bad": int(frame["label"].sum()), "n_judged": int(frame["judged"].sum())}
    for name, part in parts.items():
        counts[f"n_{name}"] = len(part)
        counts[f"n_{name}_runs"] = int(part["runId"].nunique())
    test = parts["test"]
    counts["n_test_bad"] = int(test["label"].sum())
    counts["n_test_judged"] = int(test["judged"].sum())
    bad = frame[frame["label"] == 1]
    for origin, n in bad["origin"].value_counts().items():
        counts[f"n_bad_origin__{origin}"] = int(n)
    for sub, n in bad["subsystem"].replace("", "unknown").value_counts().items():
        counts[f"n_bad_subsystem__{sub}"] = int(n)
    return counts

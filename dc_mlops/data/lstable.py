"""One LS table from any input: a simulated era folder, raw histograms or a feature table.

The LS table is what every later step reads: ``runId``, ``lumiId``, ``lumi``,
``EventsPerLs``, ``era``, the labels (``label`` 1 = bad, ``origin``, ``subsystem``,
``scenario``) and the feature columns of the chosen representation. Simulated data goes
through exactly the same path as real data: the era folder holds raw histograms in the DIALS
layout and certification JSONs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.data.features import FeatureSet, get_feature_set
from dc_mlops.data.histograms import Histograms, from_wide_table, read_histograms
from dc_mlops.data.labels import LabelSources, assign_labels, read_bad_list
from dc_mlops.data.summary import normalised_bins, summarize
from dc_mlops.data.tables import canonical_columns, read_table, validate_features
from dc_mlops.errors import DataError

ERA_FILES = {
    "histograms": "histograms.parquet", "lumisections": "lumisections.parquet",
    "golden": "golden.json", "dcsonly": "dcsonly.json", "failures": "failures.csv",
    "dcs_bad": "dcs_bad.csv", "meta": "meta.json",
}
REPRESENTATIONS = ("summary", "bins")


@dataclass(frozen=True)
class LabelOptions:
    """Where labels come from, besides an era folder's own files."""

    golden_json: str = ""
    label_column: str = ""
    dcs_bad: str = ""
    human_bad: str = ""
    failures: str = ""
    #: certify reads new eras that may have no Golden JSON yet: labels then stay unknown (-1)
    required: bool = True


@dataclass
class LSTable:
    frame: pd.DataFrame
    feature_names: list[str]
    feature_set: FeatureSet
    source: str
    dropped_empty: int = 0


def is_era_folder(path: Path) -> bool:
    return path.is_dir() and (path / ERA_FILES["histograms"]).is_file()


def load_ls_table(data: str, pd_name: str, labels: LabelOptions,
                  representation: str = "summary") -> LSTable:
    if representation not in REPRESENTATIONS:
        raise DataError(f"unknown representation {representation!r}: use 'summary' or 'bins'")
    if pd_name != "auto" and not pd_name.endswith((".yaml", ".yml", ".json")):
        get_feature_set(pd_name)  # an unknown PD fails before any file is read
    path = Path(data)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    if is_era_folder(path):
        return _from_era_folder(path, pd_name, labels, representation)
    if path.is_dir():
        raise DataError(f"{path}: a folder without {ERA_FILES['histograms']} is not a simulated era")
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        return _from_histograms(read_histograms(path), None, pd_name, labels, representation)
    df = read_table(path)
    if "runId" in df.columns:
        if representation != "summary":
            raise DataError(f"{path}: a feature table only has the summary representation")
        return _from_feature_table(df, str(path), pd_name, labels)
    if "hname" in df.columns:
        h = from_wide_table(df, str(path))
        extra = _label_from_column(df.rename(columns={"run": "runId", "lumi": "lumiId"}), labels,
                                   str(path))
        return _from_histograms(h, None, pd_name, labels, representation, extra)
    if "run_number" in df.columns:
        return _from_histograms(read_histograms(path), None, pd_name, labels, representation)
    raise DataError(f"{path}: neither a feature table (runId, lumiId, ...) nor raw histograms "
                    "(run_number, ls_number, me, ... or run, lumi, hname, ...)")


def _from_era_folder(path: Path, pd_name: str, labels: LabelOptions, representation: str) -> LSTable:
    meta = json.loads((path / ERA_FILES["meta"]).read_text()) if (path / ERA_FILES["meta"]).is_file() else {}
    if meta.get("pd") and pd_name not in (meta["pd"], "auto"):
        raise DataError(f"{path}: simulated era is of PD {meta['pd']!r}, not {pd_name!r}")
    h = read_histograms(path / ERA_FILES["histograms"])
    info = pd.read_parquet(path / ERA_FILES["lumisections"]) \
        if (path / ERA_FILES["lumisections"]).is_file() else None
    folder_labels = LabelOptions(
        golden_json=labels.golden_json or _if_file(path / ERA_FILES["golden"]),
        label_column=labels.label_column, required=labels.required,
        dcs_bad=labels.dcs_bad or _if_file(path / ERA_FILES["dcs_bad"]),
        human_bad=labels.human_bad,
        failures=labels.failures or _if_file(path / ERA_FILES["failures"]),
    )
    dcsonly = path / ERA_FILES["dcsonly"]
    return _from_histograms(h, info, pd_name, folder_labels, representation,
                            dcsonly=read_certjson(dcsonly) if dcsonly.is_file() else None)


def _if_file(path: Path) -> str:
    return str(path) if path.is_file() else ""


def _from_histograms(h: Histograms, info: pd.DataFrame | None, pd_name: str,
                     labels: LabelOptions, representation: str,
                     column_labels: pd.Series | None = None,
                     dcsonly: CertJSON | None = None) -> LSTable:
    fs = get_feature_set(pd_name, available=h.names)
    _check_histogram_names(h, fs)
    cols: dict[str, np.ndarray] = {"runId": h.runs, "lumiId": h.ls}
    cols.update(_ls_info(h, info))
    names: list[str] = []
    for hist in fs.histograms:
        if representation == "summary":
            values = summarize(h.counts[hist], h.edges[hist])
            hist_names = [f"{hist}_{i}" for i in range(values.shape[1])]
        else:
            values = normalised_bins(h.counts[hist])
            hist_names = [f"{hist}_b{i}" for i in range(values.shape[1])]
        cols.update({n: values[:, i].astype(np.float32) for i, n in enumerate(hist_names)})
        names += hist_names
    frame = pd.DataFrame(cols)
    empty = ~np.isfinite(frame[names].to_numpy()).all(axis=1)
    frame = frame[~empty].reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"{h.source}: every LS has an empty histogram")
    lab = _labels(frame, labels, h.source, column_labels, dcsonly)
    frame = pd.concat([frame, lab], axis=1)
    return LSTable(frame, names, fs, h.source, dropped_empty=int(empty.sum()))


def _check_histogram_names(h: Histograms, fs: FeatureSet) -> None:
    missing = [n for n in fs.histograms if n not in h.counts]
    if missing:
        raise DataError(f"{h.source}: no histogram {missing[0]!r}, which PD {fs.name} needs "
                        f"({len(missing)} missing)")
    extra = [n for n in h.names if n not in fs.histograms]
    if extra:
        raise DataError(f"{h.source}: histogram {extra[0]!r} is not part of PD {fs.name} "
                        "(name a feature-set file that lists it, or pd=auto)")


def _ls_info(h: Histograms, info: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Instantaneous lumi and events per LS; without an LS-info file, events = max entries."""
    if info is None:
        entries = np.max([c.sum(axis=1) for c in h.counts.values()], axis=0)
        return {"lumi": np.zeros(h.n_ls), "EventsPerLs": entries, "era": np.full(h.n_ls, "")}
    key = pd.MultiIndex.from_arrays([h.runs, h.ls])
    info = info.set_index(["run", "ls"]).reindex(key)
    if info["events"].isna().any():
        i = int(np.flatnonzero(info["events"].isna().to_numpy())[0])
        raise DataError(f"{h.source}: no LS information for (run, LS) = ({h.runs[i]}, {h.ls[i]})")
    return {"lumi": info["lumi"].to_numpy(np.float64),
            "EventsPerLs": info["events"].to_numpy(np.float64),
            "era": info["era"].astype(str).to_numpy() if "era" in info else np.full(h.n_ls, "")}


def _label_from_column(df: pd.DataFrame, labels: LabelOptions, where: str) -> pd.Series | None:
    if not labels.label_column:
        return None
    if labels.label_column not in df.columns:
        raise DataError(f"{where}: no label column {labels.label_column!r}")
    good = df.drop_duplicates(["runId", "lumiId"]).set_index(["runId", "lumiId"])[labels.label_column]
    return good.astype(bool)


def _labels(frame: pd.DataFrame, labels: LabelOptions, where: str,
            column_labels: pd.Series | None, dcsonly: CertJSON | None = None) -> pd.DataFrame:
    runs, ls = frame["runId"].to_numpy(), frame["lumiId"].to_numpy()
    if labels.golden_json:
        golden = read_certjson(labels.golden_json)
    elif column_labels is not None:
        good = column_labels.reindex(pd.MultiIndex.from_arrays([runs, ls])).fillna(False)
        golden = CertJSON.from_lumisections(runs[good.to_numpy()], ls[good.to_numpy()])
    elif not labels.required:
        n = len(frame)
        return pd.DataFrame({"label": np.full(n, -1, np.int8), "origin": [""] * n,
                             "subsystem": [""] * n, "scenario": [""] * n})
    else:
        raise DataError(f"{where}: no labels: give golden_json (a Golden JSON) or label_column")
    sources = LabelSources(
        golden=golden, dcsonly=dcsonly,
        dcs_bad=read_bad_list(labels.dcs_bad) if labels.dcs_bad else None,
        human_bad=read_bad_list(labels.human_bad) if labels.human_bad else None,
        failures=read_bad_list(labels.failures) if labels.failures else None,
    )
    return assign_labels(runs, ls, sources)


def _from_feature_table(df: pd.DataFrame, where: str, pd_name: str, labels: LabelOptions) -> LSTable:
    hists = sorted({c.rsplit("_", 1)[0] for c in canonical_columns(df.head(0)).columns
                    if "_" in c and c.rsplit("_", 1)[1].isdigit()})
    fs = get_feature_set(pd_name, available=hists)
    extra = (labels.label_column,) if labels.label_column else ()
    frame = validate_features(df, fs, where, extra_allowed=extra)
    column_labels = _label_from_column(frame, labels, where)
    keep = ["runId", "lumiId", "lumi", "EventsPerLs"] + fs.feature_names()
    lab = _labels(frame, labels, where, column_labels)
    out = pd.concat([frame[keep], lab], axis=1)
    out["era"] = frame["era"].astype(str) if "era" in frame else ""
    return LSTable(out, fs.feature_names(), fs, where)

"""One LS table from any input: a simulated era folder, raw histograms or a feature table.

The LS table is what every later step reads: ``runId``, ``lumiId``, ``lumi``, ``pileup``
(NaN when unknown), ``t_fill`` (only when the conditions table gives it), ``EventsPerLs``,
``era``, the labels (``label`` 1 = bad, ``origin``, ``subsystem``, ``scenario``), ``judged``
(the bad LS this PD's detector is judged on, see
:func:`dc_mlops.data.responsibility.judged_bad`) and the feature columns of the chosen
representation. Simulated data goes through exactly the same path as real data: an era
folder holds raw histograms in the DIALS layout, a conditions table and certification
JSONs (layout: :mod:`dc_mlops.data.simulator.io`); ``certify pd=all`` calls
:func:`load_ls_table` once per PD on the same folder.

Raw histograms are summarised as a stream (:mod:`dc_mlops.data.histfeatures`), so an era
of 10^5-10^6 LS never sits in memory as histograms.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.data.features import (MIN_EVENTS, FeatureSet, get_feature_set,
                                    relative_to_beam_spot)
from dc_mlops.data.histfeatures import summarize_file
from dc_mlops.data.histograms import DEFAULT_UNDER_OVERFLOW
from dc_mlops.data.labels import LabelSources, assign_labels, read_bad_list
from dc_mlops.data.responsibility import DEFAULT_MAP, judged_bad
from dc_mlops.data.runconditions import (VALUE_COLUMNS, RunConditions, conditions_for,
                                         integer_column, read_conditions, validate_conditions)
from dc_mlops.data.tables import canonical_columns, read_table, validate_features
from dc_mlops.errors import DataError

ERA_FILES = {
    "meta": "meta.json", "conditions": "conditions.parquet", "golden": "golden.json",
    "dcsonly": "dcsonly.json", "failures": "failures.csv", "dcs_bad": "dcs_bad.csv",
    "truth": "truth.parquet", "histograms": "histograms.parquet", "events": "events.parquet",
    # the earlier flat single-PD layout
    "lumisections": "lumisections.parquet",
}
REPRESENTATIONS = ("summary", "bins")
#: LS with fewer events are never judged (the one cut lives in settings.MIN_EVENTS)


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
    #: which run conditions every LS has (``lumi``, ``pileup``); the others are NaN
    conditions: list[str] = field(default_factory=list)
    #: where they came from: "era folder", "feature table", a file path, or "" (none)
    conditions_source: str = ""
    conditions_granularity: str = ""  # "ls", "run" or ""
    under_overflow: str = DEFAULT_UNDER_OVERFLOW


def is_era_folder(path: Path) -> bool:
    return path.is_dir() and ((path / ERA_FILES["meta"]).is_file()
                              or (path / ERA_FILES["histograms"]).is_file())


def load_ls_table(data: str, pd_name: str, labels: LabelOptions,
                  representation: str = "summary", *, conditions_table: str = "",
                  under_overflow: str = DEFAULT_UNDER_OVERFLOW,
                  responsibility: dict[str, str] | None = None,
                  min_events: int = MIN_EVENTS) -> LSTable:
    """The LS table of ``data`` for ``pd_name``, validated before anything heavy is read.

    ``conditions_table``: a per-LS or per-run conditions file (SPEC §2.4) for raw
    histograms; an era folder brings its own, a feature table its ``lumi``/``pileup``
    columns (the file given here wins). ``responsibility``: the subsystem -> PD map for
    ``judged`` (default :data:`DEFAULT_MAP`).
    """
    if representation not in REPRESENTATIONS:
        raise DataError(f"unknown representation {representation!r}: use 'summary' or 'bins'")
    if pd_name != "auto" and not pd_name.endswith((".yaml", ".yml", ".json")):
        get_feature_set(pd_name)  # an unknown PD fails before any file is read
    path = Path(data)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    cond = read_conditions(conditions_table) if conditions_table else None
    mapping = DEFAULT_MAP if responsibility is None else responsibility
    if is_era_folder(path):
        table = _from_era_folder(path, pd_name, labels, representation, cond, under_overflow)
    elif path.is_dir():
        raise DataError(f"{path}: a folder without {ERA_FILES['meta']} is not a simulated era")
    else:
        table = _from_file(path, pd_name, labels, representation, cond, under_overflow)
    f = table.frame
    if representation == "summary":  # the beam spot is a run condition, not a feature
        relative_to_beam_spot(f, table.feature_names)
    f["judged"] = judged_bad(f["label"].to_numpy(), f["subsystem"].to_numpy(),
                             f["origin"].to_numpy(), f["scenario"].to_numpy(),
                             table.feature_set.name, mapping) \
        & (f["EventsPerLs"].to_numpy() >= min_events)
    if is_era_folder(path):
        f["judged"] &= _visible_in(path / ERA_FILES["truth"], table.feature_set.name, f)
    return table


def _visible_in(truth_file: Path, pd_name: str, frame: pd.DataFrame) -> np.ndarray:
    """False for the failure LS a simulated era's truth table says ``pd_name`` cannot see
    (visibility below 1, or none: its histograms do not move). A DC expert flagged them from
    another PD; this PD's detector is not judged on them (SPEC §2.5: judged on the failures
    of its subsystems *that it shows*). Real data has no truth table: every LS stays."""
    column = f"visibility_{pd_name}"
    if not truth_file.is_file():
        return np.ones(len(frame), bool)
    try:
        truth = pd.read_parquet(truth_file, columns=["run", "ls", "origin", column])
    except (KeyError, ValueError, OSError, pa.ArrowInvalid):
        return np.ones(len(frame), bool)  # an older truth table or a custom PD: no claim
    hidden = truth[(truth["origin"] == "failure") & ~(truth[column] >= 1.0)]
    key = pd.MultiIndex.from_arrays([frame["runId"].to_numpy(), frame["lumiId"].to_numpy()])
    return ~key.isin(pd.MultiIndex.from_arrays([hidden["run"].to_numpy(),
                                                hidden["ls"].to_numpy()]))


def histograms_file(data: str | Path, pd_name: str) -> Path:
    """The raw histogram file of ``pd_name`` in ``data`` (an era folder of either layout),
    or ``data`` itself when it is a file: for a reader who wants to look at the shapes."""
    path = Path(data)
    return _era_files(path, pd_name).histograms if is_era_folder(path) else path


# ------------------------------------------------------------------ era folders
@dataclass(frozen=True)
class _Era:
    histograms: Path
    events: Path | None
    conditions: Path | None
    legacy_lumisections: Path | None
    pd_name: str


def _read_meta(path: Path) -> dict:
    meta_path = path / ERA_FILES["meta"]
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{meta_path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: must be a JSON object with 'pds' (the PDs inside)")
    pds = meta.get("pds")
    if pds is not None and (not isinstance(pds, list) or not pds
                            or not all(isinstance(p, str) and p for p in pds)):
        raise DataError(f"{meta_path}: key 'pds' must be a non-empty list of PD names, "
                        f"got {pds!r}")
    if pds is None and "pd" in meta and not isinstance(meta["pd"], str):
        raise DataError(f"{meta_path}: key 'pd' must be a PD name, got {meta['pd']!r}")
    return meta


def _era_files(path: Path, pd_name: str) -> _Era:
    meta = _read_meta(path)
    if "pds" in meta:
        pds = meta["pds"]
        custom = pd_name == "auto" or pd_name.endswith((".yaml", ".yml", ".json"))
        if custom and len(pds) != 1:
            raise DataError(f"{path}: holds PDs {', '.join(pds)}: name one of them (pd=auto or "
                            "a feature-set file needs a folder of one PD)")
        folder = pds[0] if custom else pd_name
        if folder not in pds:
            raise DataError(f"{path}: simulated era holds PD(s) {', '.join(pds)}, not {pd_name!r}")
        hist = path / folder / ERA_FILES["histograms"]
        if not hist.is_file():
            raise DataError(f"{path}: meta.json lists PD {folder!r} but {hist} is missing")
        return _Era(hist, _if(path / folder / ERA_FILES["events"]),
                    _if(path / ERA_FILES["conditions"]), None, pd_name)
    if meta.get("pd") and pd_name not in (meta["pd"], "auto"):
        raise DataError(f"{path}: simulated era is of PD {meta['pd']!r}, not {pd_name!r}")
    hist = path / ERA_FILES["histograms"]
    if not hist.is_file():
        raise DataError(f"{path}: an era folder needs meta.json with 'pds' and a "
                        f"<PD>/{ERA_FILES['histograms']}, or a flat {ERA_FILES['histograms']}")
    return _Era(hist, None, _if(path / ERA_FILES["conditions"]),
                _if(path / ERA_FILES["lumisections"]), pd_name)


def _if(path: Path) -> Path | None:
    return path if path.is_file() else None


def _from_era_folder(path: Path, pd_name: str, labels: LabelOptions, representation: str,
                     cond: RunConditions | None, under_overflow: str) -> LSTable:
    era = _era_files(path, pd_name)
    if labels.label_column:
        raise DataError(f"{path}: label_column names a column of a table; an era folder is "
                        "labelled by its golden.json (or give golden_json)")
    folder_labels = LabelOptions(
        golden_json=labels.golden_json or _str(path / ERA_FILES["golden"]),
        label_column=labels.label_column, required=labels.required,
        dcs_bad=labels.dcs_bad or _str(path / ERA_FILES["dcs_bad"]),
        human_bad=labels.human_bad,
        failures=labels.failures or _str(path / ERA_FILES["failures"]),
    )
    dcsonly_path = path / ERA_FILES["dcsonly"]
    dcsonly = read_certjson(dcsonly_path) if dcsonly_path.is_file() else None
    for p in (folder_labels.golden_json, folder_labels.dcs_bad, folder_labels.failures):
        _check_label_file(p)  # all label files before the histograms are read
    # the folder's per-LS table (conditions, era) and the PD's events per LS
    info = events = None
    if era.legacy_lumisections is not None:
        info = events = _read_ls_parquet(era.legacy_lumisections, ("run", "ls", "events"))
    if era.conditions is not None:
        info = _read_ls_parquet(era.conditions, ("run", "ls", "lumi"))
    if era.events is not None:
        events = _read_ls_parquet(era.events, ("run", "ls", "events"))
    source = ""
    if cond is None and info is not None and "lumi" in info.columns:
        where = str(era.conditions or era.legacy_lumisections)
        cond = validate_conditions(info[[c for c in ("run", "ls", *VALUE_COLUMNS)
                                         if c in info.columns]], where)
        source = "era folder"
    feats = summarize_file(era.histograms, era.pd_name, representation, under_overflow)
    ev = _lookup(events, "events", feats.runs, feats.ls, str(era.events or era.legacy_lumisections)) \
        if events is not None else feats.entries
    eras = _lookup(info, "era", feats.runs, feats.ls, "", missing="") \
        if info is not None and "era" in info.columns else None
    return _assemble(feats, ev, cond, source or (cond.source if cond else ""), folder_labels,
                     None, dcsonly, eras, under_overflow)


def _str(path: Path) -> str:
    return str(path) if path.is_file() else ""


def _check_label_file(path: str) -> None:
    if path.endswith(".json"):
        read_certjson(path)
    elif path:
        read_bad_list(path)


def _read_ls_parquet(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """A small per-LS Parquet file of an era folder, validated (truncated, duplicates...)."""
    try:
        df = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'truncated or corrupt'})"
                        ) from None
    for col in needed:
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r}")
    if len(df) == 0:
        raise DataError(f"{path}: no rows (empty input)")
    for col in ("run", "ls"):
        df[col] = integer_column(df[col], col, str(path), minimum=1)
    dup = df.duplicated(["run", "ls"])
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        raise DataError(f"{path}: row {i + 2}: duplicated (run, LS) = ({df['run'].iat[i]}, "
                        f"{df['ls'].iat[i]})")
    if "events" in needed:
        v = pd.to_numeric(df["events"], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: row {i + 2} (run {df['run'].iat[i]}, LS {df['ls'].iat[i]}):"
                            f" events {df['events'].iat[i]} must be a finite number >= 0")
    return df


def _lookup(df: pd.DataFrame, col: str, runs: np.ndarray, ls: np.ndarray, where: str,
            missing=None) -> np.ndarray:
    key = pd.MultiIndex.from_arrays([df["run"].to_numpy(), df["ls"].to_numpy()])
    s = pd.Series(df[col].to_numpy(), index=key)
    got = s.reindex(pd.MultiIndex.from_arrays([runs, ls]))
    if missing is None and got.isna().any():
        i = int(np.flatnonzero(got.isna().to_numpy())[0])
        raise DataError(f"{where}: no {col} for (run, LS) = ({runs[i]}, {ls[i]})")
    return got.fillna(missing).to_numpy() if missing is not None else got.to_numpy()


# ------------------------------------------------------------------ single files
def _from_file(path: Path, pd_name: str, labels: LabelOptions, representation: str,
               cond: RunConditions | None, under_overflow: str) -> LSTable:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        feats = summarize_file(path, pd_name, representation, under_overflow)
        return _assemble(feats, feats.entries, cond, cond.source if cond else "", labels, None,
                         None, None, under_overflow)
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq
        try:
            columns = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: cannot read ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'truncated'})") from None
    elif name.endswith((".csv", ".csv.gz")):
        try:
            columns = list(pd.read_csv(path, nrows=0).columns)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    else:
        raise DataError(f"{path}: unknown input format {path.suffix!r} (feature table: .csv or "
                        ".parquet; histograms: .parquet, .jsonl or the wide .csv)")
    if "runId" in columns:
        if representation != "summary":
            raise DataError(f"{path}: a feature table only has the summary representation")
        return _from_feature_table(read_table(path), str(path), pd_name, labels, cond)
    if "hname" in columns or "run_number" in columns:
        column_labels = None
        if labels.label_column and "hname" in columns:
            column_labels = _wide_label_column(path, columns, labels.label_column)
        elif labels.label_column:
            raise DataError(f"{path}: no label column {labels.label_column!r}")
        feats = summarize_file(path, pd_name, representation, under_overflow)
        return _assemble(feats, feats.entries, cond, cond.source if cond else "", labels,
                         column_labels, None, None, under_overflow)
    raise DataError(f"{path}: neither a feature table (runId, lumiId, ...) nor raw histograms "
                    "(run_number, ls_number, me, ... or run, lumi, hname, ...)")


def _wide_label_column(path: Path, columns: list[str], label: str) -> pd.Series:
    if label not in columns:
        raise DataError(f"{path}: no label column {label!r}")
    df = pd.read_csv(path, usecols=["run", "lumi", label])
    df = df.rename(columns={"run": "runId", "lumi": "lumiId"})
    return _label_series(df, label, str(path))


def _label_series(df: pd.DataFrame, label: str, where: str) -> pd.Series:
    values = df[label]
    ok = values.isin([0, 1, True, False])
    if not ok.all():
        i = int(np.argmax(~ok.to_numpy()))
        raise DataError(f"{where}: row {i + 2}: label column {label!r} holds {values.iat[i]!r}; "
                        "it must be true/1 for good LS and false/0 for bad")
    good = df.drop_duplicates(["runId", "lumiId"]).set_index(["runId", "lumiId"])[label]
    return good.astype(bool)


def _assemble(feats, events: np.ndarray, cond: RunConditions | None, cond_source: str,
              labels: LabelOptions, column_labels: pd.Series | None, dcsonly: CertJSON | None,
              eras: np.ndarray | None, under_overflow: str) -> LSTable:
    n = len(feats.runs)
    if cond is not None:
        values = conditions_for(cond, feats.runs, feats.ls)
        lumi, pileup = values["lumi"], values["pileup"]
        known = cond.columns
        granularity = cond.granularity
    else:
        lumi = pileup = np.full(n, np.nan)
        known, granularity = [], ""
    cols: dict[str, np.ndarray] = {
        "runId": feats.runs, "lumiId": feats.ls, "lumi": lumi, "pileup": pileup,
        "EventsPerLs": np.asarray(events, np.float64),
        "era": eras.astype(str) if eras is not None else np.full(n, ""),
    }
    if cond is not None and "t_fill" in values:
        cols["t_fill"] = values["t_fill"]
    frame = pd.concat([pd.DataFrame(cols), pd.DataFrame(feats.matrix, columns=feats.names,
                                                        copy=False)], axis=1)
    lab = _labels(frame, labels, feats.source, column_labels, dcsonly)
    frame = pd.concat([frame, lab], axis=1)
    return LSTable(frame, feats.names, feats.feature_set, feats.source,
                   dropped_empty=feats.dropped_empty, conditions=list(known),
                   conditions_source=cond_source, conditions_granularity=granularity,
                   under_overflow=under_overflow)


def _labels(frame: pd.DataFrame, labels: LabelOptions, where: str,
            column_labels: pd.Series | None, dcsonly: CertJSON | None = None) -> pd.DataFrame:
    runs, ls = frame["runId"].to_numpy(), frame["lumiId"].to_numpy()
    if labels.golden_json and labels.label_column:
        raise DataError("give either golden_json or label_column, not both")
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


def _from_feature_table(df: pd.DataFrame, where: str, pd_name: str, labels: LabelOptions,
                        cond: RunConditions | None) -> LSTable:
    hists = sorted({c.rsplit("_", 1)[0] for c in canonical_columns(df.head(0)).columns
                    if "_" in c and c.rsplit("_", 1)[1].isdigit()})
    fs = get_feature_set(pd_name, available=hists)
    extra = (labels.label_column,) if labels.label_column else ()
    frame = validate_features(df, fs, where, extra_allowed=extra)
    if labels.label_column and labels.label_column not in frame.columns:
        raise DataError(f"{where}: no label column {labels.label_column!r}")
    column_labels = _label_series(frame, labels.label_column, where) \
        if labels.label_column else None
    names = fs.feature_names()
    lab = _labels(frame, labels, where, column_labels)
    had = [c for c in VALUE_COLUMNS if c in df.columns]
    source, granularity = (where, "ls") if had else ("", "")
    if cond is not None:
        values = conditions_for(cond, frame["runId"].to_numpy(), frame["lumiId"].to_numpy())
        frame = frame.drop(columns=["t_fill"], errors="ignore")
        for col, v in values.items():
            frame[col] = v
        had, source, granularity = cond.columns, cond.source, cond.granularity
    ids = ["runId", "lumiId", "lumi", "pileup", *(["t_fill"] if "t_fill" in frame else []),
           "EventsPerLs"]
    out = pd.concat([frame[ids], lab], axis=1)
    out["era"] = frame["era"].astype(str) if "era" in frame else ""
    out = pd.concat([out, frame[names]], axis=1)
    return LSTable(out, names, fs, where, conditions=list(had), conditions_source=source,
                   conditions_granularity=granularity, under_overflow="")

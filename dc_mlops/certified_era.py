"""A certification folder read back for the DC expert (``notebooks/certified_era.ipynb``).

``certify`` (and ``main``) leave a folder: ``summary.json``, ``grey_zone.csv`` (the LS to
review, most anomalous first, with an empty ``verdict`` column), ``flags.parquet`` (one flag
per LS, PD and subsystem), ``certification.png``... This module turns it into what an expert
asks, in this order:

1. the outcome: automation, counts, the measured rates against the era's Golden JSON when
   one is known, the models and versions that decided, whether the era was in their domain
   (:func:`outcome_lines`);
2. what went to review and why, per PD and subsystem: between the cut-offs or held back
   because the era is outside a certifier's domain, and which histograms lead
   (:func:`review_reasons`);
3. the grey list page by page (:func:`grey_page`), each LS's top histograms drawn against a
   reference of good LS (:func:`ls_figure`) and its run's decision values
   (:func:`run_figure`);
4. verdicts written into ``grey_zone.csv``, the file ``review`` reads (:func:`set_verdict`,
   saved at once, atomically).

It lives in the package, not in the notebook, so that it is tested without a notebook kernel
and the notebook stays a page of calls and explanations. It reads files only: no MLflow, so
the notebook works wherever the certification folder and its era are.

The reference of an LS (per PD): the LS of its run that this PD certified GOOD when there are
at least :data:`MIN_REFERENCE_LS`; else the certified GOOD LS of the nearest runs; else, in an
era where hardly anything is certified GOOD, the least anomalous half of its own run (the
figure says which). Histograms are read for those runs only, never the whole era.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dc_mlops.data.features import canonical_name
from dc_mlops.data.histograms import Histograms, read_histograms
from dc_mlops.errors import DataError
from dc_mlops.evaluation import plots
from dc_mlops.evaluation.combined import describe_hardest
from dc_mlops.evaluation.greyzone import BAD, DCS, GOOD, GREY, LOW

#: a certification folder to use instead of the newest one found
CERT_DIR_ENV = "DC_MLOPS_CERT_DIR"
FILES = ("summary.json", "grey_zone.csv", "flags.parquet")
PAGE_SIZE = 5
TOP_HISTOGRAMS = 3
#: fewer certified GOOD LS than this do not make a reference median
MIN_REFERENCE_LS = 10
#: the nearest runs' certified GOOD LS: enough for a stable median, few runs to read
MAX_REFERENCE_LS, MAX_REFERENCE_RUNS = 400, 3
VERDICTS = (GOOD, BAD, "")


class ReviewError(DataError):
    """A problem with the certification or a verdict: one line, also in a notebook."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback (its documented hook)."""
        return [f"error: {self}"]


# ---- finding and reading a certification ------------------------------------------------
def find_certification(start: str | Path | None = None) -> Path:
    """The folder named by ``DC_MLOPS_CERT_DIR``, else the newest ``outputs/certify-*`` with
    a ``summary.json`` under ``start`` (default: the working directory) or the nearest
    parent that has one: a notebook in ``notebooks/`` finds what ``main`` left in the
    repository root."""
    named = os.environ.get(CERT_DIR_ENV, "")
    if named:
        return _check_folder(Path(named), f"{CERT_DIR_ENV}={named}")
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        found = [p.parent for p in (folder / "outputs").glob("certify-*/summary.json")]
        if found:
            return max(found, key=lambda p: (p / "summary.json").stat().st_mtime)
    raise ReviewError(f"no certification found: no outputs/certify-*/summary.json in {here} "
                      f"or above; run `dc-mlops main` or `dc-mlops certify` there, or set "
                      f"{CERT_DIR_ENV}=<certification folder>")


def _check_folder(folder: Path, what: str) -> Path:
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise ReviewError(f"{what}: {folder} is not a certification folder (no "
                          f"{', '.join(missing)})")
    return folder


@dataclass
class Certification:
    """A certification folder in memory; ``grey`` is ``grey_zone.csv`` as the expert edits it."""

    folder: Path
    summary: dict
    grey: pd.DataFrame
    flags: pd.DataFrame
    _histograms: dict = field(default_factory=dict, repr=False)

    @property
    def grey_file(self) -> Path:
        return self.folder / "grey_zone.csv"

    @property
    def data(self) -> Path:
        """The era that was certified (its raw histograms are read from there)."""
        return Path(self.summary["data"])

    def flags_of(self, pd_name: str) -> pd.DataFrame:
        """One row per LS of this PD (its subsystems share the PD's decision)."""
        f = self.flags[self.flags["pd"] == pd_name]
        return f.drop_duplicates(["run", "ls"]).reset_index(drop=True)


def load(folder: str | Path) -> Certification:
    folder = _check_folder(Path(folder), "certification")
    try:
        summary = json.loads((folder / "summary.json").read_text())
        grey = pd.read_csv(folder / "grey_zone.csv", keep_default_na=False,
                           dtype={"pds": str, "subsystems": str, "top_histograms": str,
                                  "verdict": str})
        flags = pd.read_parquet(folder / "flags.parquet")
    except (ValueError, OSError, pa.ArrowInvalid) as exc:
        raise ReviewError(f"{folder}: cannot read the certification: "
                          f"{str(exc).splitlines()[0]}") from None
    for col in ("run", "ls", "p_value", "verdict"):
        if col not in grey.columns:
            raise ReviewError(f"{folder / 'grey_zone.csv'}: missing column {col!r}")
    return Certification(folder, summary, grey, flags)


# ---- 1. the outcome ---------------------------------------------------------------------
def _n(k: int) -> str:
    return f"{k:,}".replace(",", "\u2009")


def outcome_lines(c: Certification) -> list[str]:
    """The outcome first, then anything wrong (lines starting with ``!!``)."""
    s, n = c.summary, c.summary["counts"]
    judged = n["ls_total"] - n["ls_low_statistics"] - n["ls_dcs_bad"]
    lines = [f"Outcome of {c.folder.name} ({Path(s['data']).name}, {_n(n['ls_total'])} LS): "
             f"automation {s['automation']:.1%}: {_n(n['ls_good'] + n['ls_bad'])} of "
             f"{_n(judged)} judged LS decided automatically ({_n(n['ls_good'])} certified "
             f"GOOD, {_n(n['ls_bad'])} flagged BAD); {_n(n['ls_grey'])} LS to review",
             f"  not judged: {_n(n['ls_low_statistics'])} LS below the event cut, "
             f"{_n(n['ls_dcs_bad'])} LS outside the DCS-only JSON"]
    alarms = []
    targets = {k: sorted({m["cutoffs"].get(k) for m in s["models"]
                          if m.get("cutoffs", {}).get(k) is not None})
               for k in ("max_good_as_bad", "max_bad_as_good")}

    def target(key: str) -> str:
        t = targets[key]
        return "target unknown" if not t else "target " + "/".join(f"{v:.2%}" for v in t)

    if s.get("good_as_bad_rate") is not None or s.get("bad_as_good_rate") is not None:
        gab, bag, cont = (s.get(k) for k in ("good_as_bad_rate", "bad_as_good_rate",
                                             "contamination"))
        rate = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
        lines.append(f"  against the era's Golden JSON: good->BAD {rate(gab)} "
                     f"({target('max_good_as_bad')}), bad->GOOD {rate(bag)} "
                     f"({target('max_bad_as_good')}); {rate(cont)} of the {_n(n['ls_good'])} LS "
                     "certified GOOD are bad (contamination)")
        for name, value, key in (("good->BAD", gab, "max_good_as_bad"),
                                 ("bad->GOOD", bag, "max_bad_as_good")):
            if value is not None and targets[key] and value > max(targets[key]):
                alarms.append(f"!! {name} {value:.2%} is over its target")
    else:
        lines.append("  no Golden JSON for this era yet: the error rates are measured once "
                     "it is certified by hand")
    for m in s["models"]:
        t = m["thresholds"]
        who = (f"version {m['version']} of dc-certifier-{m['pd']}" if m.get("version")
               else m["uri"])
        lines.append(f"  decided by {m['pd']}: {m['name']}, {who}; GOOD below "
                     f"{t['t_good']:.4g}, BAD above {t['t_bad']:.4g}")
        cut = m.get("cutoffs", {})
        if cut and not cut.get("t_good_supported", True) and not s.get("joint_cutoff"):
            alarms.append(f"!! {m['pd']}: t_good rests on {cut.get('n_known_bad')} known bad "
                          f"LS; {cut.get('bad_needed')} are needed to support the bad->GOOD "
                          "target")
    joint = s.get("joint_cutoff")
    if joint:
        blocks = f" in {_n(joint['n_blocks'])} blocks" if joint.get("n_blocks") else ""
        how = ("counting the blocks, whose LS pass or fail together" if joint.get("n_blocks")
               else "if the LS were independent")
        lines.append(f"  all PDs together: GOOD where every PD's p-value exceeds "
                     f"{joint['p_good']:.3g}, resting on {_n(joint['n_failures'])} known "
                     f"failure LS{blocks} (bad->GOOD <= {joint['bound']:.2%} at "
                     f"{joint['confidence']:.0%} confidence, {how})")
        if joint["supported"] and joint.get("hardest"):
            lines.append(f"  held there by the known failures the detectors see least: "
                         f"{describe_hardest(joint['hardest'])}")
        if not joint["supported"]:
            alarms.append(f"!! {_n(joint['n_failures'])} known failure LS cannot support the "
                          f"bad->GOOD target ({_n(joint['bad_needed'])} needed): nothing GOOD")
    inside = [p for p, d in s.get("domain", {}).items() if d["in_domain"]]
    if inside:
        lines.append(f"  the era is in the domain of the certifier{'s' if len(inside) > 1 else ''}"
                     f" of {', '.join(inside)}")
    for pd_name, d in s.get("domain", {}).items():
        if not d["in_domain"]:
            held = "certified GOOD anyway (force)" if s.get("forced") else \
                "nothing certified GOOD by it, its LS went to review"
            alarms.append(f"!! {pd_name}: the era is OUTSIDE the certifier's domain "
                          f"({'; '.join(d['reasons'])}): {held}")
    if n["ls_good"] == 0:
        alarms.append("!! no LS was certified GOOD")
    return lines + alarms


# ---- 2. what went to review and why -----------------------------------------------------
#: why a PD left an LS undecided (the review table's columns)
BETWEEN, OUT_OF_DOMAIN, ALONE = ("between the cut-offs", "held back: era out of domain",
                                 "above t_bad, ordinary on its own (next to a failure?)")


def _reasons(flags: pd.DataFrame, models: dict[str, dict],
             domain: dict[str, dict] | None = None) -> np.ndarray:
    """Why a PD left each of its GREY flags undecided: between its cut-offs; held back
    because the era is outside its domain; or above ``t_bad`` in its run context but
    ordinary on its own (``greyzone.decide``'s ``lone`` rule: a good LS next to a failure
    block shares part of its shift)."""
    t_good = flags["pd"].map(lambda p: models[p]["thresholds"]["t_good"]).to_numpy(float)
    t_bad = flags["pd"].map(lambda p: models[p]["thresholds"]["t_bad"]).to_numpy(float)
    inside = flags["pd"].map(lambda p: (domain or {}).get(p, {}).get("in_domain", False)
                             ).to_numpy(bool)
    score = flags["score"].to_numpy(float)
    held = (score < t_good) | (score > t_bad)  # would be decided: out of domain
    return np.where(held & inside & (score > t_bad), ALONE,
                    np.where(held, OUT_OF_DOMAIN, BETWEEN))


def _leading(top: pd.Series, k: int = 3) -> str:
    first = top[top != ""].str.split(" \\(").str[0]
    counts = first.value_counts()
    return ", ".join(f"{h} ({_n(int(v))})" for h, v in counts.head(k).items())


def review_reasons(c: Certification) -> pd.DataFrame:
    """Per PD and subsystem: how many of the LS to review it left undecided, why, and
    which histograms lead their scores most often."""
    models = {m["pd"]: m for m in c.summary["models"]}
    keys = c.grey[["run", "ls"]].astype(np.int64)
    f = c.flags.merge(keys, on=["run", "ls"])
    f = f[f["decision"] == GREY].copy()
    cols = ["PD", "subsystem", "LS to review", BETWEEN, OUT_OF_DOMAIN, ALONE,
            "leading histograms (LS)"]
    if f.empty:
        return pd.DataFrame(columns=cols)
    f["why"] = _reasons(f, models, c.summary.get("domain"))
    rows = []
    for (pd_name, sub), g in f.groupby(["pd", "subsystem"], sort=True):
        rows.append([pd_name, sub, len(g), *[int((g["why"] == w).sum())
                                             for w in (BETWEEN, OUT_OF_DOMAIN, ALONE)],
                     _leading(g["top_histograms"].fillna(""))])
    return pd.DataFrame(rows, columns=cols)


# ---- 3. the grey list, page by page -----------------------------------------------------
def n_pages(c: Certification, size: int = PAGE_SIZE) -> int:
    return max(1, int(np.ceil(len(c.grey) / size)))


def grey_page(c: Certification, page: int = 1, size: int = PAGE_SIZE) -> pd.DataFrame:
    """Page ``page`` (1 = the first) of the grey list in its order (smallest p-value first:
    the share of calibration good LS at least as anomalous), with each PD's decision value
    and why it left the LS undecided."""
    last = n_pages(c, size)
    if not 1 <= page <= last:
        raise ReviewError(f"page {page} does not exist: the grey list has {_n(len(c.grey))} LS, "
                          f"pages 1 to {last} of {size}")
    rows = c.grey.iloc[(page - 1) * size:page * size].copy()
    rows.insert(0, "rank", np.arange((page - 1) * size, (page - 1) * size + len(rows)) + 1)
    models = {m["pd"]: m for m in c.summary["models"]}
    f = c.flags.drop_duplicates(["run", "ls", "pd"]).merge(
        rows[["run", "ls"]].astype(np.int64), on=["run", "ls"])
    for pd_name, g in f.groupby("pd", sort=True):
        score = g.set_index(["run", "ls"])["score"]
        rows[f"score {pd_name}"] = [score.get((r, l), np.nan)
                                    for r, l in zip(rows["run"], rows["ls"])]
    grey_f = f[f["decision"] == GREY]
    why = dict(zip(zip(grey_f["run"], grey_f["ls"], grey_f["pd"]),
                   _reasons(grey_f, models, c.summary.get("domain"))))
    rows["why"] = ["; ".join(f"{p}: {why[(r, l, p)]}" for p in str(pds).split(";")
                             if (r, l, p) in why)
                   for r, l, pds in zip(rows["run"], rows["ls"], rows["pds"])]
    return rows.reset_index(drop=True)


def _top(text: str) -> list[tuple[str, float]]:
    """``"qgTkEta (48%), qgTkPt (33%)"`` -> [("qgTkEta", 0.48), ("qgTkPt", 0.33)]."""
    out = []
    for part in str(text).split(", "):
        name, _, share = part.partition(" (")
        if name:
            out.append((name.strip(), float(share.rstrip("%)") or "nan") / 100))
    return out


def _histograms_file(data: Path, pd_name: str) -> Path:
    """The raw histogram file of ``pd_name`` in the certified era."""
    try:  # the data layer knows both era-folder layouts (one PD, or one subfolder per PD)
        from dc_mlops.data.lstable import histograms_file
    except ImportError:  # until the per-PD era folders land: one flat histograms.parquet
        return data / "histograms.parquet" if data.is_dir() else data
    return histograms_file(data, pd_name)


def _read_runs(path: Path, runs: list[int]) -> Histograms:
    """The histograms of a few runs: a filtered read of a Parquet file in the DIALS long
    layout (run_number, ls_number, me, x_min, x_max, x_bin, data), so a page never reads
    the whole era; other formats (small real files) are read whole."""
    if path.suffix.lower() != ".parquet":
        h = read_histograms(path)
        return h.subset(np.isin(h.runs, runs))
    try:
        table = pq.read_table(path, columns=["run_number", "ls_number", "me", "x_min",
                                             "x_max", "x_bin", "data"],
                              filters=[("run_number", "in", [int(r) for r in runs])])
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise ReviewError(f"{path}: cannot read the histograms of runs {runs}: "
                          f"{str(exc).splitlines()[0]}") from None
    df = table.to_pandas()
    keys = df[["run_number", "ls_number"]].drop_duplicates().sort_values(
        ["run_number", "ls_number"])
    index = {k: i for i, k in enumerate(zip(keys["run_number"], keys["ls_number"]))}
    counts, edges = {}, {}
    for me, g in df.groupby("me", sort=False):
        n_bins = int(g["x_bin"].iat[0])
        data = np.stack([np.asarray(v, dtype=np.float64) for v in g["data"]])
        if data.shape[1] == n_bins + 2:  # under/overflow: left out, as the loader does
            data = data[:, 1:-1]
        rows = np.full((len(index), data.shape[1]), np.nan)
        rows[[index[k] for k in zip(g["run_number"], g["ls_number"])]] = data
        counts[canonical_name(str(me))] = rows
        edges[canonical_name(str(me))] = np.linspace(float(g["x_min"].iat[0]),
                                                     float(g["x_max"].iat[0]), data.shape[1] + 1)
    return Histograms(keys["run_number"].to_numpy(np.int64), keys["ls_number"].to_numpy(np.int64),
                      counts, edges, str(path))


def _histograms(c: Certification, pd_name: str, runs: list[int]) -> Histograms:
    """Histograms of ``runs`` for this PD, read once per (PD, runs) while paging."""
    key = (pd_name, tuple(sorted(runs)))
    if key not in c._histograms:
        if len(c._histograms) > 32:
            c._histograms.clear()
        c._histograms[key] = _read_runs(_histograms_file(c.data, pd_name), sorted(runs))
    return c._histograms[key]


@dataclass(frozen=True)
class Reference:
    """Which LS an LS is compared with, and the sentence that says so."""

    keys: list[tuple[int, int]]
    text: str


def reference_of(c: Certification, pd_name: str, run: int, ls: int) -> Reference:
    """The good LS an LS of ``run`` is compared with (see the module docstring)."""
    f = c.flags_of(pd_name)
    good = f[(f["decision"] == GOOD) & ~((f["run"] == run) & (f["ls"] == ls))]
    same = good[good["run"] == run]
    if len(same) >= MIN_REFERENCE_LS:
        return Reference(list(zip(same["run"], same["ls"])),
                         f"the {len(same)} LS of run {run} certified GOOD")
    if len(good) >= MIN_REFERENCE_LS:
        per_run = good.groupby("run").size()
        order = sorted(per_run.index, key=lambda r: (abs(int(r) - run), r))
        chosen, n = [], 0
        for r in order:
            if n >= MAX_REFERENCE_LS or len(chosen) == MAX_REFERENCE_RUNS:
                break
            chosen.append(int(r))
            n += int(per_run[r])
        ref = good[good["run"].isin(chosen)].head(MAX_REFERENCE_LS)
        return Reference(list(zip(ref["run"], ref["ls"])),
                         f"{len(ref)} LS certified GOOD in run{'s' if len(chosen) > 1 else ''} "
                         f"{', '.join(map(str, sorted(chosen)))}")
    own = f[(f["run"] == run) & (f["ls"] != ls) & f["decision"].isin([GOOD, GREY])]
    calm = own[own["score"] <= own["score"].median()] if len(own) else own
    return Reference(list(zip(calm["run"], calm["ls"])),
                     f"the {len(calm)} least anomalous LS of run {run} (its lower half by "
                     f"decision value: only {len(good)} LS of this era "
                     f"{'is' if len(good) == 1 else 'are'} certified GOOD)")


def _shape(counts: np.ndarray) -> np.ndarray:
    total = np.nansum(counts, axis=-1, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), np.nan)


@dataclass(frozen=True)
class Comparison:
    """One LS of one PD against its reference: shapes (fractions of the entries per bin)
    per histogram, and how far the LS departs from the reference median."""

    pd: str
    decision: str
    score: float
    reference: Reference
    edges: dict[str, np.ndarray]
    ls_shapes: dict[str, np.ndarray]
    ref_shapes: dict[str, np.ndarray]  # (n_reference_LS, n_bins)
    #: L1 distance of the LS's shape to the reference median, in units of a reference LS's
    #: typical (median) distance: about 1 for an LS like the good ones
    departures: dict[str, float]
    explained: list[tuple[str, float]]  # the detector's top histograms and their shares


def compare(c: Certification, pd_name: str, run: int, ls: int) -> Comparison:
    f = c.flags_of(pd_name)
    mine = f[(f["run"] == run) & (f["ls"] == ls)]
    if mine.empty:
        raise ReviewError(f"run {run} LS {ls} was not certified by {pd_name} in {c.folder.name}")
    flag = mine.iloc[0]
    ref = reference_of(c, pd_name, run, ls)
    h = _histograms(c, pd_name, sorted({run} | {r for r, _ in ref.keys}))
    index = {k: i for i, k in enumerate(zip(h.runs.tolist(), h.ls.tolist()))}
    if (run, ls) not in index:
        raise ReviewError(f"{_histograms_file(c.data, pd_name)}: no histograms of run {run} "
                          f"LS {ls}")
    rows = [index[k] for k in ref.keys if k in index]
    ls_shapes, ref_shapes, departures = {}, {}, {}
    for name in h.names:
        shape = _shape(h.counts[name])
        ls_shapes[name], ref_shapes[name] = shape[index[(run, ls)]], shape[rows]
        if len(rows) >= 3:
            median = np.nanmedian(ref_shapes[name], axis=0)
            typical = np.nanmedian(np.nansum(np.abs(ref_shapes[name] - median), axis=1))
            departures[name] = float(np.nansum(np.abs(ls_shapes[name] - median))
                                     / max(typical, 1e-12))
    return Comparison(pd_name, str(flag["decision"]), float(flag["score"]), ref, h.edges,
                      ls_shapes, ref_shapes, departures,
                      [(n, s) for n, s in _top(flag["top_histograms"]) if n in ls_shapes])


def ls_panels(c: Certification, run: int, ls: int, top: int = TOP_HISTOGRAMS
              ) -> tuple[list[plots.HistogramPanel], list[str]]:
    """For each PD that did not certify the LS GOOD (every PD when all did): its ``top``
    histograms (those that drive its score; else those furthest from the reference)
    against the reference. Returns the panels and one sentence per PD naming its reference."""
    f = c.flags.drop_duplicates(["run", "ls", "pd"])
    mine = f[(f["run"] == run) & (f["ls"] == ls)]
    if mine.empty:
        raise ReviewError(f"run {run} LS {ls} is not in {c.folder.name}")
    undecided = mine[mine["decision"] != GOOD]
    panels, refs = [], []
    for pd_name in (undecided if len(undecided) else mine)["pd"]:
        cmp = compare(c, pd_name, run, ls)
        chosen = cmp.explained[:top] or [(n, None) for n in sorted(
            cmp.departures, key=lambda n: -cmp.departures[n])[:top]] or \
            [(n, None) for n in list(cmp.ls_shapes)[:top]]
        for name, share in chosen:
            group = cmp.ref_shapes[name]
            notes = [f"{share:.0%} of the score" if share is not None and np.isfinite(share)
                     else "not explained by the detector"]
            if name in cmp.departures:
                notes.append(f"{cmp.departures[name]:.1f}x a reference LS's departure")
            band = len(group) >= 5
            panels.append(plots.HistogramPanel(
                title=f"{pd_name}: {name}", edges=cmp.edges[name], ls_shape=cmp.ls_shapes[name],
                ls_label=f"run {run} LS {ls}",
                ref_median=np.nanmedian(group, axis=0) if len(group) else None,
                ref_low=np.nanquantile(group, 0.1, axis=0) if band else None,
                ref_high=np.nanquantile(group, 0.9, axis=0) if band else None,
                note="; ".join(notes)))
        refs.append(f"{pd_name} ({cmp.decision}, decision value {cmp.score:.4g}): reference = "
                    f"{cmp.reference.text}")
    return panels, refs


def ls_figure(c: Certification, run: int, ls: int, top: int = TOP_HISTOGRAMS):
    """One LS's top histograms against its reference, one row of panels."""
    panels, refs = ls_panels(c, run, ls, top)
    return plots.histograms_vs_reference(panels, f"run {run} LS {ls}\n" + "\n".join(refs),
                                         ncols=max(1, min(top, len(panels))))


def run_figure(c: Certification, run: int, pd_name: str | None = None):
    """The decision value of every LS of ``run`` for one PD (default: the first), coloured
    by that PD's decision, with its cut-offs."""
    model = next((m for m in c.summary["models"] if pd_name in (None, m["pd"])), None)
    if model is None:
        raise ReviewError(f"PD {pd_name!r} did not decide {c.folder.name}")
    f = c.flags_of(model["pd"])
    one = f[f["run"] == run]
    if one.empty:
        raise ReviewError(f"run {run} is not in {c.folder.name}")
    frame = pd.DataFrame({"lumiId": one["ls"], "score": one["score"],
                          "decision": one["decision"].replace({DCS: BAD, LOW: "low"}),
                          "label": -1})
    return plots.score_along_run(frame, f"{model['pd']} ({model['name']}): run {run}",
                                 model["thresholds"])


# ---- 4. verdicts ------------------------------------------------------------------------
def set_verdict(c: Certification, run: int, ls: int, verdict: str,
                subsystems: str = "") -> Path:
    """Write GOOD or BAD (or "" to undo) for one LS and save ``grey_zone.csv`` at once.

    ``subsystems`` (BAD only, ``;``-separated) names the subsystems at fault; without it a
    BAD verdict counts for every subsystem the LS was undecided for. An LS of the
    certification that is not grey (a BAD one you checked) is added as a row."""
    v = str(verdict).strip().upper()
    if v not in VERDICTS:
        raise ReviewError(f"verdict {verdict!r}: use 'GOOD', 'BAD' or '' (to undo)")
    run, ls = int(run), int(ls)
    flags = c.flags[(c.flags["run"] == run) & (c.flags["ls"] == ls)]
    if flags.empty:
        raise ReviewError(f"run {run} LS {ls} is not in {c.folder.name}")
    subs = [s.strip().upper() for s in str(subsystems).split(";") if s.strip()]
    unknown = sorted(set(subs) - set(flags["subsystem"]))
    if unknown:
        raise ReviewError(f"run {run} LS {ls}: subsystem(s) {', '.join(unknown)} were not "
                          f"judged here; choose among {', '.join(sorted(set(flags['subsystem'])))}")
    if subs and v != BAD:
        raise ReviewError("subsystems name what is at fault: only with a BAD verdict")
    at = (c.grey["run"] == run) & (c.grey["ls"] == ls)
    if not at.any():
        c.grey = pd.concat([c.grey, pd.DataFrame([{
            "run": run, "ls": ls, "p_value": float(flags["p_value"].min()),
            "pds": ";".join(sorted(set(flags["pd"]))),
            "subsystems": ";".join(sorted(set(flags["subsystem"]))),
            "top_histograms": "", "verdict": ""}])], ignore_index=True)
        at = (c.grey["run"] == run) & (c.grey["ls"] == ls)
    c.grey.loc[at, "verdict"] = v
    if subs:
        c.grey.loc[at, "subsystems"] = ";".join(subs)
    return save_verdicts(c)


def save_verdicts(c: Certification) -> Path:
    """``grey_zone.csv`` with the verdicts, replaced in one step (never half written)."""
    tmp = c.grey_file.with_name(f".{c.grey_file.name}.tmp")
    c.grey.to_csv(tmp, index=False)
    os.replace(tmp, c.grey_file)
    return c.grey_file


def review_progress(c: Certification) -> str:
    v = c.grey["verdict"].astype(str).str.upper()
    done = int(v.isin([GOOD, BAD]).sum())
    return (f"{done} of {_n(len(c.grey))} LS reviewed ({int((v == GOOD).sum())} GOOD, "
            f"{int((v == BAD).sum())} BAD) in {c.grey_file}; when done: "
            f"dc-mlops review --verdicts {c.grey_file}")

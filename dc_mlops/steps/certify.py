"""The ``certify`` step: the Production certifiers decide every LS of a new era (SPEC §7).

With several PDs (``pd=all`` or a list) each PD's certifier decides the subsystems it is
responsible for (:mod:`dc_mlops.data.responsibility`) and the decisions are combined per LS
(:func:`dc_mlops.evaluation.greyzone.combine`): GOOD only when every PD certifies its
subsystems GOOD, BAD when any flags BAD, grey otherwise. LS outside the DCS-only JSON are
never GOOD. Before anything is certified GOOD each PD's domain is checked (feature ranges,
conditions range, score drift against its calibration LS): out of domain, that PD certifies
nothing GOOD (its LS go to review) unless ``force``, and the console and summary say so.

Writes into ``out``, all at once (claimed before any work, built beside it and moved into
place only when complete; :func:`dc_mlops.outputs.claim_output`):

* ``certified_golden.json``: the LS certified GOOD, Golden-JSON format, one run per line;
* ``bad_ls.csv``: the BAD LS as ranges per run, with the subsystems and PDs that flagged them;
* ``grey_zone.csv``: the LS for human review, most anomalous first (smallest conformal
  p-value), with the histograms that drive each PD's score and an empty ``verdict`` column
  for the DC expert (``review`` reads it back);
* ``flags.parquet``: one flag per LS and subsystem (decision, score, p-value, ``lone``: the LS
  unusual on its own, which BAD needs; PD, model
  version), the way Run Registry keeps one flag per subsystem;
* ``low_statistics.csv``: LS a PD could not judge for lack of events;
* ``summary.json``: counts, automation, the models and versions that decided, their
  cut-offs, the domain check and, when a Golden JSON of the era is known, the measured rates
  (good->BAD, bad->GOOD, contamination) against it;
* ``certification.png``: GOOD / BAD / grey along the runs;
* ``good_cutoff_failures.csv`` (several PDs): the known failure blocks the combined GOOD
  cut-off rests on, least visible first (:func:`dc_mlops.evaluation.combined.hardest_failures`):
  the labels to check first, and the failures the detectors miss.

The same files are logged as artifacts of one ``certify`` run.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.data.context import ls_order, run_bounds
from dc_mlops.data.correction import COLUMNS, conditions_matrix
from dc_mlops.data.features import histogram_of
from dc_mlops.data.lstable import ERA_FILES, LabelOptions, is_era_folder, load_ls_table
from dc_mlops.data.responsibility import load_responsibility, subsystems_of
from dc_mlops.data.tables import feature_matrix
from dc_mlops.errors import DataError
from dc_mlops.evaluation import plots
from dc_mlops.evaluation.combined import (HARDEST_SHOWN, JointCutoff, hardest_failures,
                                          joint_cutoff, joint_failures, joint_t_bad,
                                          joint_t_good)
from dc_mlops.evaluation.drift import domain_report
from dc_mlops.evaluation.greyzone import (BAD, DCS, GOOD, GREY, LOW, combine,
                                          conformal_p_values, decide, decision_metrics,
                                          lone_flags, withhold)
from dc_mlops.outputs import claim_output
from dc_mlops.settings import CertifySettings
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import load_model, spec_condition_columns
from dc_mlops.tracking.registry import certifier_name, production_uri, production_version
from dc_mlops.tracking.ui import run_name

log = logging.getLogger("dc_mlops")
STEP = "certify"
TOP_HISTOGRAMS = 3
#: the known failure blocks the combined GOOD cut-off rests on, least visible first
HARDEST_FILE = "good_cutoff_failures.csv"


@dataclass(frozen=True)
class CertifyResult:
    out: Path
    summary: dict
    run_id: str


@dataclass
class _Certifier:
    pd: str
    uri: str
    version: str
    detector: object
    spec: dict


def _load_certifier(s: CertifySettings, pd_name: str) -> _Certifier:
    uri = s.model_uri or production_uri(pd_name)
    try:
        model = load_model(uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a missing model
        raise DataError(f"cannot load the certifier {uri}: {str(exc).splitlines()[0]} "
                        "(run `promote` first, or give model_uri)") from None
    inner = model.unwrap_python_model()
    spec = inner.spec
    if not spec.get("thresholds"):
        raise DataError(f"{uri} has no cut-offs: certify needs a promoted certifier")
    if spec.get("pd") and spec["pd"] != pd_name:
        raise DataError(f"{uri} certifies PD {spec['pd']!r}, not {pd_name!r}")
    version = ""
    if not s.model_uri:
        mv = production_version(certifier_name(pd_name))
        version = str(mv.version) if mv else ""
    return _Certifier(pd_name, uri, version, inner.detector, spec)


def _certifiers(s: CertifySettings) -> tuple[list[_Certifier], list[str]]:
    """The certifiers to use and, for ``pd=all``, the PDs that have none in Production.

    ``pd=all`` is the Golden JSON: an LS is GOOD only when every subsystem is judged GOOD,
    so a PD without a certifier leaves its subsystems to people and nothing is GOOD (the
    caller turns GOOD into GREY). Named PDs are certified for their own subsystems, as a
    per-PD certification; every one of them must have a certifier."""
    if s.pd != "all":
        return [_load_certifier(s, p) for p in s.pd_list], []
    certifiers, missing = [], []
    for p in s.pd_list:
        if production_version(certifier_name(p)) is None:
            missing.append(p)
        else:
            certifiers.append(_load_certifier(s, p))
    if not certifiers:
        raise DataError("certify pd=all: no PD has a certifier in Production (run `promote`)")
    return certifiers, missing


def run_certify(s: CertifySettings) -> CertifyResult:
    if not s.data:
        raise DataError("certify needs `data`: the era to certify (era folder, table or "
                        "histograms)")
    # the output is checked and claimed before any work: a second certify to the same `out`
    # stops here, in one line, before it starts a run
    with claim_output(s.out) as staging:
        mapping = load_responsibility(s.responsibility)
        certifiers, missing = _certifiers(s)
        dcs = _dcs_json(s)
        joint, hardest = _joint_cutoff(certifiers) if len(certifiers) > 1 else (None, None)
        per_pd, low_rows, domains, golden_labels = [], [], {}, []
        for cert in certifiers:
            flags, low, domain, labels = _certify_pd(s, cert, mapping, dcs, joint)
            if joint is not None:  # the summary says which cut-offs decided
                t_good, t_bad = _cutoffs(cert, joint)
                cert.spec["thresholds"] = dict(cert.spec["thresholds"], t_good=t_good,
                                               t_bad=t_bad)
            per_pd.append(flags)
            low_rows.append(low)
            domains[cert.pd] = domain
            golden_labels.append(labels)
        flags = pd.concat(per_pd, ignore_index=True)
        ls = _combine(flags)
        labels = pd.concat(golden_labels).drop_duplicates(["runId", "lumiId"])
        ls = ls.merge(labels, on=["runId", "lumiId"], how="left")
        ls["label"] = ls["label"].fillna(-1).astype(int)
        not_judged = sorted(sub for p in missing for sub in subsystems_of(p, mapping))
        if missing:  # pd=all without every certifier: no LS is GOOD for every subsystem
            log.warning("certify: %s %s no certifier in Production: %s not judged, so no LS is "
                        "certified GOOD (BAD flags and the grey list stand)",
                        ", ".join(missing), "has" if len(missing) == 1 else "have",
                        ", ".join(not_judged) or "their subsystems")
            ls.loc[ls["decision"] == GOOD, "decision"] = GREY
        summary = _summary(s, certifiers, flags, ls, domains, mapping)
        summary["not_judged"] = {p: sorted(subsystems_of(p, mapping)) for p in missing}
        if joint is not None:
            summary["joint_cutoff"] = joint.to_dict() | {
                "hardest": hardest.head(HARDEST_SHOWN).to_dict("records")}
        _write(staging, ls, flags, _grey_zone(flags, ls), pd.concat(low_rows, ignore_index=True),
               summary, hardest)
        single = len(certifiers) == 1
        exp = tr.ensure_experiment(tr.experiment_name(certifiers[0].pd) if single
                                   else tr.MULTI_PD_EXPERIMENT)
        name = run_name(STEP, pd="all" if len(certifiers) == 4 else "+".join(
            c.pd for c in certifiers), era=Path(s.data).name)
        with tr.tracked_run(exp, STEP, name, tags={tr.TAG_PD: s.pd, "dc_mlops.models": json.dumps(
                summary["models"])}) as run:
            tr.log_params({"pd": s.pd, "data": s.data, "force": s.force,
                           "min_events": s.min_events, "dcs_json": s.dcs_json,
                           "responsibility": s.responsibility})
            tr.log_metrics({k: v for k, v in summary["counts"].items()}
                           | {k: summary[k] for k in ("automation", "good_as_bad_rate",
                                                      "bad_as_good_rate", "contamination")
                              if isinstance(summary.get(k), float)})
            tr.log_artifacts(staging, "certification")
    return CertifyResult(Path(s.out), summary, run.info.run_id)


def certify_and_report(s: CertifySettings) -> CertifyResult:
    """The ``certify`` command: :func:`run_certify`, then its outcome on the console as the
    review notebook shows it (:func:`dc_mlops.certified_era.outcome_lines`: automation,
    counts, the rates against the era's Golden JSON when known, the models and cut-offs that
    decided, the domain check, anything wrong) and where the outputs are. ``main`` calls
    :func:`run_certify` and prints its own summary."""
    from dc_mlops.certified_era import load, outcome_lines

    result = run_certify(s)
    print("\n".join(outcome_lines(load(result.out))))
    grey = result.out / "grey_zone.csv"
    print(f"Outputs in {result.out} (certify run {result.run_id}). To review: fill the verdict "
          f"column of {grey}, then `dc-mlops review --verdicts {grey}`")
    return result


def _dcs_json(s: CertifySettings) -> CertJSON | None:
    if s.dcs_json:
        return read_certjson(s.dcs_json)
    folder = Path(s.data)
    if is_era_folder(folder) and (folder / ERA_FILES["dcsonly"]).is_file():
        return read_certjson(folder / ERA_FILES["dcsonly"])
    return None


def _joint_cutoff(certifiers: list[_Certifier]
                  ) -> tuple[JointCutoff | None, pd.DataFrame | None]:
    """The combined GOOD cut-off of several PDs certified together, from the failure LS of
    their histories (:mod:`dc_mlops.evaluation.combined`), and the failure blocks it rests
    on, least visible first (:func:`.combined.hardest_failures`); (None, None) when a
    certifier predates it (each PD's own ``t_good`` then decides)."""
    tables = {}
    for cert in certifiers:
        f = cert.spec.get("failure_p_values")
        if f is None:
            log.info("certify: the %s certifier carries no failure p-values; each PD's own "
                     "GOOD cut-off decides", cert.pd)
            return None, None
        tables[cert.pd] = pd.DataFrame(f)
    target = min(float(c.spec["cutoffs"]["max_bad_as_good"]) for c in certifiers)
    failures = joint_failures(tables)
    joint = joint_cutoff(failures["min_p"].to_numpy(), target, n_pds=len(certifiers),
                         blocks=failures["block"].to_numpy())
    if not joint.supported:
        log.warning("certify: %d known failure LS scored by every PD cannot support certifying "
                    "GOOD at bad->GOOD <= %g (%d needed): nothing is certified GOOD",
                    joint.n_failures, target, joint.bad_needed)
    return joint, hardest_failures(failures, joint.p_good)


def _cutoffs(cert: _Certifier, joint: JointCutoff | None) -> tuple[float, float]:
    """(t_good, t_bad) a PD decides with: its own, or its share of the combined rule when
    several PDs are certified together (:mod:`dc_mlops.evaluation.combined`)."""
    t = cert.spec["thresholds"]
    if joint is None:
        return t["t_good"], t["t_bad"]
    calib = np.asarray(cert.spec["calibration_scores"], dtype=np.float64)
    t_bad = joint_t_bad(calib, float(cert.spec["cutoffs"]["max_good_as_bad"]), joint.n_pds)
    return min(joint_t_good(calib, joint.p_good), t_bad), t_bad


#: what each condition column is, for an error that tells a DC expert where to find it
CONDITION_WORDS = {"pileup": "pile-up", "lumi": "instantaneous luminosity",
                   "t_fill": "time in fill, hours since stable beams, per LS (OMS)"}


def _check_conditions(s: CertifySettings, cert: _Certifier, frame: pd.DataFrame) -> None:
    """Every condition column the certifier was fitted on is in the era's LS, else one line
    naming the first missing one. A certifier fitted with the time in fill cannot score
    without it: its conditions fit would read another column in its place."""
    needed = spec_condition_columns(cert.spec)
    missing = [col for col in needed if col not in frame.columns]
    if missing:
        col = missing[0]
        raise DataError(f"{s.data}: the {cert.pd} certifier (v{cert.version}) was fitted on "
                        f"the conditions {', '.join(needed)}, and the era's LS have no "
                        f"{col!r} ({CONDITION_WORDS.get(col, col)}): give conditions_table a "
                        f"{col} column")


def _certify_pd(s: CertifySettings, cert: _Certifier, mapping: dict[str, str],
                dcs: CertJSON | None, joint: JointCutoff | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict, pd.DataFrame]:
    """One PD's flags (one row per LS and subsystem), its low-statistics LS, its domain
    report and the Golden labels of its LS (-1 when unknown). With ``joint`` (several PDs
    certified together) GOOD follows the combined cut-off instead of the PD's own."""
    spec = cert.spec
    table = load_ls_table(s.data, cert.pd, LabelOptions(golden_json=s.golden_json,
                                                        required=False),
                          spec["representation"], conditions_table=s.conditions_table,
                          # certifiers made before the option existed read folded histograms
                          under_overflow=spec.get("under_overflow", "fold"),
                          responsibility=mapping, min_events=s.min_events)
    frame = ls_order(table.frame)
    names = spec["feature_names"]
    X = feature_matrix(frame, names, s.data)
    column = spec.get("conditions", "none") or "none"
    _check_conditions(s, cert, frame)
    try:
        c = conditions_matrix(frame, column)
    except DataError:
        raise DataError(f"{s.data}: the {cert.pd} certifier needs the LS's "
                        f"{' and '.join(COLUMNS[column])}; give a conditions table "
                        "(conditions_table) with the era") from None
    low = frame["EventsPerLs"].to_numpy() < s.min_events
    runs, lss = frame["runId"].to_numpy(), frame["lumiId"].to_numpy()
    # DCS-bad LS (a detector was off) and low-statistics LS are decided without a model
    off = np.zeros(len(frame), bool) if dcs is None else ~dcs.contains(runs, lss)
    scores = _scores(cert.detector, X, c, runs, ~low & ~off)
    calib = np.asarray(spec["calibration_scores"], dtype=np.float64)
    t = spec["thresholds"]
    t_good, t_bad = _cutoffs(cert, joint)
    outside = None if c is None else cert.detector.conditions_outside(c)
    lone = lone_flags(t.get("t_lone"),
                      lambda: _scores(cert.detector, X, c, runs, ~low & ~off, context=False))
    decision = decide(scores, t_good, t_bad, outside, lone).astype(object)
    main_c = None if c is None else c.reshape(len(c), -1)[:, 0]  # pile-up (or lumi)
    ok = ~low & ~off
    domain = domain_report(X[ok], names, spec["feature_min"], spec["feature_max"],
                           scores[ok], calib, None if c is None else main_c[ok],
                           spec.get("conditions_range"))
    if not domain["in_domain"]:
        msg = "; ".join(domain["reasons"])
        if s.force:
            log.warning("certify %s: OUTSIDE the certifier's domain (%s); force=true: "
                        "deciding anyway", cert.pd, msg)
        else:
            log.warning("certify %s: OUTSIDE the certifier's domain (%s): this PD decides "
                        "nothing, neither GOOD nor BAD; its LS go to review (force=true "
                        "overrides)", cert.pd, msg)
            decision = withhold(decision).astype(object)
    decision[low] = LOW
    decision[off] = DCS
    subs = sorted(subsystems_of(cert.pd, mapping)) or [cert.pd]
    base = pd.DataFrame({"runId": runs, "lumiId": lss, "pd": cert.pd,
                         "decision": decision.astype(str), "score": scores,
                         "p_value": conformal_p_values(calib, scores),
                         "lone": np.ones(len(scores), bool) if lone is None else lone,
                         "model": spec.get("model", ""), "version": cert.version})
    base["top_histograms"] = _top_histograms(
        cert, X, c, runs, ~low & ~off, base["decision"].isin([GREY, BAD]).to_numpy())
    flags = pd.concat([base.assign(subsystem=sub) for sub in subs], ignore_index=True)
    low_ls = frame.loc[low, ["runId", "lumiId", "EventsPerLs"]].assign(pd=cert.pd)
    return flags, low_ls, domain, frame[["runId", "lumiId", "label"]]


def _scores(det, X: np.ndarray, c: np.ndarray | None, runs: np.ndarray, rows: np.ndarray,
            context: bool = True) -> np.ndarray:
    """Decision values of the LS ``rows`` (NaN elsewhere: low-statistics and DCS-bad LS are
    not judged, and with run context they take no part in their neighbours' context); each
    LS alone, without run context, with ``context`` False."""
    out = np.full(len(X), np.nan)
    if rows.any():
        out[rows] = det.score(X[rows], None if c is None else c[rows],
                              runs[rows] if det.context_ls else None, context=context)
    return out


def _top_histograms(cert: _Certifier, X: np.ndarray, c: np.ndarray | None, runs: np.ndarray,
                    judged: np.ndarray, mask: np.ndarray, batch: int = 16384) -> list[str]:
    """The histograms that contribute most to each masked LS's score ("" elsewhere).

    Contributions are summed per histogram batch by batch (an indicator-matrix product), so
    an era with 10^5 grey LS never holds its (n_LS, n_features) contribution matrix.
    """
    out = [""] * len(X)
    det = cert.detector
    if not mask.any() or not det.supports_explain:
        return out
    names = cert.spec["feature_names"]
    hists = list(dict.fromkeys(histogram_of(f) for f in names))
    member = np.zeros((len(names), len(hists)))
    member[np.arange(len(names)), [hists.index(histogram_of(f)) for f in names]] = 1.0
    for rows, contrib in _explanations(det, X, c, runs, judged, mask, batch):
        per_hist = contrib @ member
        total = per_hist.sum(axis=1, keepdims=True)
        share = per_hist / np.where(total > 0, total, 1.0)
        top = np.argsort(-share, axis=1)[:, :TOP_HISTOGRAMS]
        for k, (i, row) in enumerate(zip(rows, top)):
            out[i] = ", ".join(f"{hists[j]} ({share[k, j]:.0%})" for j in row)
    return out


def _explanations(det, X: np.ndarray, c: np.ndarray | None, runs: np.ndarray,
                  judged: np.ndarray, mask: np.ndarray, batch: int):
    """(masked rows, their per-feature contributions), a batch at a time. With run context
    an LS is explained among the judged LS of its run, so whole runs are explained together
    (about ``batch`` LS at a time) and only their masked LS are kept."""
    if not det.context_ls:
        idx = np.flatnonzero(mask)
        for start in range(0, len(idx), batch):
            rows = idx[start:start + batch]
            yield rows, det.explain(X[rows], None if c is None else c[rows])
        return
    todo = np.zeros(len(X), bool)
    for a, b in zip(*run_bounds(runs)):
        if mask[a:b].any():
            todo[a:b] = judged[a:b]
        if todo.sum() >= batch or (b == len(X) and todo.any()):
            rows = np.flatnonzero(todo)
            contrib = det.explain(X[rows], None if c is None else c[rows], runs[rows])
            keep = mask[rows]
            yield rows[keep], contrib[keep]
            todo[:] = False


def _combine(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per LS: the combined decision and the most anomalous p-value and score."""
    key = flags["runId"].to_numpy(np.int64) * 10_000_000 + flags["lumiId"].to_numpy(np.int64)
    keys, decision = combine(flags["decision"].to_numpy(), key)
    per = flags.assign(_k=key).groupby("_k").agg(p_value=("p_value", "min"),
                                                 score=("score", "max"))
    return pd.DataFrame({"runId": keys // 10_000_000, "lumiId": keys % 10_000_000,
                         "decision": decision, "p_value": per["p_value"].reindex(keys).to_numpy(),
                         "max_score": per["score"].reindex(keys).to_numpy()})


def _grey_zone(flags: pd.DataFrame, ls: pd.DataFrame) -> pd.DataFrame:
    """GREY LS for review, most anomalous first, with what each undecided PD points at."""
    grey = ls[ls["decision"] == GREY][["runId", "lumiId", "p_value"]]
    undecided = flags[flags["decision"] == GREY].drop_duplicates(["runId", "lumiId", "pd"])
    why = undecided.groupby(["runId", "lumiId"]).agg(
        pds=("pd", lambda x: ";".join(sorted(set(x)))),
        top_histograms=("top_histograms", lambda x: " | ".join(v for v in x if v)))
    subs = flags[flags["decision"] == GREY].groupby(["runId", "lumiId"])["subsystem"].agg(
        lambda x: ";".join(sorted(set(x))))
    out = grey.join(why, on=["runId", "lumiId"]).join(subs, on=["runId", "lumiId"])
    out = out.sort_values(["p_value", "runId", "lumiId"], kind="stable")
    out = out.rename(columns={"runId": "run", "lumiId": "ls", "subsystem": "subsystems"})
    out["verdict"] = ""
    return out[["run", "ls", "p_value", "pds", "subsystems", "top_histograms", "verdict"]]


def bad_ranges(flags: pd.DataFrame, ls: pd.DataFrame) -> pd.DataFrame:
    """BAD LS as ranges of consecutive LS per run, with who flagged them."""
    bad = ls[ls["decision"].isin([BAD, DCS])].sort_values(["runId", "lumiId"])
    if bad.empty:
        return pd.DataFrame(columns=["run", "first_ls", "last_ls", "n_ls", "reason",
                                     "subsystems", "pds"])
    who = flags[flags["decision"].isin([BAD, DCS])].groupby(["runId", "lumiId"]).agg(
        subsystems=("subsystem", lambda x: ";".join(sorted(set(x)))),
        pds=("pd", lambda x: ";".join(sorted(set(x)))))
    bad = bad.join(who, on=["runId", "lumiId"])
    r, l = bad["runId"].to_numpy(), bad["lumiId"].to_numpy()
    sig = (bad["decision"] + bad["subsystems"] + bad["pds"]).to_numpy()
    brk = np.flatnonzero((np.diff(r) != 0) | (np.diff(l) != 1) | (sig[1:] != sig[:-1])) + 1
    rows = []
    for seg in np.split(np.arange(len(bad)), brk):
        first = bad.iloc[seg[0]]
        rows.append({"run": int(first["runId"]), "first_ls": int(l[seg[0]]),
                     "last_ls": int(l[seg[-1]]), "n_ls": len(seg),
                     "reason": "DCS" if first["decision"] == DCS else "detector",
                     "subsystems": first["subsystems"], "pds": first["pds"]})
    return pd.DataFrame(rows)


def _summary(s: CertifySettings, certifiers: list[_Certifier], flags: pd.DataFrame,
             ls: pd.DataFrame, domains: dict, mapping: dict) -> dict:
    d = ls["decision"].to_numpy()
    judged = ~np.isin(d, [DCS, LOW])
    counts = {"ls_total": int(len(ls)), "ls_good": int((d == GOOD).sum()),
              "ls_bad": int((d == BAD).sum()), "ls_grey": int((d == GREY).sum()),
              "ls_low_statistics": int((d == LOW).sum()), "ls_dcs_bad": int((d == DCS).sum())}
    summary = {
        "pd": s.pd, "data": str(Path(s.data).resolve()),
        "counts": counts,
        "automation": float(np.mean(np.isin(d[judged], [GOOD, BAD]))) if judged.any() else 0.0,
        "in_domain": all(x["in_domain"] for x in domains.values()),
        "forced": bool(s.force),
        "models": [{"pd": c.pd, "name": c.spec.get("model", ""), "version": c.version,
                    "uri": c.uri, "thresholds": c.spec["thresholds"],
                    "cutoffs": c.spec.get("cutoffs", {})} for c in certifiers],
        "domain": domains,
        "responsibility": {p: sorted(subsystems_of(p, mapping)) for p in s.pd_list},
        "per_pd": {},
    }
    labels = ls["label"].to_numpy()
    if (labels[judged] >= 0).any():
        m = decision_metrics(d[judged], labels[judged], prefix="era")
        summary.update(good_as_bad_rate=m["era_good_as_bad_rate"],
                       bad_as_good_rate=m["era_bad_as_good_rate"],
                       contamination=m["era_contamination"],
                       correct_automation=m["era_correct_automation_rate"])
    for c in certifiers:
        f = flags[flags["pd"] == c.pd].drop_duplicates(["runId", "lumiId"])
        fd = f["decision"].to_numpy()
        keep = ~np.isin(fd, [DCS, LOW])
        summary["per_pd"][c.pd] = {
            "automation": float(np.mean(np.isin(fd[keep], [GOOD, BAD]))) if keep.any() else 0.0,
            "ls_good": int((fd == GOOD).sum()), "ls_bad": int((fd == BAD).sum()),
            "ls_grey": int((fd == GREY).sum()), "in_domain": domains[c.pd]["in_domain"]}
    return summary


def _json_safe(value):
    """NaN (an undefined rate) becomes null: summary.json stays valid JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write(folder: Path, ls: pd.DataFrame, flags: pd.DataFrame, grey: pd.DataFrame,
           low: pd.DataFrame, summary: dict, hardest: pd.DataFrame | None = None) -> None:
    good = ls[ls["decision"] == GOOD]
    CertJSON.from_lumisections(good["runId"], good["lumiId"]).write(
        folder / "certified_golden.json")
    bad_ranges(flags, ls).to_csv(folder / "bad_ls.csv", index=False)
    grey.to_csv(folder / "grey_zone.csv", index=False)
    flags.rename(columns={"runId": "run", "lumiId": "ls"}).to_parquet(folder / "flags.parquet",
                                                                      index=False)
    low.rename(columns={"runId": "run", "lumiId": "ls", "EventsPerLs": "events"}).to_csv(
        folder / "low_statistics.csv", index=False)
    if hardest is not None:  # what the combined GOOD cut-off rests on, least visible first
        hardest.to_csv(folder / HARDEST_FILE, index=False)
    (folder / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    shown = ls.assign(decision=ls["decision"].replace({DCS: BAD}))
    fig = plots.certify_plot(shown, f"certified {summary['pd']} ({Path(summary['data']).name})")
    fig.savefig(folder / "certification.png", dpi=110)
    plt.close(fig)
    for f in folder.iterdir():
        os.chmod(f, 0o644)

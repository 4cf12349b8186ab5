"""The ``certify`` step: the Production certifier of a PD decides every LS of a new era.

Writes into ``out`` (all at once: the files are built in a hidden folder beside it and moved
into place only when complete, so a failed or killed run leaves no ``out``):

* ``certified_golden.json``: the LS certified GOOD, in Golden-JSON format;
* ``bad_ls.csv``: the LS flagged BAD (run, ls, score);
* ``grey_zone.csv``: the LS for human review, with the histograms that contribute most;
* ``low_statistics.csv``: LS not certified for lack of events;
* ``summary.json``: counts, automation rate, the domain/drift check and, when a Golden JSON
  of the era is known, the agreement with it.

The same files are logged as artifacts of a ``certify`` run in the PD's experiment.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.data.lstable import LabelOptions, load_ls_table
from dc_mlops.data.tables import feature_matrix
from dc_mlops.errors import DataError
from dc_mlops.evaluation.drift import domain_report
from dc_mlops.evaluation.greyzone import BAD, GOOD, GREY, decision_metrics
from dc_mlops.settings import CertifySettings
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import conditions_of, load_model
from dc_mlops.tracking.registry import production_uri

log = logging.getLogger("dc_mlops")
STEP = "certify"
TOP_HISTOGRAMS = 3


@dataclass(frozen=True)
class CertifyResult:
    out: Path
    summary: dict
    run_id: str


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty; choose another `out`")


def run_certify(s: CertifySettings) -> CertifyResult:
    if not s.data:
        raise DataError("certify needs `data`: the era to certify (era folder, table or histograms)")
    out = Path(s.out)
    _check_out(out)
    uri = s.model_uri or production_uri(s.pd)
    try:
        model = load_model(uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a missing model
        raise DataError(f"cannot load the certifier {uri}: {str(exc).splitlines()[0]} "
                        "(run `promote` first, or give model_uri)") from None
    spec = model.unwrap_python_model().spec
    if not spec.get("thresholds"):
        raise DataError(f"{uri} has no cut-offs: certify needs a promoted certifier")
    if spec.get("pd") and spec["pd"] != s.pd:
        raise DataError(f"{uri} certifies PD {spec['pd']!r}, not {s.pd!r}")
    table = load_ls_table(s.data, s.pd, LabelOptions(golden_json=s.golden_json, required=False),
                          spec["representation"])
    frame = table.frame
    low = frame["EventsPerLs"].to_numpy() < s.min_events
    ls = frame[~low].reset_index(drop=True)
    X = feature_matrix(ls, spec["feature_names"], s.data)
    ls = ls.drop(columns=spec["feature_names"])  # from here on the matrix X is the features
    log.info("certify: scoring %d LS of %s with %s", len(ls), s.data, uri)
    # the pyfunc's own scoring, on the float32 matrix (no float64 DataFrame of the whole era)
    conditions = conditions_of(ls, spec)
    scored = model.unwrap_python_model().decide(X, conditions)
    ls["score"], ls["decision"] = scored["score"].to_numpy(), scored["decision"].to_numpy()
    domain = domain_report(X, spec["feature_names"], spec["feature_min"], spec["feature_max"],
                           ls["score"].to_numpy(), np.asarray(spec["calibration_scores"]))
    if not domain["in_domain"]:
        log.warning("WARNING: this era is OUTSIDE the certifier's domain: %.1f %% of LS leave "
                    "the trained feature ranges, score KS distance %.2f to calibration. "
                    "Treat the automatic decisions with care; retrain on recent data.",
                    100 * domain["share_ls_outside_ranges"],
                    domain["score_ks_distance_to_calibration"])
    summary = _summary(s, uri, spec, frame, ls, low, domain)
    grey = _grey_zone(model, ls, X, spec, conditions)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.partial-", dir=out.parent) as tmp:
        staging = Path(tmp) / "out"
        _write(staging, ls, grey, frame[low], summary)
        exp = tr.ensure_experiment(tr.experiment_name(s.pd))
        with tr.tracked_run(exp, STEP, f"certify-{Path(s.data).name}",
                            tags={tr.TAG_PD: s.pd, "dc_mlops.model_uri": uri}) as run:
            tr.log_params({"pd": s.pd, "data": s.data, "model_uri": uri,
                           "min_events": s.min_events})
            tr.log_metrics({k: v for k, v in summary["counts"].items()}
                           | {"automation_rate": summary["automation_rate"]})
            tr.log_artifacts(staging, "certification")
        _check_out(out)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    log.info("certify: %s", json.dumps(summary["counts"]))
    return CertifyResult(out, summary, run.info.run_id)


def _summary(s, uri, spec, frame, ls, low, domain) -> dict:
    d = ls["decision"].to_numpy()
    summary = {
        "pd": s.pd, "data": str(Path(s.data).resolve()), "model_uri": uri,
        "model": spec.get("model"),
        "thresholds": spec["thresholds"],
        "counts": {"ls_total": int(len(frame)), "ls_low_statistics": int(low.sum()),
                   "ls_good": int((d == GOOD).sum()), "ls_bad": int((d == BAD).sum()),
                   "ls_grey": int((d == GREY).sum())},
        "automation_rate": float(np.mean(d != GREY)) if len(d) else 0.0,
        "domain": domain,
    }
    labelled = ls["label"].to_numpy() >= 0
    if labelled.any():
        summary["agreement_with_golden"] = decision_metrics(d[labelled], ls["label"].to_numpy()[labelled],
                                                            "era")
    return summary


def _grey_zone(model, ls: pd.DataFrame, X: np.ndarray, spec: dict,
               conditions: np.ndarray | None, batch: int = 16384) -> pd.DataFrame:
    """Grey-zone LS with the histograms that contribute most to each score.

    Contributions are summed per histogram batch by batch (an indicator-matrix product), so
    an era with 10^5 grey LS never holds its (n_LS, n_features) contribution matrix.
    """
    mask = (ls["decision"] == GREY).to_numpy()
    grey = ls.loc[mask, ["runId", "lumiId", "score"]].rename(
        columns={"runId": "run", "lumiId": "ls"}).reset_index(drop=True)
    detector = model.unwrap_python_model().detector
    if not len(grey) or not detector.supports_explain:
        return grey
    names = spec["feature_names"]
    hists = list(dict.fromkeys(f.rsplit("_", 1)[0] for f in names))
    member = np.zeros((len(names), len(hists)))
    member[np.arange(len(names)), [hists.index(f.rsplit("_", 1)[0]) for f in names]] = 1.0
    X = X[mask]
    c = None if conditions is None else conditions[mask]
    labels = []
    for start in range(0, len(X), batch):
        part = None if c is None else c[start:start + batch]
        per_hist = detector.explain(X[start:start + batch], part) @ member
        share = per_hist / np.where(per_hist.sum(axis=1, keepdims=True) > 0,
                                    per_hist.sum(axis=1, keepdims=True), 1.0)
        top = np.argsort(-share, axis=1)[:, :TOP_HISTOGRAMS]
        labels += [", ".join(f"{hists[j]} ({share[i, j]:.0%})" for j in row)
                   for i, row in enumerate(top)]
    grey["top_histograms"] = labels
    return grey


def _write(folder: Path, ls: pd.DataFrame, grey: pd.DataFrame, low: pd.DataFrame,
           summary: dict) -> None:
    folder.mkdir(parents=True)
    good = ls[ls["decision"] == GOOD]
    CertJSON.from_lumisections(good["runId"], good["lumiId"]).write(folder / "certified_golden.json")
    bad = ls[ls["decision"] == BAD][["runId", "lumiId", "score"]]
    bad.rename(columns={"runId": "run", "lumiId": "ls"}).to_csv(folder / "bad_ls.csv", index=False)
    grey.to_csv(folder / "grey_zone.csv", index=False)
    low[["runId", "lumiId", "EventsPerLs"]].rename(columns={"runId": "run", "lumiId": "ls"}).to_csv(
        folder / "low_statistics.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float))


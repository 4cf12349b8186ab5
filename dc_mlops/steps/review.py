"""The ``review`` step: a DC expert's verdicts on grey-zone LS feed back into the certifiers
(SPEC §4.4).

Input: the ``grey_zone.csv`` of a certification, in its certification folder (beside
``flags.parquet`` and ``summary.json``), with its ``verdict`` column filled in: ``GOOD`` or
``BAD`` per reviewed LS, empty for LS not reviewed. An optional ``subsystems`` column on a
BAD verdict names the subsystems at fault (``;``-separated); otherwise a BAD verdict counts
for every PD that did not certify the LS GOOD. Rows for other LS of the certification (for
example BAD-flagged LS the expert checked) may be added; they are used the same way.

What it does, per PD whose certifier decided that certification and is still in Production:

* the LS the certifier certified GOOD and the verified good LS join its calibration LS, so
  ``t_bad`` follows the newest runs (with the selection-bias correction of
  :func:`dc_mlops.evaluation.greyzone.refresh_cutoffs`): a certifier calibrated on an
  older window adapts to the new era and its grey zone shrinks;
* verified bad LS tighten ``t_good``: it never stays above a bad LS an expert found (they
  cannot loosen it: bad LS certified GOOD are never shown to the expert, so those found in a
  review are not a fair sample of bad LS; the fully labelled runs of the next training
  window are);
* the certifier with its new cut-offs is registered as a new version and made Production
  (under the registry lock, only if Production is still the version that decided).

The verdicts are kept as labels: ``verdicts.csv`` and ``reviewed_golden.json`` (the LS
certified GOOD plus those verified GOOD, minus those verified BAD) on the review run, ready to
be the Golden JSON of the next training window.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dc_mlops.data.certjson import CertJSON
from dc_mlops.errors import DataError
from dc_mlops.evaluation.greyzone import BAD, GOOD, GREY, decide, refresh_cutoffs
from dc_mlops.settings import PDS, ReviewSettings
from dc_mlops.steps.evaluate import MAX_CALIBRATION_SCORES
from dc_mlops.tracking import registry as reg
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.models import example_from_spec, load_detector_and_spec, log_detector_model

log = logging.getLogger("dc_mlops")
STEP = "review"
VERDICTS = (GOOD, BAD)


@dataclass(frozen=True)
class ReviewResult:
    run_id: str
    n_good: int
    n_bad: int
    versions: dict[str, str]  # PD -> new Production version (PDs whose cut-offs moved)
    cutoffs: dict[str, dict]  # PD -> {"before": {...}, "after": {...}}


def read_verdicts(path: Path) -> pd.DataFrame:
    """The reviewed rows of a grey-zone file: run, ls, verdict (GOOD/BAD), subsystems."""
    if not path.is_file():
        raise DataError(f"{path}: verdict file not found")
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype={"verdict": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    for col in ("run", "ls", "verdict"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r} (a grey_zone.csv with its "
                            "verdict column filled in)")
    v = df["verdict"].astype(str).str.strip().str.upper()
    bad = ~v.isin(VERDICTS + ("",))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: row {row + 2}: verdict {df['verdict'].iat[row]!r} is not "
                        "GOOD, BAD or empty")
    for col in ("run", "ls"):
        values = pd.to_numeric(df[col], errors="coerce")
        wrong = values.isna() | (values != values.round()) | (values < 0)
        if wrong.any():
            row = int(np.flatnonzero(wrong.to_numpy())[0])
            raise DataError(f"{path}: row {row + 2}: column {col!r} is not a run/LS number")
    out = pd.DataFrame({"runId": df["run"].astype(np.int64), "lumiId": df["ls"].astype(np.int64),
                        "verdict": v, "subsystems": df.get("subsystems", "")})
    out = out[out["verdict"] != ""]
    dup = out.duplicated(["runId", "lumiId"])
    if dup.any():
        r = out[dup].iloc[0]
        raise DataError(f"{path}: LS (run {r.runId}, LS {r.lumiId}) has two verdicts")
    if out.empty:
        raise DataError(f"{path}: no verdict given (fill the verdict column with GOOD or BAD)")
    return out.reset_index(drop=True)


def run_review(s: ReviewSettings) -> ReviewResult:
    if not s.verdicts:
        raise DataError("review needs `verdicts`: a grey_zone.csv with its verdict column "
                        "filled in")
    path = Path(s.verdicts)
    verdicts = read_verdicts(path)
    folder = path.parent
    for name in ("flags.parquet", "summary.json"):
        if not (folder / name).is_file():
            raise DataError(f"{path}: no {name} beside it; review reads the verdicts inside "
                            "their certification folder")
    flags = pd.read_parquet(folder / "flags.parquet").rename(columns={"run": "runId",
                                                                      "ls": "lumiId"})
    summary = json.loads((folder / "summary.json").read_text())
    known = flags[["runId", "lumiId"]].drop_duplicates()
    missing = verdicts.merge(known, how="left", indicator=True)["_merge"] == "left_only"
    if missing.any():
        r = verdicts[missing.to_numpy()].iloc[0]
        raise DataError(f"{path}: LS (run {r.runId}, LS {r.lumiId}) was not certified in "
                        f"{folder}")
    wanted = set(PDS) if s.pd == "all" else {p.strip() for p in s.pd.split(",")}
    models = [m for m in summary["models"] if m["pd"] in wanted]
    if not models:
        raise DataError(f"{folder}: no certifier of PD {s.pd} decided this certification")
    updates = {m["pd"]: _update(m, flags, verdicts, summary) for m in models}
    experiment = (tr.experiment_name(models[0]["pd"]) if len(models) == 1
                  else tr.MULTI_PD_EXPERIMENT)
    exp = tr.ensure_experiment(experiment)
    versions, cutoffs = {}, {}
    with tr.tracked_run(exp, STEP, f"review {path.parent.name}",
                        tags={tr.TAG_PD: s.pd, "dc_mlops.certification": str(folder)}) as run:
        tr.log_params({"verdicts": str(path), "pd": s.pd, "n_good": int(
            (verdicts["verdict"] == GOOD).sum()), "n_bad": int((verdicts["verdict"] == BAD).sum())})
        tr.log_frame(verdicts.rename(columns={"runId": "run", "lumiId": "ls"}), "",
                     "verdicts.csv", fmt="csv")
        tr.log_text(_reviewed_golden(flags, verdicts).to_text(), "reviewed_golden.json")
        for pd_name, up in updates.items():
            if up is None:
                continue
            version = _register(pd_name, up, run.info.run_id)
            cutoffs[pd_name] = {"before": up["before"], "after": up["spec"]["thresholds"]}
            tr.log_metrics({f"{pd_name}.t_good_before": up["before"]["t_good"],
                            f"{pd_name}.t_good_after": up["spec"]["thresholds"]["t_good"],
                            f"{pd_name}.t_bad_before": up["before"]["t_bad"],
                            f"{pd_name}.t_bad_after": up["spec"]["thresholds"]["t_bad"],
                            f"{pd_name}.grey_before": up["grey_before"],
                            f"{pd_name}.grey_after": up["grey_after"]})
            if version:
                versions[pd_name] = version
    for pd_name, c in cutoffs.items():
        log.info("review %s: t_good %.4g -> %.4g, t_bad %.4g -> %.4g; Production is version %s",
                 pd_name, c["before"]["t_good"], c["after"]["t_good"], c["before"]["t_bad"],
                 c["after"]["t_bad"], versions.get(pd_name, "unchanged"))
    return ReviewResult(run.info.run_id, int((verdicts["verdict"] == GOOD).sum()),
                        int((verdicts["verdict"] == BAD).sum()), versions, cutoffs)


def _update(model: dict, flags: pd.DataFrame, verdicts: pd.DataFrame, summary: dict
            ) -> dict | None:
    """The PD's certifier with cut-offs refreshed by the verdicts, or None when the version
    that decided is no longer Production."""
    pd_name = model["pd"]
    name = reg.certifier_name(pd_name)
    current = reg.production_version(name)
    if current is None or str(current.version) != str(model["version"]):
        log.warning("review %s: Production is no longer version %s (it decided this "
                    "certification); the verdicts are logged, the cut-offs are not changed",
                    pd_name, model["version"])
        return None
    mine = set(summary.get("responsibility", {}).get(pd_name, [])) or {pd_name}
    f = flags[flags["pd"] == pd_name].drop_duplicates(["runId", "lumiId"])
    j = f.merge(verdicts, on=["runId", "lumiId"], how="left")
    v = j["verdict"].fillna("").to_numpy()
    subs = j["subsystems"].fillna("").astype(str).to_numpy()
    d = j["decision"].to_numpy()
    score = j["score"].to_numpy(np.float64)
    mine_bad = np.array([not s or bool(mine & set(s.split(";"))) for s in subs])
    verified_bad = (v == BAD) & mine_bad
    new_good = ((d == GOOD) & (v != BAD)) | (v == GOOD)
    flagged = (d == BAD) & (v == "")
    detector, spec = load_detector_and_spec(reg.version_uri(current))
    t = spec["thresholds"]
    found_bad = np.concatenate([spec.get("verified_bad_scores", []), score[verified_bad]])
    cut, calib = refresh_cutoffs(spec["calibration_scores"], spec.get("known_bad_scores", []),
                                 score[new_good], score[flagged], found_bad,
                                 spec["cutoffs"]["max_good_as_bad"],
                                 spec["cutoffs"]["max_bad_as_good"],
                                 known_bad_blocks=_blocks(spec))
    calib = np.sort(calib)
    if len(calib) > MAX_CALIBRATION_SCORES:
        calib = calib[np.linspace(0, len(calib) - 1, MAX_CALIBRATION_SCORES).astype(int)]
    live = np.isin(d, [GOOD, GREY, BAD])
    # certifications made before the lone rule have no column: no veto
    lone = j["lone"].to_numpy(bool) if "lone" in j else np.ones(len(j), bool)

    def grey(t_good: float, t_bad: float) -> float:
        return float(np.mean(decide(score[live], t_good, t_bad, lone=lone[live]) == GREY)) \
            if live.any() else 0.0
    before, after = grey(t["t_good"], t["t_bad"]), grey(cut.t_good, cut.t_bad)
    spec = dict(spec)
    spec.update(thresholds={**t, "t_good": cut.t_good, "t_bad": cut.t_bad}, cutoffs=cut.to_dict(),
                calibration_scores=calib.tolist(),
                verified_bad_scores=np.sort(found_bad).tolist(),
                reviews=int(spec.get("reviews", 0)) + 1)
    return {"detector": detector, "spec": spec, "from_version": str(current.version),
            "before": dict(t), "grey_before": before, "grey_after": after,
            "n_verified_good": int((v == GOOD).sum()), "n_verified_bad": int(verified_bad.sum())}


def _blocks(spec: dict) -> np.ndarray | None:
    """The failure episode of each known bad LS of a certifier's spec; None for certifiers
    made before episodes were counted (their LS count as independent)."""
    b = spec.get("known_bad_blocks")
    return np.asarray(b) if b and len(b) == len(spec.get("known_bad_scores", [])) else None


def _register(pd_name: str, up: dict, review_run: str) -> str | None:
    name = reg.certifier_name(pd_name)
    spec = up["spec"]
    example = example_from_spec(spec)
    with reg.promotion_lock(name):
        current = reg.production_version(name)
        if current is None or str(current.version) != up["from_version"]:
            log.warning("review %s: Production moved while reviewing; cut-offs not changed",
                        pd_name)
            return None
        uri = log_detector_model(up["detector"], spec, example, name=f"certifier-{pd_name}")
        tags = dict(current.tags) | {
            "dc_mlops.reviewed_from": up["from_version"], "dc_mlops.review_run": review_run,
            "dc_mlops.t_good": f"{spec['thresholds']['t_good']:.6g}",
            "dc_mlops.t_bad": f"{spec['thresholds']['t_bad']:.6g}",
            "dc_mlops.reason": f"review: +{up['n_verified_good']} verified good, "
                               f"+{up['n_verified_bad']} verified bad LS"}
        mv = reg.register(uri, name, tags, f"version {up['from_version']} with cut-offs "
                                           f"refreshed by review run {review_run}")
        reg.make_production(name, str(mv.version))
    return str(mv.version)


def _reviewed_golden(flags: pd.DataFrame, verdicts: pd.DataFrame) -> CertJSON:
    """Certified GOOD LS plus verified GOOD, minus verified BAD: the labels for retraining."""
    from dc_mlops.evaluation.greyzone import combine
    key = flags["runId"].to_numpy(np.int64) * 10_000_000 + flags["lumiId"].to_numpy(np.int64)
    keys, decision = combine(flags["decision"].to_numpy(), key)
    v = dict(zip(verdicts["runId"] * 10_000_000 + verdicts["lumiId"], verdicts["verdict"]))
    good = np.array([v.get(k, d) == GOOD for k, d in zip(keys.tolist(), decision)])
    return CertJSON.from_lumisections(keys[good] // 10_000_000, keys[good] % 10_000_000)

"""The feature registry: which monitoring elements (histograms) make up each PD.

The four built-in sets are feature set 2 of the original study (SPEC §2.1). Users can name
their own set in a small YAML/JSON file (``{"name": ..., "histograms": [...]}``) or ask for
"all histograms present in the data" with ``pd="auto"``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dc_mlops.errors import DataError

#: events per LS below which an LS is not certified (low statistics): the one 500-event cut,
#: used by preprocess, certify and the simulator alike
MIN_EVENTS = 500
N_SUMMARY = 7
SUMMARY_QUANTILES = (0.10, 0.30, 0.50, 0.70, 0.90)
LEGACY_2016_QUANTILES = (0.0, 0.25, 0.50, 0.75, 1.0)
ID_COLUMNS = ("runId", "lumiId", "lumi", "EventsPerLs")

_COMMON = ["qpVtxChi2", "qpVtxNtr", "qpVtxX", "qpVtxY", "qpVtxZ", "qPUEvt", "qlumiEvt"]

BUILTIN_SETS: dict[str, tuple[str, ...]] = {
    "ZeroBias": tuple(_COMMON + [
        "qgTkPt", "qgTkEta", "qgTkPhi", "qgTkN", "qgTkChi2", "qgTkNHits", "qgTkNLay",
    ]),
    "JetHT": tuple(_COMMON + [
        "qPFJetN", "qPFJetPt", "qPFJetPhi", "qPFJetEta", "qPFMetPt", "qPFMetPhi",
        "qCalJetN", "qCalJetPt", "qCalJetEta", "qCalJetPhi", "qCalJetEn", "qCalMETPt",
        "qCalMETPhi", "qCCEn", "qCCEta", "qCCPhi", "qSCEn", "qSCEta", "qSCPhi",
    ]),
    "EGamma": tuple(_COMMON + [
        "qGsfPt", "qGsfEta", "qGsfPhi", "qGsfN", "qPhoN", "qgedPhoPt", "qgedPhoEta",
        "qgedPhoPhi", "qgedPhoEn", "qgedPhoe1x5", "qgedPhoe3x3", "qSigmaIEta", "qSigmaIPhi",
        "qr9", "qHadOEm", "qdrSumPt", "qdrSumEt", "qeSCOP", "qecEn", "qgedPhoe2x5",
        "qgedPhoe5x5", "qgedPhor9",
    ]),
    "SingleMuon": tuple(_COMMON + [
        "qglobTkN", "qglobTkPt", "qglobTkEta", "qglobTkPhi", "qglobTkChi2", "qglobTkNHits",
        "qMuN", "qMuNCh", "qMuPt", "qMuEta", "qMuPhi", "qMuEn", "qMuChi2",
    ]),
}


#: histograms of the luminous region's position (primary-vertex x, y, z): where they sit is
#: the LHC beam spot, a run condition (SPEC §2.5: a beam-spot move is never a failure)
POSITION_HISTOGRAMS = ("qpVtxX", "qpVtxY", "qpVtxZ")
#: index of the median in the 7-number summary (10/30/50/70/90 % quantiles, mean, RMS)
MEDIAN_INDEX = 2


def relative_to_beam_spot(frame, names: list[str]) -> list[str]:
    """Make the summaries of the vertex-position histograms relative to the beam spot, in
    place: their quantiles and mean minus their median, the median itself 0. Returns the
    features changed.

    Why: the beam spot walks by millimetres in z within a fill and by tens of microns in
    x/y between fills and eras (magnet movements, orbit corrections); per LS the vertex
    position is known to a fraction of a micron, so a detector fed absolute positions flags
    every LS of a long fill or a new beam position as hundreds of spreads off (on simulated
    2018D: 6 % of the good LS of new runs BAD, nearly all through qpVtxZ/qpVtxX/qpVtxY). What
    can go wrong with the tracker or the vertexing shows in the shape around the beam spot
    (a misalignment widens and skews it), which this keeps: widths, tails, mean-median.
    The LS's own median is its beam-spot estimate, as the online beam-spot fit is."""
    changed = []
    present = set(names)
    for h in POSITION_HISTOGRAMS:
        cols = [f"{h}_{i}" for i in range(N_SUMMARY)]
        if not set(cols) <= present:
            continue
        centre = frame[cols[MEDIAN_INDEX]].to_numpy(np.float64).copy()
        for i in (0, 1, 3, 4, 5):  # quantiles and mean; the RMS (6) is a width already
            frame[cols[i]] = frame[cols[i]].to_numpy(np.float64) - centre
        frame[cols[MEDIAN_INDEX]] = 0.0
        changed += [c for i, c in enumerate(cols) if i != N_SUMMARY - 1]
    return changed


def histogram_of(feature: str) -> str:
    """The histogram a feature column belongs to (``qgTkPt_3`` -> ``qgTkPt``, ``qgTkPt_b12``
    -> ``qgTkPt``): the one rule, for both representations."""
    return feature.rsplit("_", 1)[0]


def canonical_name(name: str) -> str:
    """Real files sometimes spell a monitoring element with a trailing underscore."""
    return name[:-1] if name.endswith("_") else name


@dataclass(frozen=True)
class FeatureSet:
    """An ordered list of histograms; feature ``<hist>_<i>`` is summary number i of hist."""

    name: str
    histograms: tuple[str, ...]

    def feature_names(self, representation: str = "summary", n_bins: dict[str, int] | None = None
                      ) -> list[str]:
        if representation == "summary":
            return [f"{h}_{i}" for h in self.histograms for i in range(N_SUMMARY)]
        if representation == "bins":
            if n_bins is None:
                raise ValueError("the bins representation needs the bin count of each histogram")
            return [f"{h}_b{i}" for h in self.histograms for i in range(n_bins[h])]
        raise DataError(f"unknown representation {representation!r}: use 'summary' or 'bins'")


def get_feature_set(pd: str, available: list[str] | None = None) -> FeatureSet:
    """Resolve a PD name, a YAML/JSON file, or ``auto`` to a :class:`FeatureSet`.

    ``available`` is the list of histograms present in the data, needed for ``auto``.
    """
    if pd in BUILTIN_SETS:
        return FeatureSet(pd, BUILTIN_SETS[pd])
    if pd == "auto":
        if not available:
            raise DataError("pd=auto needs data with at least one histogram")
        return FeatureSet("auto", tuple(sorted({canonical_name(h) for h in available})))
    path = Path(pd)
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        return _load_user_set(path)
    known = ", ".join(sorted(BUILTIN_SETS))
    raise DataError(f"unknown PD {pd!r}: use one of {known}, 'auto', or a YAML/JSON feature-set file")


def _load_user_set(path: Path) -> FeatureSet:
    if not path.is_file():
        raise DataError(f"{path}: feature-set file not found")
    try:
        text = path.read_text()
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if isinstance(spec, list):
        spec = {"name": path.stem, "histograms": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("histograms"), list) \
            or not spec["histograms"] or not all(isinstance(h, str) for h in spec["histograms"]):
        raise DataError(f"{path}: key 'histograms' must be a non-empty list of names")
    names = [canonical_name(h) for h in spec["histograms"]]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: histogram {dupes[0]!r} is listed twice")
    return FeatureSet(str(spec.get("name", path.stem)), tuple(names))

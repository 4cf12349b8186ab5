"""Which PD certifies which subsystem (SPEC §2.5): the one place the map lives.

A DC expert certifies the tracker and pixels from ZeroBias (unbiased tracks), muons from
SingleMuon, ECAL from EGamma, HCAL and jets/MET from JetHT. A PD's detector is judged on the
flagged failures of its own subsystems: a muon chamber off is not a JetHT failure to miss.
Users change the map with a small YAML file ``{SUBSYSTEM: PD}``; the entries it names
replace the default's, the others stay.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dc_mlops.data.features import BUILTIN_SETS
from dc_mlops.errors import DataError

DEFAULT_MAP: dict[str, str] = {"TRACKER": "ZeroBias", "PIXEL": "ZeroBias", "MUON": "SingleMuon",
                               "ECAL": "EGamma", "HCAL": "JetHT", "JETMET": "JetHT"}
#: bad LS of these origins/scenarios are never a detector's to find: the detector was off
#: (DCS) or the LS has too few events to judge (low statistics)
NOT_JUDGED_ORIGINS = ("dcs", "low_stats")
NOT_JUDGED_SCENARIOS = ("low_stats",)


def load_responsibility(path: str = "") -> dict[str, str]:
    """The default map, with the entries of a YAML override ``{SUBSYSTEM: PD}`` on top."""
    if not path:
        return dict(DEFAULT_MAP)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: responsibility map not found")
    try:
        spec = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict) or not spec:
        raise DataError(f"{p}: must be a mapping {{SUBSYSTEM: PD}}, e.g. 'PIXEL: ZeroBias'")
    out = dict(DEFAULT_MAP)
    for sub, pd_name in spec.items():
        if not isinstance(sub, str) or not sub.strip():
            raise DataError(f"{p}: key {sub!r} is not a subsystem name")
        if pd_name not in BUILTIN_SETS:
            raise DataError(f"{p}: subsystem {sub!r} maps to {pd_name!r}, not a known PD "
                            f"(use one of {', '.join(BUILTIN_SETS)})")
        out[sub.strip().upper()] = pd_name
    return out


def subsystems_of(pd: str, mapping: dict[str, str]) -> set[str]:
    """The subsystems a PD certifies under ``mapping``."""
    return {sub for sub, p in mapping.items() if p == pd}


def judged_bad(label, subsystem, origin, scenario, pd: str, mapping: dict[str, str]
               ) -> np.ndarray:
    """True for the bad LS a PD's detector is judged on (preamble, SPEC §4.2).

    Bad LS whose subsystem the PD certifies, or whose subsystem is unknown (empty, or a
    human flag without one); every bad LS when ``pd`` is not a built-in PD (a custom
    feature set certifies whatever it monitors); never DCS-bad or low-statistics LS.
    ``scenario`` is accepted for symmetry with the LS table and marks low statistics too.
    """
    label = np.asarray(label)
    sub = np.asarray(subsystem, dtype=object).astype(str)
    sub = np.char.upper(np.char.strip(sub.astype(str)))
    origin = np.asarray(origin, dtype=object).astype(str)
    scenario = np.asarray(scenario, dtype=object).astype(str)
    bad = label == 1
    excluded = np.isin(origin, NOT_JUDGED_ORIGINS) | np.isin(scenario, NOT_JUDGED_SCENARIOS)
    if pd not in BUILTIN_SETS:
        return bad & ~excluded
    mine = np.isin(sub, sorted(subsystems_of(pd, mapping))) | ~np.isin(sub, sorted(mapping))
    return bad & ~excluded & mine

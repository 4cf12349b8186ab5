"""Which PD certifies which subsystem (SPEC §2.5): the one subsystem -> PD map.

Each subsystem is certified from the PD whose objects it maps to; a PD's detector is judged
on the failures of its subsystems only, and ``certify pd=all`` combines the PDs' decisions
through this map. Users override it with a small YAML ``{SUBSYSTEM: PD}``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dc_mlops.errors import DataError

DEFAULT_MAP: dict[str, str] = {"TRACKER": "ZeroBias", "PIXEL": "ZeroBias",
                               "MUON": "SingleMuon", "ECAL": "EGamma", "HCAL": "JetHT",
                               "JETMET": "JetHT"}
#: bad LS of these origins are never a detector's to judge: DCS already flagged them
NOT_JUDGED_ORIGINS = ("dcs",)
NOT_JUDGED_SCENARIOS = ("low_stats",)


def load_responsibility(path: str = "") -> dict[str, str]:
    """The default map, or the user's YAML ``{SUBSYSTEM: PD}`` (replacing it entirely)."""
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
        raise DataError(f"{p}: must map subsystems to PDs, e.g. {{TRACKER: ZeroBias}}")
    from dc_mlops.settings import PDS
    for sub, pd_name in spec.items():
        if pd_name not in PDS:
            raise DataError(f"{p}: subsystem {sub!r} maps to {pd_name!r}, not one of "
                            f"{', '.join(PDS)}")
    return {str(k).upper(): str(v) for k, v in spec.items()}


def subsystems_of(pd_name: str, mapping: dict[str, str]) -> set[str]:
    return {sub for sub, p in mapping.items() if p == pd_name}


def judged_bad(label, subsystem, origin, scenario, pd_name: str, mapping: dict[str, str]
               ) -> np.ndarray:
    """Bad LS the PD's detector answers for: its subsystems', or any bad LS whose subsystem
    no PD claims; every bad LS for a PD outside the map (a custom feature set); never
    DCS-bad or low-statistics LS."""
    label = np.asarray(label)
    sub = np.asarray(subsystem).astype(str)
    bad = (label == 1) & ~np.isin(np.asarray(origin).astype(str), NOT_JUDGED_ORIGINS) \
        & ~np.isin(np.asarray(scenario).astype(str), NOT_JUDGED_SCENARIOS)
    if pd_name not in set(mapping.values()):
        return bad
    mine = subsystems_of(pd_name, mapping)
    return bad & (np.isin(sub, list(mine)) | ~np.isin(sub, list(mapping)))

"""Eras and the per-LS detector/beam conditions that histogram shapes are drawn from.

Why a separate module: the conditions are the one place where "2018A looks different from
2018D" is decided. A model trained on early eras must meet a *plausible* shift on a later
era (SPEC §4 era drift), so every era carries its own beam-spot position, pile-up level
and small calibration/ageing offsets, and :func:`ls_conditions` adds the slow drifts that
happen inside a fill (beam-spot z walk, ECAL crystal transparency loss, alignment
breathing with temperature) on top.

How the sizes compare with real 2018 data, and where the numbers come from (checked
2026-11 against public CMS/LHC material; where no public number was found, it says so):

* Beam-spot x/y: CMS DP-2022/034 ("Position of the LHC beam spot in the CMS interaction
  point", twiki CMSPublic/BeamSpotPositionTrend2022) shows monthly averages from per-LS
  fits: x/y move by tens of microns within a year from magnet movements, and y was moved
  by 1.5 mm (end of 2016) and 0.3 mm (end of 2017) with correctors. The per-era values
  below (x from 965 to 944 um, steps of 7-14 um between eras; y within 23 um) are of that
  size; the
  exact 2018A-D averages could not be read off the public figure here, so they are
  plausible values, not a reproduction.
* Beam-spot z and luminous length (3.4-3.65 cm): typical Run-2 values; no public 2018
  per-era table was found, so these are illustrative.
* Luminosity and pile-up: the CERN LHC report of May 2018 gives peak luminosity ~2.1e34
  cm^-2 s^-1 (ERAS peak_lumi up to 19.5e33 times the fill's spread) and the bunch-number
  steps 1200...2556 (structure.BUNCH_SCHEMES). The mean pile-up (~35-40 in 2018) follows
  from L * sigma_inel / (n_bunches * f_rev) with sigma_inel = 69.2 mb (CMS, JHEP07(2018)161
  measures 68.6 +- 1.6 mb for its fiducial definition); no public per-era pile-up table was
  consulted.
* ECAL response: CMS DP-2012/027 and DPS-2015/063 (twiki CMSPublic/EcalDPGResults...)
  show laser-monitored response losses of a few per cent in the barrel over a year, up to
  ~30 % at |eta| ~ 2.5, with fill-scale (hours) loss and recovery. The simulator uses a
  0.6 % in-fill loss (barrel-like; the endcap eta dependence is not modelled) and a 1.5 %
  drop from 2018A to 2018D.
* HCAL response (2.5 % over the year), hit-efficiency ageing and the +-1 % alignment
  breathing: no public 2018 number was found; they are plausible per-cent-level values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc_mlops.errors import DataError

LS_SECONDS = 23.31  # one lumisection: 2^18 LHC orbits
LS_PER_HOUR = 3600.0 / LS_SECONDS
SIGMA_INEL_CM2 = 69.2e-27  # pp inelastic cross-section at 13 TeV
F_REV_HZ = 11245.0  # LHC revolution frequency
LUMI_UNIT = 1e33  # lumi column unit: 10^33 cm^-2 s^-1 (= 1 Hz/nb)


@dataclass(frozen=True)
class Era:
    """One data-taking era: its real run-number range and its conditions.

    ``ls_share`` is the share of the year's LS recorded in the era (2018 Golden: roughly
    A 23 %, B 12 %, C 12 %, D 53 %). Calibration numbers are multiplicative scales
    relative to 2018A; they are small (per cent level), as real re-calibrations are.
    """

    name: str
    first_run: int
    last_run: int
    first_fill: int
    ls_share: float
    peak_lumi: float  # typical fill peak, 1e33 cm^-2 s^-1
    bs_x: float  # beam-spot position, cm
    bs_y: float
    bs_z: float
    bs_sigma_z: float  # luminous-region length, cm
    hit_eff: float  # strip/pixel hit efficiency scale (ageing)
    align_chi2: float  # track/vertex chi2 scale (alignment quality)
    ecal_scale: float  # ECAL response (crystal transparency, before in-fill loss)
    hcal_scale: float  # HCAL response (HE ageing)


ERAS: dict[str, Era] = {
    "2018A": Era("2018A", 315252, 316995, 6570, 0.23, 17.0, 0.0965, -0.0610, 0.35, 3.65,
                 1.000, 1.00, 1.000, 1.000),
    "2018B": Era("2018B", 316998, 319312, 6740, 0.12, 17.8, 0.0972, -0.0602, 0.10, 3.55,
                 0.997, 1.03, 0.996, 0.992),
    "2018C": Era("2018C", 319313, 320393, 6900, 0.12, 18.5, 0.0958, -0.0618, -0.20, 3.50,
                 0.994, 0.99, 0.992, 0.986),
    "2018D": Era("2018D", 320394, 325273, 6990, 0.53, 19.5, 0.0944, -0.0625, -0.45, 3.40,
                 0.990, 1.06, 0.985, 0.975),
}
DEFAULT_ERAS = list(ERAS)


def check_eras(eras: list[str] | None) -> list[str]:
    """Validate and order the requested eras (chronologically, duplicates removed)."""
    if eras is None:
        return list(DEFAULT_ERAS)
    if isinstance(eras, str):
        eras = [eras]
    unknown = [e for e in eras if e not in ERAS]
    if unknown:
        raise DataError(f"unknown era {unknown[0]!r}: use one of {', '.join(ERAS)}")
    if not eras:
        raise DataError("no era requested: use one or more of " + ", ".join(ERAS))
    return [e for e in ERAS if e in set(eras)]


def era_of_runs(runs: np.ndarray) -> np.ndarray:
    """Era name of each run from the real run-number ranges ('' outside every era)."""
    runs = np.asarray(runs, np.int64)
    out = np.full(len(runs), "", dtype=object)
    for era in ERAS.values():
        out[(runs >= era.first_run) & (runs <= era.last_run)] = era.name
    return out


def pileup_of(lumi: np.ndarray, n_bunches: np.ndarray) -> np.ndarray:
    """Mean interactions per crossing: mu = L * sigma_inel / (n_bunches * f_rev)."""
    return np.asarray(lumi) * LUMI_UNIT * SIGMA_INEL_CM2 / (np.asarray(n_bunches) * F_REV_HZ)


def ls_conditions(era: np.ndarray, lumi: np.ndarray, pileup: np.ndarray,
                  t_fill: np.ndarray, run_frac: np.ndarray) -> dict[str, np.ndarray]:
    """Per-LS conditions as (n, 1) float arrays, ready to broadcast against bin edges.

    ``t_fill`` is hours since the start of stable beams of the fill, ``run_frac`` the
    position inside the run (0 at the first LS, 1 at the last). The drifts are smooth
    functions of these, so neighbouring LS agree and a run walks slowly.
    """
    names = list(ERAS)
    idx = np.array([names.index(e) for e in era]) if len(era) else np.zeros(0, int)
    table = np.array([[ERAS[n].bs_x, ERAS[n].bs_y, ERAS[n].bs_z, ERAS[n].bs_sigma_z,
                       ERAS[n].hit_eff, ERAS[n].align_chi2, ERAS[n].ecal_scale,
                       ERAS[n].hcal_scale] for n in names])
    e = table[idx] if len(idx) else np.zeros((0, table.shape[1]))
    t = np.asarray(t_fill, float)
    rf = np.asarray(run_frac, float)
    pu = np.asarray(pileup, float)
    col = lambda a: np.asarray(a, float).reshape(-1, 1)  # noqa: E731
    return {
        "lumi": col(lumi),
        "pu": col(pu),
        # beam spot: a few-micron walk in x/y and a mm-level z walk during the fill
        "bs_x": col(e[:, 0] + 4e-4 * (1 - np.exp(-t / 6.0))),
        "bs_y": col(e[:, 1] - 2e-4 * (1 - np.exp(-t / 6.0))),
        "bs_z": col(e[:, 2] + 0.03 * t),
        # the luminous region grows as bunches lengthen during the fill
        "bs_sz": col(e[:, 3] * (1 + 0.012 * t)),
        # pixel dynamic inefficiency grows with pile-up on top of era ageing
        "hit_eff": col(e[:, 4] * (1 - 3e-4 * pu)),
        # alignment breathing: +-1 % over a run
        "align": col(e[:, 5] * (1 + 0.01 * np.sin(np.pi * rf))),
        # ECAL transparency loss under irradiation within a fill, recovering between fills
        "ecal": col(e[:, 6] * (1 - 0.006 * (1 - np.exp(-t / 5.0)))),
        "hcal": col(e[:, 7]),
        # vertex resolution scale: 1 when the tracker is aligned (failures widen it)
        "vtx_res": np.ones((len(t), 1)),
    }

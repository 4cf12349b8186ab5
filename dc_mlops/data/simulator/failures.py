"""Failure scenarios: where they strike (LS blocks), how hard, and what they do to shapes.

Why scenarios are CDF transforms: a failure is physics acting on the same objects the good
shapes describe. A dead region removes a fraction ``f`` of a collection inside an eta-phi
box, which cuts a hole in that collection's eta and phi histograms *and* thins its
multiplicity (so the entries of every histogram of that collection drop, and the
"number per event" histogram shifts); a noisy channel adds fake objects at one spot with
their own energy tail. Writing these as transforms of the analytic CDFs keeps the
simulation vectorised and gives the noise-free expectation with and without each failure
for free (used by tests and by the subtle-failure measure).

Scenarios (subsystem tag):

==================  =========  ==========================================================
tracker_sector_off  TRACKER    phi wedge x eta range loses a fraction f of tracks (also
                               GSF-electron and global-muon tracks), fewer tracks/vertex
pixel_layer_off     PIXEL      a fraction f of tracks loses one hit and layer; vertex chi2
                               worse, fewer tracks per vertex
muon_chamber_off    MUON       eta-phi hole in muons / global tracks, fewer muons and
                               chambers per muon
ecal_dead_region    ECAL       eta-phi hole in calo clusters, superclusters, photons,
                               electrons
ecal_noisy_tower    ECAL       spike of fake clusters at one tower: eta/phi spikes, energy
                               tails, spike-like shower shapes (R9 ~ 1, small sigma_ieta)
hcal_noise          HCAL       noisy readout box: extra calo jets at one phi wedge, jet
                               energy and MET tails, MET phi spike, H/E tail
tracker_misalignment TRACKER   wrong or outdated alignment constants (e.g. a pixel
                               half-shell moved and the prompt alignment did not follow):
                               track, global-muon and vertex chi2 worse, vertex x/y
                               resolution wider, fewer tracks per vertex. The beam spot
                               does *not* move: an LHC beam-spot move shifts the vertex
                               position and leaves widths and chi2 alone, so it cannot
                               mimic this failure (and is never a failure itself)
low_stats           DAQ        events per LS below 500; shapes untouched, only noise grows
hv_ramp             TRACKER    (DCS-bad, first LS of a run) tracker/pixel HV still ramping:
                               tracking efficiency ramps up LS by LS
==================  =========  ==========================================================

``severity`` is in (0, 1]: the physical strength of the failure (the lost fraction f of a
region's objects, the share of events a noisy channel fires in, the size of a misalignment).
It is drawn log-uniformly over [SEVERITY_RANGE[scenario], 1]: failures are scale-free in
reality (one dead module or a whole sector; a channel that fires once in a thousand events
or in every event), and the lower ends are where a failure stops changing any histogram
at all. Whether a human could have seen it is decided afterwards, from the histograms
(visibility.py), never from the severity.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from dc_mlops.data.simulator import shapes as S
from dc_mlops.data.simulator.shapes import CDF, PI, Params

SEVERITY_MIN = 0.01
#: lower end of each scenario's log-uniform severity prior (upper end 1)
SEVERITY_RANGE = {
    "tracker_sector_off": 0.02, "pixel_layer_off": 0.02, "muon_chamber_off": 0.02,
    "ecal_dead_region": 0.02, "ecal_noisy_tower": 0.01, "hcal_noise": 0.01,
    "tracker_misalignment": 0.01, "low_stats": 0.5, "hv_ramp": 0.5,
}
DEG = PI / 180.0

SCENARIOS: dict[str, str] = {  # scenario -> subsystem
    "tracker_sector_off": "TRACKER",
    "pixel_layer_off": "PIXEL",
    "muon_chamber_off": "MUON",
    "ecal_dead_region": "ECAL",
    "ecal_noisy_tower": "ECAL",
    "hcal_noise": "HCAL",
    "tracker_misalignment": "TRACKER",
    "low_stats": "DAQ",
    "hv_ramp": "TRACKER",
}
# relative frequency of each human-bad scenario (hv_ramp is placed separately, DCS-bad)
WEIGHTS = {"tracker_sector_off": 0.14, "pixel_layer_off": 0.14, "muon_chamber_off": 0.15,
           "ecal_dead_region": 0.12, "ecal_noisy_tower": 0.11, "hcal_noise": 0.14,
           "tracker_misalignment": 0.10, "low_stats": 0.10}
GEOMETRY = ["g_phi", "g_dphi", "g_eta_lo", "g_eta_hi", "g_events"]
BLOCK_COLUMNS = ["run", "first_ls", "last_ls", "subsystem", "scenario", "severity"]


def draw_geometry(scenario: str, rng: np.random.Generator) -> dict[str, float]:
    """Where a failure sits in the detector (eta-phi box, direction, DAQ live fraction)."""
    g = dict.fromkeys(GEOMETRY, 0.0)
    if scenario == "tracker_sector_off":
        g["g_dphi"] = rng.uniform(20, 60) * DEG
        g["g_eta_lo"], g["g_eta_hi"] = [(-1.2, 1.2), (1.0, 2.5), (-2.5, -1.0)][rng.integers(3)]
    elif scenario == "muon_chamber_off":
        kind = rng.choice(4, p=[0.3, 0.25, 0.2, 0.25])
        if kind == 3:  # a whole DT wheel or CSC disk tripped (all phi)
            g["g_dphi"] = 2 * PI
            g["g_eta_lo"], g["g_eta_hi"] = [(-0.8, -0.25), (-0.25, 0.25), (0.25, 0.8),
                                            (1.2, 2.4), (-2.4, -1.2)][rng.integers(5)]
        elif kind == 0:  # one chamber: a DT wheel sector or a CSC chamber
            g["g_dphi"] = [30 * DEG, 20 * DEG, 10 * DEG][rng.integers(3)]
            g["g_eta_lo"], g["g_eta_hi"] = [(-1.2, -0.8), (-0.8, -0.25), (-0.25, 0.25),
                                            (0.25, 0.8), (0.8, 1.2), (1.2, 2.4),
                                            (-2.4, -1.2)][rng.integers(7)]
        elif kind == 1:  # a DT sector through all wheels (crate / readout board)
            g["g_dphi"] = 30 * DEG
            g["g_eta_lo"], g["g_eta_hi"] = -1.2, 1.2
        else:  # a CSC endcap region (a 60-degree peripheral crate)
            g["g_dphi"] = 60 * DEG
            g["g_eta_lo"], g["g_eta_hi"] = [(0.9, 2.4), (-2.4, -0.9)][rng.integers(2)]
    elif scenario == "ecal_dead_region":
        kind = rng.integers(3)
        if kind == 0:  # a group of trigger towers
            g["g_dphi"] = rng.uniform(5, 15) * DEG
            width = rng.uniform(0.2, 0.6)
            g["g_eta_lo"] = rng.uniform(-2.9, 2.9 - width)
            g["g_eta_hi"] = g["g_eta_lo"] + width
        elif kind == 1:  # a barrel supermodule
            g["g_dphi"] = 20 * DEG
            g["g_eta_lo"], g["g_eta_hi"] = [(0.0, 1.479), (-1.479, 0.0)][rng.integers(2)]
        else:  # an endcap Dee quadrant
            g["g_dphi"] = 90 * DEG
            g["g_eta_lo"], g["g_eta_hi"] = [(1.479, 3.0), (-3.0, -1.479)][rng.integers(2)]
    elif scenario == "ecal_noisy_tower":
        g["g_dphi"] = 5 * DEG
        eta0 = rng.uniform(-2.8, 2.8)
        half = 0.0435 if abs(eta0) < 1.479 else 0.087
        g["g_eta_lo"], g["g_eta_hi"] = eta0 - half, eta0 + half
    elif scenario == "hcal_noise":
        g["g_dphi"] = 20 * DEG
        g["g_eta_lo"], g["g_eta_hi"] = [(0.0, 1.4), (-1.4, 0.0), (1.3, 3.0), (-3.0, -1.3)][rng.integers(4)]
    elif scenario == "low_stats":
        g["g_events"] = rng.uniform(0.02, 0.95)  # events as a fraction of the 500 cut
    if g["g_dphi"] > 0:
        g["g_phi"] = rng.uniform(-PI, PI - g["g_dphi"])
    return g


def draw_severity(rng: np.random.Generator, scenario: str = "", size=None):
    """Log-uniform on [SEVERITY_RANGE[scenario], 1]: as many failures per decade of size."""
    lo = SEVERITY_RANGE.get(scenario, SEVERITY_MIN)
    return 10 ** rng.uniform(np.log10(lo), 0.0, size)


# ---------------------------------------------------------------- CDF transforms
def hole(base: CDF, a, b, f) -> CDF:
    """Remove a fraction f of the density inside [a, b], renormalised."""
    fa, fb = base(a), base(b)
    norm = 1.0 - f * (fb - fa)
    return lambda x: (base(x) - f * (base(np.clip(x, a, b)) - fa)) / norm


def spike(base: CDF, a, b, w) -> CDF:
    """Add a uniform population of relative weight w inside [a, b]."""
    return lambda x: (base(x) + w * np.clip((x - a) / (b - a), 0.0, 1.0)) / (1.0 + w)


def add(base: CDF, w, other: CDF) -> CDF:
    """Add a population ``other`` of relative weight w (a tail, a spike-like shape)."""
    return lambda x: (base(x) + w * other(x)) / (1.0 + w)


def shift_mix(base: CDF, d, f) -> CDF:
    """A fraction f of the entries is shifted by d (one hit fewer, ...)."""
    return lambda x: (1.0 - f) * base(x) + f * base(x - d)


def scale_mix(base: CDF, c, f) -> CDF:
    """A fraction f of the entries is scaled by c (worse chi2, fewer tracks per vertex)."""
    return lambda x: (1.0 - f) * base(x) + f * base(x / c)


Wrap = Callable[[CDF], CDF]


def _collections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, sp in S.SPECS.items():
        out.setdefault(sp.collection, []).append(name)
    return out


_BY_COLLECTION = _collections()


def _of(collection: str, quantity: str) -> list[str]:
    return [h for h in _BY_COLLECTION.get(collection, []) if S.SPECS[h].quantity == quantity]


def _box(c: Params, g: Params, collections: list[str], f, wraps: dict[str, Wrap],
         mode: str = "hole") -> None:
    """Remove (hole) or add (spike) objects of ``collections`` in the eta-phi box of g.

    Removed fraction of a collection = f * P(eta in box) * P(phi in box); the eta
    histogram loses f * P(phi) inside the eta range, the phi histogram f * P(eta) inside
    the phi wedge, and the multiplicity (entries, number per event) drops accordingly.
    For a spike, f is the number of fake objects relative to the real ones.
    """
    a, b = g["g_eta_lo"], g["g_eta_hi"]
    p0, p1 = g["g_phi"], g["g_phi"] + g["g_dphi"]
    p_phi = g["g_dphi"] / (2 * PI)
    for coll in collections:
        key = "m_" + coll
        if mode == "hole":
            eta_cdf = S.COLLECTION_ETA[coll](c)
            p_eta = eta_cdf(b) - eta_cdf(a)
            c[key] = c.get(key, 1.0) * (1.0 - f * p_eta * p_phi)
            for h in _of(coll, "eta"):
                wraps[h] = _then(wraps.get(h), lambda F, d=f * p_phi: hole(F, a, b, d))
            for h in _of(coll, "phi"):
                wraps[h] = _then(wraps.get(h), lambda F, d=f * p_eta: hole(F, p0, p1, d))
        else:
            c[key] = c.get(key, 1.0) * (1.0 + f)
            for h in _of(coll, "eta"):
                wraps[h] = _then(wraps.get(h), lambda F, w=f: spike(F, a, b, w))
            for h in _of(coll, "phi"):
                wraps[h] = _then(wraps.get(h), lambda F, w=f: spike(F, p0, p1, w))


def _then(first: Wrap | None, second: Wrap) -> Wrap:
    if first is None:
        return second
    return lambda F: second(first(F))


def _wrap(wraps: dict[str, Wrap], names: list[str], fn: Wrap) -> None:
    for h in names:
        wraps[h] = _then(wraps.get(h), fn)


def apply(scenario: str, c: Params, g: Params, s) -> tuple[Params, dict[str, Wrap]]:
    """Conditions modified by the failure and CDF transforms per histogram name.

    ``c`` holds (n, 1) conditions of the LS, ``g`` their geometry columns, ``s`` their
    per-LS strength in (0, 1] (n, 1). Returns a new conditions dict; ``c`` is not touched.
    """
    c = dict(c)
    wraps: dict[str, Wrap] = {}
    if scenario == "tracker_sector_off":
        m0 = c.get("m_track", 1.0)
        _box(c, g, ["track", "globtk", "gsf"], s, wraps)
        lost = c["m_track"] / m0
        _wrap(wraps, ["qpVtxNtr"], lambda F: S.scaled(F, lost))
    elif scenario == "pixel_layer_off":
        c["m_track"] = c.get("m_track", 1.0) * (1 - 0.05 * s)
        # only tracks without a hit in an overlapping module lose one (a quarter)
        _wrap(wraps, ["qgTkNHits", "qgTkNLay", "qglobTkNHits"], lambda F: shift_mix(F, -1.0, 0.25 * s))
        _wrap(wraps, ["qpVtxChi2"], lambda F: scale_mix(F, 1.4, s))
        _wrap(wraps, ["qpVtxNtr"], lambda F: S.scaled(F, 1 - 0.08 * s))
    elif scenario == "muon_chamber_off":
        _box(c, g, ["mu", "globtk"], s, wraps)
        eta = S.COLLECTION_ETA["mu"](c)
        frac = s * (eta(g["g_eta_hi"]) - eta(g["g_eta_lo"])) * g["g_dphi"] / (2 * PI)
        _wrap(wraps, ["qMuNCh"], lambda F: shift_mix(F, -1.0, frac))
    elif scenario == "ecal_dead_region":
        _box(c, g, ["cc", "sc", "pho", "gsf"], s, wraps)
    elif scenario == "ecal_noisy_tower":
        # the tower fires in a share p of the events; each firing adds one fake object, so
        # its relative weight in a collection is p / (objects per event)
        p = 0.25 * s
        w_cc, w_sc = p / S.multiplicity("cc", c), p / S.multiplicity("sc", c)
        w_pho = 0.5 * p / S.multiplicity("pho", c)
        _box(c, g, ["cc"], w_cc, wraps, mode="spike")
        _box(c, g, ["sc"], w_sc, wraps, mode="spike")
        _box(c, g, ["pho"], w_pho, wraps, mode="spike")
        tail = S.lomax(5.0, 60.0, 1.6)
        _wrap(wraps, _of("cc", "energy"), lambda F: add(F, w_cc, tail))
        _wrap(wraps, _of("sc", "energy"), lambda F: add(F, w_sc, tail))
        _wrap(wraps, _of("pho", "energy") + _of("pho", "pt"), lambda F: add(F, w_pho, tail))
        _wrap(wraps, _of("pho", "r9"), lambda F: add(F, w_pho, S.normal(0.985, 0.015)))
        _wrap(wraps, ["qSigmaIEta"], lambda F: add(F, w_pho, S.normal(0.004, 0.001)))
        _wrap(wraps, ["qSigmaIPhi"], lambda F: add(F, w_pho, S.normal(0.004, 0.0015)))
    elif scenario == "hcal_noise":
        w = 0.05 * s
        _box(c, g, ["caljet"], w, wraps, mode="spike")
        _box(c, g, ["pfjet"], 0.5 * w, wraps, mode="spike")
        _wrap(wraps, _of("caljet", "pt"), lambda F: add(F, w, S.lomax(30.0, 150.0, 1.8)))
        _wrap(wraps, _of("caljet", "energy"), lambda F: add(F, w, S.lomax(35.0, 300.0, 1.6)))
        _wrap(wraps, _of("pfjet", "pt"), lambda F: add(F, 0.5 * w, S.lomax(30.0, 150.0, 1.8)))
        w_evt = np.minimum(0.6, 2 * w)  # share of events carrying the noise
        _wrap(wraps, _of("event", "met"), lambda F: add(F, w_evt, S.lomax(0.0, 80.0, 2.2)))
        q0 = np.where(g["g_phi"] > 0, g["g_phi"] - PI, g["g_phi"] + PI)  # MET points away
        q0 = np.minimum(q0, PI - g["g_dphi"])
        _wrap(wraps, _of("event", "met_phi"), lambda F: spike(F, q0, q0 + g["g_dphi"], w_evt))
        _wrap(wraps, ["qHadOEm"], lambda F: add(F, 0.5 * w, S.gamma(0.15, 1.0)))
    elif scenario == "tracker_misalignment":
        # residual misalignment of up to ~50 um: hit residuals grow, so every track fit's
        # chi2 (tracker, global muon, vertex) worsens, the vertex resolution widens, and
        # tracks failing the vertex quality cuts leave fewer tracks per vertex. The vertex
        # *position* (beam spot) does not move.
        c["align"] = c["align"] * (1 + 0.6 * s)
        c["vtx_res"] = c["vtx_res"] * np.sqrt(1 + 3.0 * s ** 2)
        _wrap(wraps, ["qpVtxNtr"], lambda F: S.scaled(F, 1 - 0.06 * s))
    elif scenario == "hv_ramp":
        for coll, k in (("track", 0.6), ("globtk", 0.4), ("gsf", 0.3), ("vertex", 0.3)):
            c["m_" + coll] = c.get("m_" + coll, 1.0) * (1 - k * s)
        _wrap(wraps, ["qgTkNHits"], lambda F: shift_mix(F, -2.0, s))
        _wrap(wraps, ["qgTkNLay"], lambda F: shift_mix(F, -1.0, s))
        _wrap(wraps, ["qglobTkNHits"], lambda F: shift_mix(F, -3.0, s))
        _wrap(wraps, ["qpVtxChi2"], lambda F: scale_mix(F, 1.3, s))
        _wrap(wraps, ["qpVtxNtr"], lambda F: S.scaled(F, 1 - 0.5 * s))
    elif scenario != "low_stats":
        raise KeyError(f"unknown failure scenario {scenario!r}")
    return c, wraps


@lru_cache(maxsize=None)
def _affected_all(scenario: str) -> frozenset[str]:
    """Histograms whose expected counts the scenario changes, by a dry run on one LS with
    strength 1 and an eta-phi box that overlaps every collection's acceptance."""
    from dc_mlops.data.simulator.conditions import ls_conditions
    c = ls_conditions(np.array(["2018A"]), np.array([15.0]), np.array([36.0]),
                      np.array([2.0]), np.array([0.5]))
    g = {k: np.full((1, 1), v) for k, v in
         {"g_phi": 0.3, "g_dphi": 0.4, "g_eta_lo": 0.3, "g_eta_hi": 1.0,
          "g_events": 0.5}.items()}
    c2, wraps = apply(scenario, c, g, np.ones((1, 1)))
    changed = set()
    for name, sp in S.SPECS.items():
        cdf = sp.shape(c2)
        if name in wraps:
            cdf = wraps[name](cdf)
        after = S.bin_probabilities(cdf, sp.edges, 1) * S.multiplicity(sp.collection, c2)
        if not np.allclose(after, _expect(sp, c), rtol=1e-9, atol=0):
            changed.add(name)
    return frozenset(changed)


def _expect(sp, c) -> np.ndarray:
    p = S.bin_probabilities(sp.shape(c), sp.edges, 1)
    return p * S.multiplicity(sp.collection, c)


def affected_histograms(scenario: str, pd: str | None = None) -> list[str]:
    """Histograms of a PD (all known ones if pd is None) that the scenario changes.

    Entries-only changes count (a tracker hole lowers the entries of the track-pT
    histogram without changing its shape). An empty list means the PD cannot see the
    failure: its LS are still bad in the Golden JSON, as in real certification.
    """
    if scenario not in SCENARIOS:
        raise KeyError(f"unknown failure scenario {scenario!r}")
    names = S.SPECS if pd is None else _pd_names(pd)
    hit = _affected_all(scenario)
    return [h for h in names if h in hit]


def _pd_names(pd: str) -> tuple[str, ...]:
    from dc_mlops.data.features import canonical_name, get_feature_set
    return tuple(canonical_name(h) for h in get_feature_set(pd).histograms)


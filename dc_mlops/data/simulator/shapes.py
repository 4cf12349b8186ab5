"""Per-quantity histogram shapes: fixed axes and analytic CDFs driven by LS conditions.

Why CDFs: the expected content of bin i is entries * (F(edge_{i+1}) - F(edge_i)), so a
whole chunk of LS is one broadcast of an (n_LS, 1) parameter column against the (1, n_edges)
edge row, with no Python loop over LS. Failures (failures.py) are written as transforms of
these CDFs (holes, spikes, tails, shifted or scaled sub-populations), so the same
machinery gives the noise-free expectation with and without a failure.

Every histogram name of the four built-in PDs maps to a quantity family by its name:
vertex chi2 / ntracks / x / y / z, pile-up and lumi per event, falling pT/energy spectra
(Lomax, i.e. power-law tails, with trigger thresholds and W/Z Jacobian peaks), eta with
acceptance plateaus and the ECAL barrel/endcap gap, phi with detector modulation (18 HCAL/
ECAL wedges, 12 muon sectors, beam-spot sinusoid), multiplicities growing with pile-up,
hits/layers, track chi2, EGamma shower shapes (sigma_ietaieta, R9, H/E, isolation, E/p).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

CDF = Callable[[np.ndarray], np.ndarray]
PI = np.pi


# ---------------------------------------------------------------- CDF families
def normal(mu, sigma) -> CDF:
    return lambda x: special.ndtr((x - mu) / sigma)


def gamma(mean, k) -> CDF:
    """Gamma CDF by the Wilson-Hilferty cube-root normal approximation.

    Exact ``gammainc`` costs ~120 ns per value; this costs ~20 ns and is accurate to a
    fraction of a per cent for shape k >= 1, far below the per-LS noise. Shapes k < 1
    are evaluated exactly.
    """
    k = np.asarray(k, float)
    if np.all(k >= 1.0):
        a = 1.0 / (9.0 * k)
        return lambda x: special.ndtr((np.cbrt(np.maximum(x, 0.0) / mean) - (1 - a)) / np.sqrt(a))
    theta = mean / k
    return lambda x: special.gammainc(k, np.maximum(x, 0.0) / theta)


def lomax(x0, lam, alpha) -> CDF:
    """Power-law falling spectrum above a threshold x0: 1 - (1 + (x-x0)/lam)^-alpha."""
    return lambda x: 1.0 - (1.0 + np.maximum(x - x0, 0.0) / lam) ** (-alpha)


def rayleigh(sigma) -> CDF:
    return lambda x: 1.0 - np.exp(-0.5 * (np.maximum(x, 0.0) / sigma) ** 2)


def poisson(mu) -> CDF:
    """Poisson CDF of a count, continuous from the right at half-integer bin edges."""
    return lambda x: np.where(x < 0, 0.0, special.gammaincc(np.floor(np.maximum(x, 0.0)) + 1, mu))


def plateau(a, s) -> CDF:
    """Uniform on [-a, a] smeared by a Gaussian of width s: a detector acceptance in eta."""
    def g(t):
        return t * special.ndtr(t / s) + s * np.exp(-0.5 * (t / s) ** 2) / np.sqrt(2 * PI)
    return lambda x: (g(x + a) - g(x - a)) / (2 * a)


def band(a, b, s) -> CDF:
    """Uniform on a < |x| < b (smeared): the ECAL endcaps either side of the barrel gap."""
    pa, pb = plateau(a, s), plateau(b, s)
    return lambda x: (b * pb(x) - a * pa(x)) / (b - a)


def phi(mods: list[tuple[float, float, float]]) -> CDF:
    """Density on [-pi, pi] proportional to 1 + sum_j A_j cos(k_j phi + c_j) (integer k)."""
    def f(x):
        x = np.clip(x, -PI, PI)
        out = (x + PI) / (2 * PI)
        for amp, k, c in mods:
            out = out + amp / (2 * PI * k) * (np.sin(k * x + c) - np.sin(-k * PI + c))
        return out
    return f


def reflected(base: CDF, top: float) -> CDF:
    """X = top - Y: quantities that pile up against a maximum (R9 near 1)."""
    return lambda x: 1.0 - base(top - x)


def mixture(parts: list[tuple[object, CDF]]) -> CDF:
    """Weighted sum of CDFs; weights may be per-LS (n, 1) arrays, normalised here."""
    total = sum(w for w, _ in parts)
    return lambda x: sum(w * f(x) for w, f in parts) / total


def scaled(base: CDF, c) -> CDF:
    """CDF of c * X for X ~ base: an energy-scale or multiplicity scale change."""
    return lambda x: base(x / c)


# ---------------------------------------------------------------- histogram table
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class HistSpec:
    """One monitoring element: its axis, what it counts, and its shape builder.

    ``collection`` names the objects filling it (``event`` = one entry per event); the
    entries of an LS are events x ``multiplicity(collection)``. ``quantity`` is the
    family used by failures to decide how a histogram reacts (eta, phi, n, energy, ...).
    """

    name: str
    lo: float
    hi: float
    n_bins: int
    collection: str
    quantity: str
    shape: Callable[[Params], CDF]

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.n_bins + 1)


def multiplicity(collection: str, c: Params) -> np.ndarray:
    """Mean objects per event of a collection, growing with pile-up (n, 1)."""
    pu = c["pu"]
    he = c["hit_eff"]
    # failures thin or add objects through c["m_<collection>"] (see failures.py)
    factor = c.get("m_" + collection, 1.0)
    table = {
        "event": 1.0 + 0.0 * pu,
        "vertex": 1.0 + 0.72 * pu,
        "track": (15.0 + 11.0 * pu) * he,
        "pfjet": 4.0 + 0.07 * pu,
        "caljet": 3.2 + 0.05 * pu,
        "cc": 25.0 + 1.1 * pu,
        "sc": 3.0 + 0.09 * pu,
        "gsf": 1.3 + 0.015 * pu,
        "pho": 1.8 + 0.05 * pu,
        "mu": 1.6 + 0.03 * pu,
        "globtk": 1.3 + 0.02 * pu,
    }
    return table[collection] * factor


def _eta_tracker(c):
    return mixture([(0.75, plateau(2.5, 0.12)), (0.25, plateau(1.4, 0.5))])


def _eta_ecal(c, top=3.0):
    return mixture([(0.62, plateau(1.479, 0.02)), (0.38, band(1.566, top, 0.03))])


def _eta_jets(c):
    w_fwd = 0.15 + 0.004 * c["pu"]  # pile-up jets are forward
    return mixture([(1.0, mixture([(0.8, plateau(2.5, 0.35)), (0.2, plateau(1.0, 0.6))])),
                    (w_fwd, plateau(4.7, 0.2))])


def _eta_muon(c):
    return mixture([(0.8, plateau(2.4, 0.04)), (0.2, plateau(0.9, 0.08))])


def _phi_calo(c):
    return phi([(0.025, 18, 0.0), (0.01, 1, -0.7)])


def _phi_tracks(c):
    # beam-spot offset in the transverse plane modulates phi through the d0 cut
    amp = 0.2 * np.hypot(c["bs_x"], c["bs_y"])
    return phi([(amp, 1, 0.57), (0.006, 6, 0.3)])


def _phi_muon(c):
    return phi([(0.045, 12, 0.0), (0.01, 1, 1.1)])


def _met(c, base, pu_term):
    sigma = np.sqrt(base ** 2 + pu_term ** 2 * c["pu"])
    return mixture([(0.96, rayleigh(sigma)), (0.04, lomax(0.0, 40.0, 3.5))])


def _jet_pt(c, x0, scale):
    soft = 0.05 + 0.004 * c["pu"]
    return mixture([(1.0, lomax(x0, 70.0 * scale, 3.6)), (soft, lomax(x0, 12.0 * scale, 4.0))])


def _lep_pt(thr, peak, c, scale=1.0):
    return mixture([(0.65, lomax(thr, 18.0 * scale, 3.2)), (0.35, normal(peak * scale, 7.0))])


def _pho_en(c, frac):
    return lomax(10.0 * frac, 45.0 * frac * c["ecal"], 2.6)


SPECS: dict[str, HistSpec] = {}


def _add(name, lo, hi, nb, collection, quantity, shape):
    SPECS[name] = HistSpec(name, lo, hi, nb, collection, quantity, shape)


# common vertex / luminosity block
_add("qpVtxChi2", 0, 5, 50, "vertex", "vtx_chi2", lambda c: gamma(1.0 * c["align"], 4.0))
_add("qpVtxNtr", 0, 150, 75, "vertex", "vtx_ntr",
     lambda c: gamma((34.0 - 0.12 * c["pu"]) * c["hit_eff"], 2.2))
# vertex x/y: beam width (~10 um) folded with the vertex resolution (~25 um); a tracker
# misalignment widens the resolution (c["vtx_res"]), a beam-spot move only shifts the mean
_add("qpVtxX", 0.07, 0.13, 60, "vertex", "vtx_x", lambda c: normal(c["bs_x"], 0.0028 * c["vtx_res"]))
_add("qpVtxY", -0.09, -0.03, 60, "vertex", "vtx_y", lambda c: normal(c["bs_y"], 0.0028 * c["vtx_res"]))
_add("qpVtxZ", -20, 20, 80, "vertex", "vtx_z", lambda c: normal(c["bs_z"], c["bs_sz"]))
_add("qPUEvt", 0, 80, 80, "event", "pileup", lambda c: normal(c["pu"], np.sqrt(c["pu"]) + 0.5))
_add("qlumiEvt", 0, 25, 100, "event", "lumi",
     lambda c: normal(c["lumi"], 0.08 * c["lumi"] + 0.05))
# ZeroBias tracks
_add("qgTkPt", 0, 5, 50, "track", "pt", lambda c: lomax(0.3, 1.6, 5.0))
_add("qgTkEta", -3, 3, 60, "track", "eta", _eta_tracker)
_add("qgTkPhi", -PI, PI, 64, "track", "phi", _phi_tracks)
_add("qgTkN", 0, 1500, 60, "event", "n_track", lambda c: gamma(multiplicity("track", c), 6.0))
_add("qgTkChi2", 0, 8, 40, "track", "chi2", lambda c: gamma(1.05 * c["align"], 2.2))
_add("qgTkNHits", -0.5, 39.5, 40, "track", "nhits",
     lambda c: normal(16.0 * c["hit_eff"], 3.3))
_add("qgTkNLay", -0.5, 29.5, 30, "track", "nlay", lambda c: normal(11.5 * c["hit_eff"], 2.3))
# JetHT
_add("qPFJetN", -0.5, 29.5, 30, "event", "n_pfjet", lambda c: poisson(multiplicity("pfjet", c)))
_add("qPFJetPt", 0, 1000, 50, "pfjet", "pt", lambda c: _jet_pt(c, 30.0, 0.5 + 0.5 * c["hcal"]))
_add("qPFJetPhi", -PI, PI, 72, "pfjet", "phi", _phi_calo)
_add("qPFJetEta", -5, 5, 50, "pfjet", "eta", _eta_jets)
_add("qPFMetPt", 0, 300, 60, "event", "met", lambda c: _met(c, 12.0, 2.6))
_add("qPFMetPhi", -PI, PI, 72, "event", "met_phi",
     lambda c: phi([(0.02 + 0.0008 * c["pu"], 1, -1.2)]))
_add("qCalJetN", -0.5, 29.5, 30, "event", "n_caljet",
     lambda c: poisson(multiplicity("caljet", c)))
_add("qCalJetPt", 0, 1000, 50, "caljet", "pt", lambda c: _jet_pt(c, 30.0, 0.85 * c["hcal"]))
_add("qCalJetEta", -5, 5, 50, "caljet", "eta", _eta_jets)
_add("qCalJetPhi", -PI, PI, 72, "caljet", "phi", _phi_calo)
_add("qCalJetEn", 0, 2000, 50, "caljet", "energy",
     lambda c: lomax(35.0, 110.0 * c["hcal"], 2.9))
_add("qCalMETPt", 0, 300, 60, "event", "met", lambda c: _met(c, 16.0, 3.4))
_add("qCalMETPhi", -PI, PI, 72, "event", "met_phi",
     lambda c: phi([(0.03 + 0.001 * c["pu"], 1, -1.0)]))
_add("qCCEn", 0, 50, 50, "cc", "energy", lambda c: lomax(0.5, 2.2 * c["ecal"], 3.0))
_add("qCCEta", -3.2, 3.2, 64, "cc", "eta", _eta_ecal)
_add("qCCPhi", -PI, PI, 72, "cc", "phi", _phi_calo)
_add("qSCEn", 0, 400, 50, "sc", "energy", lambda c: lomax(5.0, 25.0 * c["ecal"], 2.7))
_add("qSCEta", -3.2, 3.2, 64, "sc", "eta", _eta_ecal)
_add("qSCPhi", -PI, PI, 72, "sc", "phi", _phi_calo)
# EGamma
_add("qGsfPt", 0, 200, 50, "gsf", "pt", lambda c: _lep_pt(10.0, 40.0, c, c["ecal"]))
_add("qGsfEta", -3, 3, 60, "gsf", "eta", lambda c: _eta_ecal(c, 2.5))
_add("qGsfPhi", -PI, PI, 72, "gsf", "phi", _phi_calo)
_add("qGsfN", -0.5, 29.5, 30, "event", "n_gsf", lambda c: poisson(multiplicity("gsf", c)))
_add("qPhoN", -0.5, 29.5, 30, "event", "n_pho", lambda c: poisson(multiplicity("pho", c)))
_add("qgedPhoPt", 0, 300, 60, "pho", "pt", lambda c: lomax(10.0, 16.0 * c["ecal"], 3.0))
_add("qgedPhoEta", -3, 3, 60, "pho", "eta", lambda c: _eta_ecal(c, 2.5))
_add("qgedPhoPhi", -PI, PI, 72, "pho", "phi", _phi_calo)
_add("qgedPhoEn", 0, 500, 50, "pho", "energy", lambda c: _pho_en(c, 1.0))
_add("qgedPhoe1x5", 0, 500, 50, "pho", "energy", lambda c: _pho_en(c, 0.74))
_add("qgedPhoe2x5", 0, 500, 50, "pho", "energy", lambda c: _pho_en(c, 0.90))
_add("qgedPhoe3x3", 0, 500, 50, "pho", "energy", lambda c: _pho_en(c, 0.93))
_add("qgedPhoe5x5", 0, 500, 50, "pho", "energy", lambda c: _pho_en(c, 0.97))
_add("qSigmaIEta", 0, 0.05, 50, "pho", "sieie", lambda c: mixture([
    (0.68, normal(0.0095 + 2e-5 * c["pu"], 0.0014)), (0.32, normal(0.027 + 4e-5 * c["pu"], 0.004))]))
_add("qSigmaIPhi", 0, 0.06, 60, "pho", "sipip", lambda c: mixture([
    (0.68, normal(0.0105 + 3e-5 * c["pu"], 0.0022)), (0.32, normal(0.029 + 5e-5 * c["pu"], 0.006))]))
_add("qr9", 0.2, 1.1, 45, "pho", "r9",
     lambda c: reflected(gamma(0.07 * (1 + 0.006 * c["pu"]), 1.3), 1.0))
_add("qgedPhor9", 0.2, 1.1, 45, "pho", "r9",
     lambda c: reflected(gamma(0.065 * (1 + 0.006 * c["pu"]), 1.4), 1.0))
_add("qHadOEm", 0, 0.5, 50, "pho", "hoe", lambda c: gamma(0.03 * (1 + 0.01 * c["pu"]), 0.8))
_add("qdrSumPt", 0, 20, 40, "gsf", "iso", lambda c: gamma(0.6 + 0.05 * c["pu"], 0.9))
_add("qdrSumEt", 0, 20, 40, "gsf", "iso", lambda c: gamma(0.8 + 0.07 * c["pu"], 1.2))
_add("qeSCOP", 0, 3, 60, "gsf", "eop", lambda c: mixture([
    (0.9, normal(1.0 * c["ecal"], 0.09)), (0.1, lomax(0.6, 0.5, 3.0))]))
_add("qecEn", 0, 400, 50, "gsf", "energy", lambda c: lomax(8.0, 32.0 * c["ecal"], 2.6))
# SingleMuon
_add("qglobTkN", -0.5, 29.5, 30, "event", "n_globtk",
     lambda c: poisson(multiplicity("globtk", c)))
_add("qglobTkPt", 0, 200, 50, "globtk", "pt", lambda c: _lep_pt(24.0, 40.0, c))
_add("qglobTkEta", -3, 3, 60, "globtk", "eta", _eta_muon)
_add("qglobTkPhi", -PI, PI, 60, "globtk", "phi", _phi_muon)
_add("qglobTkChi2", 0, 10, 50, "globtk", "chi2", lambda c: gamma(1.3 * c["align"], 2.0))
_add("qglobTkNHits", -0.5, 79.5, 80, "globtk", "nhits",
     lambda c: normal(42.0 * c["hit_eff"], 8.0))
_add("qMuN", -0.5, 29.5, 30, "event", "n_mu", lambda c: poisson(multiplicity("mu", c)))
_add("qMuNCh", -0.5, 29.5, 30, "mu", "nch", lambda c: normal(3.3, 0.95))
_add("qMuPt", 0, 200, 50, "mu", "pt", lambda c: _lep_pt(24.0, 40.0, c))
_add("qMuEta", -3, 3, 60, "mu", "eta", _eta_muon)
_add("qMuPhi", -PI, PI, 60, "mu", "phi", _phi_muon)
_add("qMuEn", 0, 500, 50, "mu", "energy", lambda c: lomax(24.0, 30.0, 2.8))
_add("qMuChi2", 0, 10, 50, "mu", "chi2", lambda c: gamma(1.1 * c["align"], 2.0))

# collections whose eta/phi shape a hole is cut from, and their "number per event" hist
COLLECTION_ETA: dict[str, Callable[[Params], CDF]] = {
    "track": _eta_tracker, "globtk": _eta_muon, "mu": _eta_muon, "gsf": lambda c: _eta_ecal(c, 2.5),
    "pho": lambda c: _eta_ecal(c, 2.5), "cc": _eta_ecal, "sc": _eta_ecal,
    "pfjet": _eta_jets, "caljet": _eta_jets,
}
COLLECTION_N = {"track": "qgTkN", "pfjet": "qPFJetN", "caljet": "qCalJetN", "gsf": "qGsfN",
                "pho": "qPhoN", "mu": "qMuN", "globtk": "qglobTkN"}


def spec(name: str) -> HistSpec:
    """The spec of a histogram name (a trailing underscore is accepted)."""
    from dc_mlops.data.features import canonical_name
    try:
        return SPECS[canonical_name(name)]
    except KeyError:
        from dc_mlops.errors import DataError
        raise DataError(f"the simulator has no shape for histogram {name!r}") from None


def bin_probabilities(cdf: CDF, edges: np.ndarray, n: int) -> np.ndarray:
    """(n, n_bins) bin probabilities; mass outside the axis folds into the edge bins,
    like under/overflow folded by the histogram reader."""
    inner = np.broadcast_to(cdf(edges[None, 1:-1]), (n, len(edges) - 2))
    full = np.empty((n, len(edges)))
    full[:, 0] = 0.0
    full[:, -1] = 1.0
    full[:, 1:-1] = np.clip(inner, 0.0, 1.0)
    np.maximum.accumulate(full, axis=1, out=full)  # guard against rounding non-monotonicity
    return np.diff(full, axis=1)

"""The embedded era simulator (SPEC §2.4): seeded, vectorised, physically plausible.

No CMS data can be downloaded where the product runs, so it ships a simulator that writes
the real input formats (SPEC §2.3): DIALS-layout per-LS histograms, a Golden JSON, a
DCS-only JSON and failure label files. Models are compared on it, so it has to be
plausible; this is the model.

Structure (structure.py, conditions.py)
    Eras 2018A-D with their real run-number ranges (A 315252-316995, B 316998-319312,
    C 319313-320393, D 320394-325273) and LS shares. Fills with peak luminosity around the
    era's typical value, bunch schemes (1214-2556 bunches) and exponential decay
    (lifetime 9-16 h); runs are cut from fills (20-1500 LS, log-normal, median ~380), LS
    of 23.31 s. ``lumi`` is the instantaneous luminosity in units of 1e33 cm^-2 s^-1
    (= Hz/nb); pile-up mu = L * sigma_inel(69.2 mb) / (n_bunches * 11245 Hz), ~15-55.
    Events per LS and PD come from a trigger rate (ZeroBias: per bunch; physics PDs:
    proportional to lumi, divided by a prescale column that steps with lumi) with rate
    jitter and Poisson noise. With ``structure=`` a real certification JSON, its run/LS
    set is kept exactly (runs outside the requested eras dropped) and fills/lumi are
    synthesised around it.

Conditions and drifts (conditions.py)
    Each era has its own beam-spot position (x/y: tens of microns apart, z: mm), luminous
    length, pile-up level, tracker hit-efficiency ageing, alignment quality (chi2 scale),
    ECAL and HCAL response. Inside a fill the beam spot walks, the luminous region grows,
    ECAL crystals lose transparency; inside a run the alignment breathes by ~1 %.

Histograms (shapes.py)
    Every histogram of the four built-in PDs maps to a quantity family with a fixed axis
    (30-100 bins) and an analytic CDF whose parameters are per-LS functions of the
    conditions: Gaussian vertex x/y/z around the beam spot, gamma vertex chi2 and tracks
    per vertex, pile-up and lumi per event, power-law (Lomax) pT/energy spectra with
    trigger thresholds and W/Z Jacobian peaks, eta acceptance plateaus (tracker 2.5,
    muons 2.4, ECAL barrel/endcap with the 1.479-1.566 gap, forward jets to 4.7 growing
    with pile-up), phi with detector modulation (18 calorimeter wedges, 12 muon sectors,
    a beam-spot sinusoid, MET phi modulation), multiplicities (Poisson / gamma) growing
    with pile-up, hits/layers per track, track chi2, EGamma shower shapes (sigma_ietaieta,
    sigma_iphiiphi, R9, H/E, isolation, E/p). Expected bin contents are
    entries x (F(upper edge) - F(lower edge)) for all LS of a chunk at once (no Python
    loop over LS; mass outside the axis folds into the edge bins); entries are events x
    objects per event. Counts are Poisson (exact below a mean of 30, normal above). Noise
    streams depend on (seed, PD, chunk); structure and labels on (seed, eras, n_ls) only,
    so all PDs of one seed share runs, LS and labels.

Failures (failures.py, labels.py)
    Contiguous LS blocks or whole runs, 3.5-7.5 % of the LS in the synthetic mode, each
    tagged with scenario and subsystem: tracker_sector_off (TRACKER), pixel_layer_off
    (PIXEL), muon_chamber_off (MUON), ecal_dead_region and ecal_noisy_tower (ECAL),
    hcal_noise (HCAL), beamspot_shift (TRACKER: beam-spot determination is certified by
    Tracking), low_stats (DAQ: events below 500, shapes untouched) and, DCS-bad, hv_ramp
    (TRACKER: the first LS of some runs, tracking efficiency ramping up; absent from the
    DCS-only and Golden JSONs, listed in dcs_bad). A failure is a transform of the good
    CDFs (eta-phi holes and spikes, tails, shifted or scaled sub-populations) and of the
    multiplicities, so it moves only the histograms it physically touches
    (:func:`affected_histograms`); a failure with no histogram in a PD leaves that PD's
    histograms unchanged while its LS stay bad in the Golden JSON, as in reality.
    With ``structure=`` and ``golden=``, the bad LS are exactly structure minus Golden,
    each contiguous block given a scenario, and nothing else is added.

Subtle-failure property (difficulty.py)
    Severity is drawn log-uniformly in [0.01, 1] for every block, so failures span
    invisible to glaring. For a failure LS of scenario s in PD p, with A the histograms
    of p that s affects,
    ``shift = max over h in A and the 7 summary numbers i of
    |summary_i(E_with_failure[h]) - summary_i(E_without[h])| / std_good(h_i)``,
    E the noise-free expected histograms of that LS (same conditions and events) and
    std_good the LS-to-LS standard deviation of the feature over the good LS (Golden,
    >= 500 events) of the simulated noisy data. Subtle: shift < 2; obvious: shift > 5.
    Low-statistics LS and LS whose scenario touches no histogram of p are left out.
    At least a third of the failure LS are subtle and a good share obvious. Measured with
    :func:`failure_shifts` on 100 000 LS (seeds 0 / 1): subtle 54 % / 48 % and obvious
    29 % / 36 % in JetHT, 42 % / 48 % and 33 % / 26 % in ZeroBias, 67 % and 20 % in
    EGamma, 62-71 % and 8-19 % in SingleMuon (whose muon histograms have few entries per
    LS). The difficulty follows from physical failure sizes, not from any model.

API: :func:`simulate`, :func:`expected_counts`, :func:`write_era`,
:func:`affected_histograms`, :func:`failure_shifts`, :class:`SimulatedEra`.
"""
from dc_mlops.data.simulator.conditions import DEFAULT_ERAS, ERAS, LUMI_UNIT
from dc_mlops.data.simulator.failures import SCENARIOS, affected_histograms
from dc_mlops.data.simulator.generate import (EraLabels, SimTruth, SimulatedEra, era_labels,
                                              expected_counts, make_truth, simulate)
from dc_mlops.data.simulator.io import write_era, write_simulation
from dc_mlops.data.simulator.visibility import VISIBILITY_PDS, visibility_shares

__all__ = [
    "DEFAULT_ERAS", "ERAS", "LUMI_UNIT", "SCENARIOS", "EraLabels", "SimTruth", "SimulatedEra",
    "VISIBILITY_PDS", "affected_histograms", "era_labels", "expected_counts", "make_truth",
    "simulate", "visibility_shares", "write_era", "write_simulation",
]

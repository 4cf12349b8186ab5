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
    Contiguous LS blocks or whole runs on 5-9.5 % of the LS in the synthetic mode, each
    tagged with scenario and subsystem: tracker_sector_off (TRACKER), pixel_layer_off
    (PIXEL), muon_chamber_off (MUON), ecal_dead_region and ecal_noisy_tower (ECAL),
    hcal_noise (HCAL), tracker_misalignment (TRACKER: worse track/vertex chi2 and wider
    vertex resolution; a beam-spot move, which only shifts the vertex position, is an LHC
    condition and never a failure), low_stats (DAQ: events below 500, shapes untouched)
    and, DCS-bad, hv_ramp (TRACKER: the first LS of some runs, tracking efficiency ramping
    up; absent from the DCS-only and Golden JSONs, listed in dcs_bad). A failure is a
    transform of the good CDFs (eta-phi holes and spikes, tails, shifted or scaled
    sub-populations) and of the multiplicities, so it moves only the histograms it
    physically touches (:func:`affected_histograms`), in every PD that has them.
    Strengths come from each scenario's log-uniform prior (failures.SEVERITY_RANGE).

Labels as a DC expert makes them (visibility.py)
    Each failure LS gets a visibility per PD: the largest change of its 7-number summary
    (noise-free expected histograms with and without the failure) in units of the
    LS-to-LS spread of good LS at the same pile-up. Failures no PD shows (visibility < 1
    everywhere) stay in the Golden JSON and are kept as ``unflagged`` in the truth table;
    the others are flagged (bad). All PDs of a seed share runs, LS, conditions, failures
    and labels, whichever PD is written. Measured shares among flagged failure LS
    (``benchmarks/results/data_throughput.md``): subtle (1-3) and obvious (> 5) each
    above a quarter, in the synthetic mode and on the real 2018 structure.
    With ``structure=`` and ``golden=``, the bad LS are exactly structure minus Golden
    (people flagged them): each contiguous block gets a scenario and a strength solved so
    that some PD shows every LS of it, following a seeded mix of visibilities (35 %
    subtle, 20 % in between, 45 % obvious, by LS); failures no PD shows are added on
    1-3 % of the good LS, which stay good.

Era folders (io.py): one PD or all four in one folder, written block by block.

API: :func:`simulate`, :func:`make_truth`, :func:`write_simulation` (streamed, any PDs),
:func:`write_era` (from memory), :func:`expected_counts`, :func:`affected_histograms`,
:func:`era_labels`, :func:`visibility_shares`, :class:`SimulatedEra`.
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

"""Behaviour of the era simulator (dc_mlops.data.simulator)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.data.features import BUILTIN_SETS
from dc_mlops.data.histograms import read_histograms
from dc_mlops.data.simulator import (SCENARIOS, VISIBILITY_PDS, affected_histograms,
                                     era_labels, expected_counts, make_truth, simulate,
                                     visibility_shares, write_era, write_simulation)
from dc_mlops.data.simulator import labels as L
from dc_mlops.data.simulator.conditions import ERAS
from dc_mlops.data.simulator.generate import SimTruth, SimulatedEra
from dc_mlops.data.simulator.visibility import max_visibility
from dc_mlops.data.summary import summarize
from dc_mlops.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CERT = SHARED_DATA / "certification_json"
needs_real_data = pytest.mark.skipif(
    not (CERT / "json_DCSONLY_2018.txt").is_file(),
    reason=f"real CMS certification JSONs not found at {CERT} (../shared/data absent)")


@pytest.fixture(scope="module")
def zb() -> object:
    return simulate("ZeroBias", n_ls=4000, seed=3)


def _bad_mask(sim) -> np.ndarray:
    return ~sim.golden.contains(sim.lumisections["run"], sim.lumisections["ls"])


def test_same_seed_gives_identical_era_and_other_seed_differs(zb):
    again = simulate("ZeroBias", n_ls=4000, seed=3)
    pd.testing.assert_frame_equal(zb.lumisections, again.lumisections)
    pd.testing.assert_frame_equal(zb.failures, again.failures)
    assert zb.golden == again.golden and zb.dcsonly == again.dcsonly
    for me in zb.histograms.counts:
        np.testing.assert_array_equal(zb.histograms.counts[me], again.histograms.counts[me])
    other = simulate("ZeroBias", n_ls=4000, seed=4)
    assert not np.array_equal(zb.lumisections["lumi"].to_numpy()[:100],
                              other.lumisections["lumi"].to_numpy()[:100])
    assert zb.golden != other.golden


def test_pds_of_one_seed_share_runs_lumisections_and_labels(zb):
    mu = simulate("SingleMuon", n_ls=4000, seed=3)
    cols = ["run", "ls", "fill", "era", "lumi", "pileup"]
    pd.testing.assert_frame_equal(zb.lumisections[cols], mu.lumisections[cols])
    pd.testing.assert_frame_equal(zb.failures, mu.failures)
    pd.testing.assert_frame_equal(zb.dcs_bad, mu.dcs_bad)
    assert zb.golden == mu.golden and zb.dcsonly == mu.dcsonly
    assert not np.array_equal(zb.lumisections["events"], mu.lumisections["events"])
    assert set(zb.histograms.counts) == set(BUILTIN_SETS["ZeroBias"])
    assert set(mu.histograms.counts) == set(BUILTIN_SETS["SingleMuon"])


def test_histograms_are_sorted_aligned_and_within_30_to_100_bins(zb):
    h = zb.histograms
    key = h.runs * 10_000_000 + h.ls
    assert np.all(np.diff(key) > 0)
    np.testing.assert_array_equal(h.runs, zb.lumisections["run"])
    for me, counts in h.counts.items():
        assert 30 <= counts.shape[1] <= 100
        assert counts.shape == (h.n_ls, len(h.edges[me]) - 1)
        assert (counts >= 0).all()


def test_bad_fraction_is_between_3_and_10_percent(zb):
    for seed in range(3):
        truth = make_truth(list(ERAS), 6000, seed, None, None)
        assert 0.03 <= truth.bad.mean() <= 0.10, (seed, truth.bad.mean())
    frac = _bad_mask(zb).mean()
    assert 0.03 <= frac <= 0.10


def test_dcs_bad_hv_ramps_are_run_starts_outside_dcsonly_and_golden(zb):
    assert len(zb.dcs_bad) > 0
    assert (zb.dcs_bad["first_ls"] == 1).all()
    assert set(zb.dcs_bad["scenario"]) == {"hv_ramp"}
    lum = zb.lumisections
    in_dcs = zb.dcsonly.contains(lum["run"], lum["ls"])
    in_golden = zb.golden.contains(lum["run"], lum["ls"])
    assert not (in_golden & ~in_dcs).any()  # golden is a subset of DCS-only
    for row in zb.dcs_bad.itertuples():
        ls = np.arange(row.first_ls, row.last_ls + 1)
        assert not zb.dcsonly.contains(np.full(len(ls), row.run), ls).any()
    assert (~in_dcs).sum() == sum(r.last_ls - r.first_ls + 1 for r in zb.dcs_bad.itertuples())


def test_every_bad_ls_is_in_exactly_one_labelled_block(zb):
    blocks = pd.concat([zb.failures, zb.dcs_bad])
    lum = zb.lumisections
    hit = np.zeros(len(lum), int)
    for r in blocks.itertuples():
        hit += ((lum["run"] == r.run) & (lum["ls"] >= r.first_ls) & (lum["ls"] <= r.last_ls)).to_numpy()
    assert hit.max() == 1
    # the lists hold what a DC expert flagged: exactly the LS outside the Golden JSON
    np.testing.assert_array_equal(hit == 1, _bad_mask(zb))
    assert set(blocks["subsystem"]) <= {"TRACKER", "PIXEL", "MUON", "ECAL", "HCAL", "DAQ"}
    assert ((blocks["severity"] > 0) & (blocks["severity"] <= 1)).all()


def test_low_statistics_ls_exist_below_500_events_and_are_bad(zb):
    lum = zb.lumisections
    low = lum["events"].to_numpy() < 500
    assert low.sum() > 0
    assert _bad_mask(zb)[low].all()
    good_events = lum["events"].to_numpy()[~_bad_mask(zb)]
    assert np.median(good_events) > 1000


def test_lumi_decays_within_fills_and_pileup_follows_lumi(zb):
    lum = zb.lumisections
    assert set(lum["era"]) == set(ERAS)
    for era, e in ERAS.items():
        runs = lum.loc[lum["era"] == era, "run"]
        assert runs.between(e.first_run, e.last_run).all()
    run_len = lum.groupby("run").size()
    assert run_len.max() <= 1500 and run_len.median() >= 20
    first = lum.groupby("run").head(1).set_index("run")["lumi"]
    last = lum.groupby("run").tail(1).set_index("run")["lumi"]
    assert (last[run_len > 200] < first[run_len > 200]).mean() > 0.9
    assert np.corrcoef(lum["lumi"], lum["pileup"])[0, 1] > 0.9


def test_good_ls_features_shift_between_2018A_and_2018D():
    sim = simulate("JetHT", eras=["2018A", "2018D"], n_ls=3000, seed=1)
    good = ~_bad_mask(sim) & (sim.lumisections["events"].to_numpy() >= 500)
    era = sim.lumisections["era"].to_numpy()
    def feature(me, i):
        f = summarize(sim.histograms.counts[me], sim.histograms.edges[me])[:, i]
        return f[good & (era == "2018A")], f[good & (era == "2018D")]

    for me in ("qpVtxZ", "qpVtxX"):  # beam spot moves by more than the LS-to-LS spread
        a, d = feature(me, 2)
        assert abs(a.mean() - d.mean()) > 2 * a.std(), me
    a, d = feature("qCalJetPt", 5)  # HCAL ageing: a small but significant response drop
    assert a.mean() - d.mean() > 5 * a.std() / np.sqrt(len(a)) + 5 * d.std() / np.sqrt(len(d))


def _with_one_block(sim, scenario: str, rows: slice, severity: float = 0.6):
    """A copy of sim whose only failure is ``scenario`` on ``rows``, geometry overlapping
    every collection's acceptance."""
    table = sim.truth.table
    blk = L._block(table, rows.start, rows.stop, scenario, severity, np.random.default_rng(0),
                   "failure")
    blk.update(g_phi=0.3, g_dphi=0.5, g_eta_lo=0.2, g_eta_hi=1.1, g_angle=1.0, g_events=0.5)
    frame = L.blocks_frame([blk])
    block, strength = L.per_ls(frame, len(table))
    clone = type(sim)(**{**sim.__dict__})
    clone.truth = SimTruth(table, frame, block, strength)
    return clone


@pytest.mark.parametrize("pd_name", list(BUILTIN_SETS))
def test_each_scenario_moves_exactly_its_affected_histograms(pd_name):
    sim = simulate(pd_name, eras=["2018B"], n_ls=200, seed=0)
    rows = np.arange(50, 56)
    for scenario in SCENARIOS:
        clone = _with_one_block(sim, scenario, slice(50, 56))
        e1 = expected_counts(clone, rows, with_failures=True)
        e0 = expected_counts(clone, rows, with_failures=False)
        changed = {me for me in e1 if not np.allclose(e1[me], e0[me], rtol=1e-9, atol=1e-9)}
        assert changed == set(affected_histograms(scenario, pd_name)), (scenario, pd_name)
        # LS outside the block are untouched by it
        other = expected_counts(clone, np.arange(0, 40), with_failures=True)
        plain = expected_counts(clone, np.arange(0, 40), with_failures=False)
        for me in other:
            np.testing.assert_array_equal(other[me], plain[me])


def test_scenarios_hit_the_physics_they_should():
    jet = set(BUILTIN_SETS["JetHT"])
    assert affected_histograms("muon_chamber_off", "JetHT") == []
    assert affected_histograms("low_stats", "JetHT") == []
    assert {"qPFMetPt", "qCalMETPt", "qCalJetPt"} <= set(affected_histograms("hcal_noise", "JetHT"))
    assert not {h for h in affected_histograms("hcal_noise", "JetHT") if h.startswith("qpVtx")}
    assert {"qMuEta", "qMuPhi", "qMuN"} <= set(affected_histograms("muon_chamber_off", "SingleMuon"))
    assert {"qgTkPhi", "qgTkN"} <= set(affected_histograms("tracker_sector_off", "ZeroBias"))
    assert {"qgTkNHits", "qgTkNLay", "qpVtxChi2"} <= set(affected_histograms("pixel_layer_off", "ZeroBias"))
    assert {"qpVtxX", "qpVtxY", "qpVtxChi2", "qpVtxNtr"} <= set(
        affected_histograms("tracker_misalignment", "JetHT"))
    assert {"qgTkChi2"} <= set(affected_histograms("tracker_misalignment", "ZeroBias"))
    assert {"qglobTkChi2", "qMuChi2"} <= set(affected_histograms("tracker_misalignment", "SingleMuon"))
    assert "beamspot_shift" not in SCENARIOS
    assert {"qSCEta", "qSCPhi", "qCCEta"} <= set(affected_histograms("ecal_dead_region", "JetHT"))
    assert affected_histograms("ecal_dead_region", "ZeroBias") == []
    assert set(affected_histograms("hcal_noise", "JetHT")) <= jet


def test_misalignment_widens_vertices_and_chi2_which_a_beam_spot_move_cannot_mimic():
    # a normal LHC beam-spot move shifts the vertex position and nothing else; the
    # misalignment failure leaves the position and widens the vertex x/y and the chi2
    sim = simulate("ZeroBias", eras=["2018B"], n_ls=200, seed=0)
    clone = _with_one_block(sim, "tracker_misalignment", slice(50, 60), severity=0.5)
    rows = np.arange(50, 60)
    e1 = expected_counts(clone, rows, ["qpVtxX", "qgTkChi2"], with_failures=True)
    e0 = expected_counts(clone, rows, ["qpVtxX", "qgTkChi2"], with_failures=False)
    edges = {h: sim.histograms.edges[h] for h in e1}
    s1 = {h: summarize(e1[h], edges[h]) for h in e1}
    s0 = {h: summarize(e0[h], edges[h]) for h in e0}
    np.testing.assert_allclose(s1["qpVtxX"][:, 5], s0["qpVtxX"][:, 5], atol=1e-6)  # mean: same
    assert (s1["qpVtxX"][:, 6] > 1.3 * s0["qpVtxX"][:, 6]).all()  # RMS: wider
    assert (s1["qgTkChi2"][:, 5] > 1.2 * s0["qgTkChi2"][:, 5]).all()
    # the era-to-era beam-spot move is a condition: same widths, only the mean moves
    from dc_mlops.data.simulator.conditions import ls_conditions
    from dc_mlops.data.simulator.shapes import SPECS, bin_probabilities
    sp = SPECS["qpVtxX"]
    c_a = ls_conditions(np.array(["2018A"]), np.array([15.0]), np.array([36.0]), np.array([2.0]),
                        np.array([0.5]))
    c_d = ls_conditions(np.array(["2018D"]), np.array([15.0]), np.array([36.0]), np.array([2.0]),
                        np.array([0.5]))
    a, d = (summarize(bin_probabilities(sp.shape(c), sp.edges, 1) * 1e5, sp.edges) for c in (c_a, c_d))
    assert abs(a[0, 5] - d[0, 5]) > 0.001 and abs(a[0, 6] - d[0, 6]) < 0.02 * a[0, 6]


@pytest.fixture(scope="module")
def truths() -> list[SimTruth]:
    return [make_truth(list(ERAS), 12000, seed, None, None) for seed in (0, 1)]


def test_visibility_is_the_largest_feature_change_in_units_of_the_pileup_spread(truths):
    truth = truths[0]
    from dc_mlops.data.simulator import visibility as V
    spreads = V.reference_spreads(truth, 0)
    blocks = truth.blocks
    b = int(np.flatnonzero((blocks["kind"] == "failure").to_numpy()
                           & (blocks["scenario"] == "tracker_sector_off").to_numpy())[0])
    rows = np.arange(blocks["row0"].iat[b], blocks["row1"].iat[b])[:5]
    sim = SimulatedEra("ZeroBias", None, truth.table.assign(events=1), None, None, None, None,
                       0, list(ERAS), truth=truth)
    names = affected_histograms("tracker_sector_off", "ZeroBias")
    e1 = expected_counts(sim, rows, names, with_failures=True)
    e0 = expected_counts(sim, rows, names, with_failures=False)
    pu = truth.table["pileup"].to_numpy()[rows]
    from dc_mlops.data.simulator.shapes import SPECS
    by_hand = np.max([np.max(np.abs(summarize(e1[h], SPECS[h].edges) - summarize(e0[h], SPECS[h].edges))
                             / spreads["ZeroBias"].at(h, pu), axis=1) for h in names], axis=0)
    j = VISIBILITY_PDS.index("ZeroBias")
    np.testing.assert_allclose(truth.visibility[rows, j], by_hand, rtol=1e-9)
    # a muon chamber touches no ZeroBias histogram: NaN there, a number in SingleMuon
    mu = np.flatnonzero((truth.blocks["scenario"] == "muon_chamber_off").to_numpy())
    assert len(mu), "seed 0 has muon-chamber failures"
    r = truth.blocks["row0"].iat[int(mu[0])]
    assert np.isnan(truth.visibility[r, j])
    assert np.isfinite(truth.visibility[r, VISIBILITY_PDS.index("SingleMuon")])
    # the spread follows pile-up: qgTkN's spread grows with it
    sig = spreads["ZeroBias"].sigma["qgTkN"][:, 2]
    assert sig[-1] > sig[0]


def test_labels_follow_visibility_with_a_quarter_subtle_and_a_quarter_obvious(truths):
    tables = [era_labels(t).truth for t in truths]
    tt = pd.concat(tables)
    shares = visibility_shares(tt)
    assert shares["n"] > 500
    assert shares["subtle"] >= 0.25, shares
    assert shares["obvious"] >= 0.25, shares
    assert 0.02 < shares["unflagged"] < 0.5, shares  # some failures no PD shows
    best = max_visibility(tt[[f"visibility_{p}" for p in VISIBILITY_PDS]].to_numpy(float))
    fail = tt["origin"].isin(["failure", "unflagged"]).to_numpy()
    np.testing.assert_array_equal(tt["origin"].to_numpy()[fail] == "failure", best[fail] >= 1)
    assert (tt["flagged"] == tt["origin"].isin(["failure", "dcs", "low_stats"])).all()


def test_unflagged_failures_stay_in_golden_and_are_kept_in_the_truth(truths):
    truth = truths[1]
    lab = era_labels(truth)
    un = lab.truth[lab.truth["origin"] == "unflagged"]
    assert len(un) > 0
    assert lab.golden.contains(un["run"], un["ls"]).all()
    flagged = lab.truth[lab.truth["flagged"]]
    assert not lab.golden.contains(flagged["run"], flagged["ls"]).any()
    listed = lab.failures
    for r in listed.itertuples():  # failures.csv never lists an unflagged LS
        ls = np.arange(r.first_ls, r.last_ls + 1)
        assert not lab.golden.contains(np.full(len(ls), r.run), ls).any()


def test_pd_all_puts_a_failure_in_every_pd_it_touches_and_no_other():
    truth = make_truth(["2018C"], 3000, 5, None, None)
    sims = {p: simulate(p, eras=["2018C"], n_ls=3000, seed=5, truth=truth) for p in VISIBILITY_PDS}
    first = sims["ZeroBias"]
    for sim in sims.values():
        assert sim.golden == first.golden
        pd.testing.assert_frame_equal(sim.failures, first.failures)
        np.testing.assert_array_equal(sim.histograms.runs, first.histograms.runs)
        pd.testing.assert_frame_equal(sim.lumisections.drop(columns="events"),
                                      first.lumisections.drop(columns="events"))
    blocks = truth.blocks
    failing = blocks[(blocks["scenario"] != "low_stats")].drop_duplicates("scenario")
    assert len(failing) >= 4  # several scenarios, each checked in all four PDs
    for b in failing.itertuples():
        scen = b.scenario
        rows = np.arange(b.row0, b.row1)[:3]
        for p, sim in sims.items():
            e1 = expected_counts(sim, rows, with_failures=True)
            e0 = expected_counts(sim, rows, with_failures=False)
            changed = {h for h in e1 if not np.allclose(e1[h], e0[h], rtol=1e-9, atol=1e-9)}
            assert changed == set(affected_histograms(scen, p)), (scen, p)
            vis = truth.visibility[rows, VISIBILITY_PDS.index(p)]
            assert np.isnan(vis).all() == (not changed), (scen, p)


def test_failure_with_no_histogram_in_pd_leaves_its_histograms_unchanged():
    sim = simulate("ZeroBias", eras=["2018C"], n_ls=200, seed=0)
    clone = _with_one_block(sim, "muon_chamber_off", slice(10, 30), severity=1.0)
    rows = np.arange(10, 30)
    e1 = expected_counts(clone, rows, with_failures=True)
    e0 = expected_counts(clone, rows, with_failures=False)
    for me in e1:
        np.testing.assert_array_equal(e1[me], e0[me])


@needs_real_data
def test_structure_mode_reproduces_real_2018B_dcsonly_and_its_bad_ls_as_visible_failures():
    dcs = read_certjson(CERT / "json_DCSONLY_2018.txt")
    gold = read_certjson(CERT / "json_GOLDEN_2018.txt")
    sim = simulate("ZeroBias", eras=["2018B"], structure=dcs, golden=gold, seed=0)
    b = ERAS["2018B"]
    era_dcs = CertJSON({r: rr for r, rr in dcs.ranges.items() if b.first_run <= r <= b.last_run})
    assert sim.dcsonly == era_dcs
    runs, ls = era_dcs.lumisections()
    np.testing.assert_array_equal(sim.histograms.runs, runs)
    np.testing.assert_array_equal(sim.histograms.ls, ls)
    assert sim.golden == era_dcs.intersection(gold)  # the real Golden JSON, exactly
    bad = era_dcs.difference(gold)
    assert bad.n_ls > 0 and len(sim.dcs_bad) == 0
    lum = sim.lumisections
    np.testing.assert_array_equal(_bad_mask(sim), bad.contains(lum["run"], lum["ls"]))
    assert sim.failures[["last_ls", "first_ls"]].diff(axis=1)["first_ls"].abs().add(1).sum() == bad.n_ls
    assert (lum["era"] == "2018B").all() and lum["fill"].nunique() > 10
    assert lum.groupby("fill")["run"].nunique().max() > 1
    # people flagged these LS, so some PD shows every one of them; the shares still hold
    tt = sim.truth_table
    flagged = tt[tt["origin"] == "failure"]
    best = max_visibility(flagged[[f"visibility_{p}" for p in VISIBILITY_PDS]].to_numpy(float))
    assert len(flagged) > 1000 and (best >= 1).all()
    shares = visibility_shares(tt)
    assert shares["subtle"] >= 0.25 and shares["obvious"] >= 0.25, shares
    # failures no PD shows were added on good LS: they stay in the (real) Golden JSON
    un = tt[tt["origin"] == "unflagged"]
    assert len(un) > 0 and gold.contains(un["run"], un["ls"]).all()


def test_write_simulation_writes_one_folder_for_four_pds_readable_per_pd(tmp_path):
    out = tmp_path / "era"
    labels = write_simulation(out, list(VISIBILITY_PDS), ["2018A"], 600, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["era"]  # no temp folder left
    shared = {"meta.json", "conditions.parquet", "golden.json", "dcsonly.json", "failures.csv",
              "dcs_bad.csv", "truth.parquet"}
    assert {p.name for p in out.iterdir()} == shared | set(VISIBILITY_PDS)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pds"] == list(VISIBILITY_PDS) and meta["eras"] == ["2018A"] and meta["seed"] == 2
    assert meta["layout"] == 2 and meta["n_ls"] == 600 and meta["simulator"]
    cond = pd.read_parquet(out / "conditions.parquet")
    assert list(cond.columns) == ["run", "ls", "fill", "era", "lumi", "pileup", "t_fill"]
    assert np.isfinite(cond[["lumi", "pileup", "t_fill"]].to_numpy()).all()
    truth = pd.read_parquet(out / "truth.parquet")
    for col in ["run", "ls", "scenario", "subsystem", "flagged", "origin"] + [
            f"visibility_{p}" for p in VISIBILITY_PDS]:
        assert col in truth.columns
    assert set(truth["origin"]) <= {"failure", "dcs", "low_stats", "unflagged"}
    assert read_certjson(out / "golden.json") == labels.golden
    for pd_name in VISIBILITY_PDS:
        back = read_histograms(out / pd_name / "histograms.parquet")
        assert set(back.counts) == set(BUILTIN_SETS[pd_name])
        np.testing.assert_array_equal(back.runs, cond["run"])
        mem = simulate(pd_name, eras=["2018A"], n_ls=600, seed=2)
        for me, counts in mem.histograms.counts.items():  # streamed == in memory
            np.testing.assert_array_equal(back.counts[me], counts)
        events = pd.read_parquet(out / pd_name / "events.parquet")
        np.testing.assert_array_equal(events["events"], mem.lumisections["events"])


def test_write_era_from_memory_matches_the_layout(tmp_path):
    sim = simulate("EGamma", eras=["2018A"], n_ls=300, seed=2)
    write_era(sim, tmp_path / "era")
    assert {p.name for p in (tmp_path / "era").iterdir()} >= {"EGamma", "meta.json",
                                                             "truth.parquet"}
    back = read_histograms(tmp_path / "era" / "EGamma" / "histograms.parquet")
    for me, counts in sim.histograms.counts.items():
        np.testing.assert_array_equal(back.counts[me], counts)
        np.testing.assert_allclose(back.edges[me], sim.histograms.edges[me])
    assert read_certjson(tmp_path / "era" / "dcsonly.json") == sim.dcsonly


def test_write_era_refuses_a_non_empty_output_folder(tmp_path, zb):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="taken"):
        write_era(zb, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_bad_arguments_raise_one_line_data_errors():
    with pytest.raises(DataError, match="2018Z"):
        simulate("ZeroBias", eras=["2018Z"], n_ls=1000)
    with pytest.raises(DataError, match="NoSuchPD"):
        simulate("NoSuchPD", n_ls=1000)
    with pytest.raises(DataError, match="structure"):
        simulate("ZeroBias", n_ls=1000, golden=CertJSON({}))

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
from dc_mlops.data.simulator import (SCENARIOS, affected_histograms, expected_counts,
                                     failure_shifts, simulate, subtle_share, write_era)
from dc_mlops.data.simulator import labels as L
from dc_mlops.data.simulator.conditions import ERAS
from dc_mlops.data.simulator.generate import SimTruth, make_truth
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
    for seed in range(6):
        sim_truth = make_truth(list(ERAS), 6000, seed, None, None)
        covered = (sim_truth.block >= 0).mean()
        assert 0.03 <= covered <= 0.10, (seed, covered)
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
    assert set(affected_histograms("beamspot_shift", "JetHT")) == {"qpVtxX", "qpVtxY"}
    assert {"qSCEta", "qSCPhi", "qCCEta"} <= set(affected_histograms("ecal_dead_region", "JetHT"))
    assert affected_histograms("ecal_dead_region", "ZeroBias") == []
    assert set(affected_histograms("hcal_noise", "JetHT")) <= jet


def test_a_third_of_failure_ls_are_subtle_and_many_are_obvious():
    shifts = pd.concat([failure_shifts(simulate("JetHT", n_ls=6000, seed=s)) for s in range(3)])
    subtle, obvious = subtle_share(shifts)
    assert subtle >= 1 / 3, subtle
    assert obvious >= 0.15, obvious
    assert shifts["shift"].notna().sum() > 300


def test_failure_with_no_histogram_in_pd_leaves_its_histograms_unchanged():
    sim = simulate("ZeroBias", eras=["2018C"], n_ls=200, seed=0)
    clone = _with_one_block(sim, "muon_chamber_off", slice(10, 30), severity=1.0)
    rows = np.arange(10, 30)
    e1 = expected_counts(clone, rows, with_failures=True)
    e0 = expected_counts(clone, rows, with_failures=False)
    for me in e1:
        np.testing.assert_array_equal(e1[me], e0[me])


@needs_real_data
def test_structure_mode_reproduces_real_2018A_dcsonly_and_its_bad_ls():
    dcs = read_certjson(CERT / "json_DCSONLY_2018.txt")
    gold = read_certjson(CERT / "json_GOLDEN_2018.txt")
    sim = simulate("ZeroBias", eras=["2018A"], structure=dcs, golden=gold, seed=0)
    a = ERAS["2018A"]
    era_dcs = CertJSON({r: rr for r, rr in dcs.ranges.items() if a.first_run <= r <= a.last_run})
    assert sim.dcsonly == era_dcs
    runs, ls = era_dcs.lumisections()
    np.testing.assert_array_equal(sim.histograms.runs, runs)
    np.testing.assert_array_equal(sim.histograms.ls, ls)
    assert sim.golden == era_dcs.intersection(gold)
    bad = era_dcs.difference(gold)
    assert bad.n_ls > 0 and len(sim.dcs_bad) == 0
    lum = sim.lumisections
    np.testing.assert_array_equal(_bad_mask(sim), bad.contains(lum["run"], lum["ls"]))
    assert sim.failures[["last_ls", "first_ls"]].diff(axis=1)["first_ls"].abs().add(1).sum() == bad.n_ls
    assert (lum["era"] == "2018A").all() and lum["fill"].nunique() > 10
    assert lum.groupby("fill")["run"].nunique().max() > 1


def test_write_era_round_trips_through_read_histograms(tmp_path):
    sim = simulate("EGamma", eras=["2018A"], n_ls=300, seed=2)
    out = tmp_path / "era"
    write_era(sim, out)
    names = {"histograms.parquet", "lumisections.parquet", "golden.json", "dcsonly.json",
             "failures.csv", "dcs_bad.csv", "meta.json"}
    assert {p.name for p in out.iterdir()} == names
    assert [p.name for p in tmp_path.iterdir()] == ["era"]  # no temp folder left
    back = read_histograms(out / "histograms.parquet")
    np.testing.assert_array_equal(back.runs, sim.histograms.runs)
    np.testing.assert_array_equal(back.ls, sim.histograms.ls)
    assert set(back.counts) == set(sim.histograms.counts)
    for me, counts in sim.histograms.counts.items():
        np.testing.assert_array_equal(back.counts[me], counts)
        np.testing.assert_allclose(back.edges[me], sim.histograms.edges[me])
    lum = pd.read_parquet(out / "lumisections.parquet")
    assert list(lum.columns) == ["run", "ls", "fill", "era", "lumi", "pileup", "events"]
    np.testing.assert_array_equal(lum["events"], sim.lumisections["events"])
    for name in ("failures.csv", "dcs_bad.csv"):
        assert list(pd.read_csv(out / name).columns) == [
            "run", "first_ls", "last_ls", "subsystem", "scenario", "severity"]
    assert read_certjson(out / "golden.json") == sim.golden
    assert read_certjson(out / "dcsonly.json") == sim.dcsonly
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pd"] == "EGamma" and meta["eras"] == ["2018A"] and meta["seed"] == 2
    assert meta["n_ls"] == 300 and "dc_mlops_version" in meta and meta["simulator"]


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

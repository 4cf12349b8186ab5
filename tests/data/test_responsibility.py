import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.responsibility import (DEFAULT_MAP, judged_bad, load_responsibility,
                                          subsystems_of)
from dc_mlops.errors import DataError


def test_default_map_and_subsystems():
    assert load_responsibility() == DEFAULT_MAP
    assert subsystems_of("ZeroBias", DEFAULT_MAP) == {"TRACKER", "PIXEL"}
    assert subsystems_of("JetHT", DEFAULT_MAP) == {"HCAL", "JETMET"}
    assert subsystems_of("SingleMuon", DEFAULT_MAP) == {"MUON"}
    assert subsystems_of("EGamma", DEFAULT_MAP) == {"ECAL"}


def test_yaml_override_replaces_only_the_entries_it_names(tmp_path):
    p = tmp_path / "map.yaml"
    p.write_text("pixel: JetHT\nCASTOR: ZeroBias\n")
    m = load_responsibility(str(p))
    assert m["PIXEL"] == "JetHT" and m["CASTOR"] == "ZeroBias" and m["MUON"] == "SingleMuon"
    assert subsystems_of("ZeroBias", m) == {"TRACKER", "CASTOR"}


@pytest.mark.parametrize("text, words", [
    ("PIXEL: Foo\n", "maps to 'Foo', not a known PD"),
    ("- PIXEL\n", "must be a mapping"),
    ("", "must be a mapping"),
    ("PIXEL: [ZeroBias\n", "not valid YAML"),
])
def test_bad_override_is_one_line(tmp_path, text, words):
    p = tmp_path / "map.yaml"
    p.write_text(text)
    with pytest.raises(DataError) as err:
        load_responsibility(str(p))
    assert str(p) in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


def test_judged_bad_follows_the_pd_and_never_dcs_or_low_statistics():
    label = np.array([1, 1, 1, 1, 1, 1, 0])
    sub = np.array(["TRACKER", "MUON", "", "PIXEL", "TRACKER", "DAQ", "TRACKER"])
    origin = np.array(["failure", "failure", "human", "dcs", "failure", "failure", "good"])
    scen = np.array(["tracker_sector_off", "muon_chamber_off", "human", "dcs", "x", "low_stats", ""])
    zb = judged_bad(label, sub, origin, scen, "ZeroBias", DEFAULT_MAP)
    assert zb.tolist() == [True, False, True, False, True, False, False]
    mu = judged_bad(label, sub, origin, scen, "SingleMuon", DEFAULT_MAP)
    assert mu.tolist() == [False, True, True, False, False, False, False]
    # a custom feature set (e.g. the pixel ME) is judged on every bad LS it could be
    custom = judged_bad(label, sub, origin, scen, "my_pixel_set", DEFAULT_MAP)
    assert custom.tolist() == [True, True, True, False, True, False, False]


def test_a_pd_is_not_judged_on_failures_its_histograms_do_not_show(tmp_path):
    """In a simulated era, a failure LS flagged from another PD (visibility below 1 in this
    one) is bad for this PD's labels but not judged: its AUC and t_good leave it out."""
    from dc_mlops.data.lstable import LabelOptions, load_ls_table
    from dc_mlops.data.simulator import write_simulation

    era = tmp_path / "era"
    write_simulation(era, ["EGamma", "JetHT"], ["2018B"], 6000, seed=3)
    hidden = 0
    truth = pd.read_parquet(era / "truth.parquet")
    for pd_name in ("EGamma", "JetHT"):
        f = load_ls_table(str(era), pd_name, LabelOptions()).frame
        t = truth[truth["origin"] == "failure"].rename(columns={"run": "runId", "ls": "lumiId"})
        m = f.merge(t, on=["runId", "lumiId"], how="inner")
        mine = m["subsystem_y"].isin(subsystems_of(pd_name, DEFAULT_MAP))
        seen = m[f"visibility_{pd_name}"] >= 1
        assert (m["judged"] == (mine & seen & (m["EventsPerLs"] >= 500))).all(), pd_name
        hidden += int((mine & ~seen).sum())
    assert hidden > 0  # the case exists: flagged from another PD, not judged here

import json

import pytest

from dc_mlops.data.features import BUILTIN_SETS, canonical_name, get_feature_set
from dc_mlops.errors import DataError


def test_builtin_sets_have_the_spec_sizes():
    sizes = {k: len(v) for k, v in BUILTIN_SETS.items()}
    assert sizes == {"ZeroBias": 14, "JetHT": 26, "EGamma": 29, "SingleMuon": 20}
    assert len(get_feature_set("JetHT").feature_names()) == 26 * 7
    assert get_feature_set("JetHT").feature_names()[:2] == ["qpVtxChi2_0", "qpVtxChi2_1"]


def test_trailing_underscore_is_the_same_histogram():
    assert canonical_name("qpVtxX_") == "qpVtxX" == canonical_name("qpVtxX")


def test_user_defined_sets(tmp_path):
    y = tmp_path / "pixel.yaml"
    y.write_text("name: Pixel\nhistograms: [chargeInner_PXLayer_1, size_PXLayer_1_]\n")
    fs = get_feature_set(str(y))
    assert fs.name == "Pixel" and fs.histograms == ("chargeInner_PXLayer_1", "size_PXLayer_1")
    j = tmp_path / "set.json"
    j.write_text(json.dumps(["qA", "qB"]))
    assert get_feature_set(str(j)).histograms == ("qA", "qB")
    assert get_feature_set("auto", available=["qB_", "qA"]).histograms == ("qA", "qB")


@pytest.mark.parametrize("content, words", [
    ("histograms: []", "non-empty list"),
    ("histograms: [qA, qA_]", "listed twice"),
    ("histograms: [qA", "not valid YAML"),
])
def test_bad_user_sets(tmp_path, content, words):
    p = tmp_path / "s.yaml"
    p.write_text(content)
    with pytest.raises(DataError, match=words):
        get_feature_set(str(p))


def test_unknown_pd():
    with pytest.raises(DataError, match="unknown PD 'Jet'"):
        get_feature_set("Jet")

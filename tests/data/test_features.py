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


def test_vertex_positions_are_relative_to_the_beam_spot():
    """A beam-spot move (every vertex-x number shifted) is a run condition: the relative
    summary does not see it; a wider luminous region (a misalignment) it does."""
    import numpy as np
    import pandas as pd

    from dc_mlops.data.features import relative_to_beam_spot
    names = [f"qpVtxX_{i}" for i in range(7)] + [f"qgTkPt_{i}" for i in range(7)]
    base = np.array([0.0947, 0.0955, 0.0960, 0.0965, 0.0973, 0.0960, 0.0010] + [1.0] * 7)
    moved = base.copy()
    moved[:6] += 0.0021  # 21 microns, 2018A -> 2018D
    wider = base.copy()
    wider[[0, 1, 3, 4]] += np.array([-1, -0.5, 0.5, 1]) * 0.0004
    frame = pd.DataFrame([base, moved, wider], columns=names)
    changed = relative_to_beam_spot(frame, names)
    assert changed == [f"qpVtxX_{i}" for i in range(6)]
    out = frame.to_numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-12)  # the move is gone
    assert np.abs(out[2] - out[0]).max() > 3e-4  # the widening stays
    assert (frame["qpVtxX_2"] == 0).all() and (frame["qgTkPt_3"] == 1.0).all()

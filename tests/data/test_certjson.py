import json

import numpy as np
import pytest

from dc_mlops.data.certjson import CertJSON, read_certjson
from dc_mlops.errors import DataError


def test_round_trip_merges_adjacent_ranges(tmp_path):
    cert = CertJSON.from_dict({"2": [[5, 7], [1, 4]], "1": [[10, 10]]})
    assert cert.to_dict() == {"1": [[10, 10]], "2": [[1, 7]]}
    path = tmp_path / "c.json"
    cert.write(path)
    assert read_certjson(path) == cert
    assert cert.n_runs == 2 and cert.n_ls == 8


def test_lumisections_and_back():
    runs = np.array([3, 3, 3, 3, 5, 5])
    ls = np.array([1, 2, 4, 5, 9, 10])
    cert = CertJSON.from_lumisections(runs, ls)
    assert cert.to_dict() == {"3": [[1, 2], [4, 5]], "5": [[9, 10]]}
    r, l = cert.lumisections()
    assert r.tolist() == runs.tolist() and l.tolist() == ls.tolist()


def test_contains_is_vectorised_and_exact():
    cert = CertJSON.from_dict({"100": [[1, 3], [7, 9]], "200": [[2, 2]]})
    runs = np.array([100, 100, 100, 100, 200, 200, 150])
    ls = np.array([1, 4, 7, 10, 2, 3, 1])
    assert cert.contains(runs, ls).tolist() == [True, False, True, False, True, False, False]
    assert CertJSON({}).contains([1], [1]).tolist() == [False]


def test_set_operations():
    a = CertJSON.from_dict({"1": [[1, 10]]})
    b = CertJSON.from_dict({"1": [[5, 15]], "2": [[1, 1]]})
    assert a.union(b).to_dict() == {"1": [[1, 15]], "2": [[1, 1]]}
    assert a.intersection(b).to_dict() == {"1": [[5, 10]]}
    assert a.difference(b).to_dict() == {"1": [[1, 4]]}


@pytest.mark.parametrize("obj, words", [
    ([1, 2], "top level"),
    ({"abc": [[1, 2]]}, "'abc' is not a run number"),
    ({"1": [[1, 2, 3]]}, "run 1: range [1, 2, 3]"),
    ({"1": [[5, 2]]}, "run 1: range [5, 2] has first > last"),
    ({"1": [[0, 2]]}, "LS < 1"),
    ({"1": [[1, 5], [4, 8]]}, "run 1: ranges [1, 5] and [4, 8] overlap"),
    ({"1": [["1", 5]]}, "not [first, last] integers"),
    ({"1": [[1.5, 5]]}, "not [first, last] integers"),
    ({"1": "1-5"}, "run 1: value must be a list"),
])
def test_malformed_json_names_the_key(tmp_path, obj, words):
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError) as err:
        read_certjson(path)
    assert str(path) in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


def test_unparsable_and_missing_files(tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text('{"1": [[1, 2]')
    with pytest.raises(DataError, match="not valid JSON"):
        read_certjson(bad)
    with pytest.raises(DataError, match="not found"):
        read_certjson(tmp_path / "nope.json")


def test_real_2018_jsons(shared_data):
    golden = read_certjson(shared_data / "certification_json" / "json_GOLDEN_2018.txt")
    dcs = read_certjson(shared_data / "certification_json" / "json_DCSONLY_2018.txt")
    assert (golden.n_runs, golden.n_ls) == (478, 234529)
    assert (dcs.n_runs, dcs.n_ls) == (681, 258508)
    # Golden is a subset of DCS-only: every human-bad LS had the detector on
    assert golden.difference(dcs).n_ls == 0
    assert dcs.difference(golden).n_ls == 258508 - 234529

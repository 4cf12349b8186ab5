import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dc_mlops.data.certjson import read_certjson
from dc_mlops.data.histograms import Histograms, read_histograms, to_long_table
from dc_mlops.errors import DataError

PIXEL = "cms2017B_zerobias_pixel/chargeInner_PXLayer_1_runs297047-297050.csv"
GOLDEN_2017 = "certification_json/Cert_294927-306462_13TeV_PromptReco_Collisions17_JSON.txt"


def _small(n=6, seed=0) -> Histograms:
    rng = np.random.default_rng(seed)
    runs = np.repeat([1, 2], n // 2)
    ls = np.tile(np.arange(1, n // 2 + 1), 2)
    counts = {"qA": rng.integers(0, 20, (n, 8)).astype(float),
              "qB": rng.integers(0, 20, (n, 5)).astype(float)}
    edges = {"qA": np.linspace(0, 8, 9), "qB": np.linspace(-1, 1, 6)}
    return Histograms(runs, ls, counts, edges)


def test_long_layout_round_trip_parquet_and_jsonl(tmp_path):
    h = _small()
    table = to_long_table(h)
    pq.write_table(table, tmp_path / "h.parquet")
    table.to_pandas().to_json(tmp_path / "h.jsonl", orient="records", lines=True)
    for name in ("h.parquet", "h.jsonl"):
        back = read_histograms(tmp_path / name)
        assert back.runs.tolist() == h.runs.tolist() and back.ls.tolist() == h.ls.tolist()
        for me in h.counts:
            np.testing.assert_array_equal(back.counts[me], h.counts[me])
            np.testing.assert_allclose(back.edges[me], h.edges[me])


def test_real_pixel_fixture_drops_or_folds_under_and_overflow(shared_data):
    raw = pd.read_csv(shared_data / PIXEL)
    order = np.lexsort((raw["lumi"], raw["run"]))
    every = raw[[f"bin_{i}" for i in range(102)]].to_numpy().sum(axis=1)[order]
    inner = raw[[f"bin_{i}" for i in range(1, 101)]].to_numpy().sum(axis=1)[order]
    assert (every > inner).any()  # the fixture has overflow entries
    for mode, expected in (("fold", every), ("drop", inner)):
        h = read_histograms(shared_data / PIXEL, under_overflow=mode)
        assert h.n_ls == 834 and h.names == ["chargeInner_PXLayer_1"]
        assert h.counts["chargeInner_PXLayer_1"].shape == (834, 100)
        np.testing.assert_allclose(h.counts["chargeInner_PXLayer_1"].sum(axis=1), expected)
        # entries always count everything the LS recorded
        np.testing.assert_allclose(h.entries["chargeInner_PXLayer_1"], every)


def test_real_pixel_good_column_agrees_with_2017_golden(shared_data):
    raw = pd.read_csv(shared_data / PIXEL)
    golden = read_certjson(shared_data / GOLDEN_2017)
    in_golden = golden.contains(raw["run"].to_numpy(), raw["lumi"].to_numpy())
    assert (in_golden == raw["good"].astype(bool).to_numpy()).all()


def _long_df():
    return to_long_table(_small()).to_pandas()


@pytest.mark.parametrize("mutate, words", [
    (lambda df: df.drop(columns=["x_bin"]), "missing column 'x_bin'"),
    (lambda df: df.iloc[:0], "empty input"),
    (lambda df: pd.concat([df, df.iloc[[0]]]), "duplicated (run, LS) = (1, 1)"),
    (lambda df: df.drop(index=[7]), "has no histogram for (run, LS)"),
    (lambda df: df.assign(x_max=np.where(np.arange(len(df)) == 2, 99.0, df["x_max"])),
     "changes its binning"),
])
def test_bad_long_input_names_the_fault(tmp_path, mutate, words):
    df = mutate(_long_df())
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    with pytest.raises(DataError) as err:
        read_histograms(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_nan_bin_content_rejected(tmp_path):
    df = _long_df()
    data = [list(map(float, d)) for d in df["data"]]
    data[3][2] = float("nan")
    df["data"] = data
    path = tmp_path / "nan.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match="NaN, inf or negative"):
        read_histograms(path)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "h.txt").write_text("x")
    with pytest.raises(DataError, match="unknown histogram format"):
        read_histograms(tmp_path / "h.txt")
    with pytest.raises(DataError, match="not found"):
        read_histograms(tmp_path / "missing.parquet")

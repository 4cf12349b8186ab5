import numpy as np
import pytest

from dc_mlops.data.features import LEGACY_2016_QUANTILES
from dc_mlops.data.summary import normalised_bins, summarize


@pytest.mark.parametrize("dist", ["normal", "exponential", "uniform"])
def test_quantiles_agree_with_numpy_within_one_bin(dist):
    rng = np.random.default_rng(1)
    edges = np.linspace(0, 10, 101)
    rows, samples = [], []
    for _ in range(20):
        x = {"normal": rng.normal(5, 1.2, 5000), "exponential": rng.exponential(1.5, 5000),
             "uniform": rng.uniform(2, 8, 5000)}[dist]
        x = x[(x >= 0) & (x < 10)]
        rows.append(np.histogram(x, edges)[0])
        samples.append(x)
    out = summarize(np.array(rows), edges)
    width = edges[1] - edges[0]
    for i, x in enumerate(samples):
        np.testing.assert_allclose(out[i, :5], np.quantile(x, [.1, .3, .5, .7, .9]), atol=width)
        assert abs(out[i, 5] - x.mean()) < width / 2
        assert abs(out[i, 6] - x.std()) < width / 2


def test_quantile_interpolates_inside_the_bin():
    # all entries in one bin [2, 3): the median sits half-way through it
    counts = np.zeros((1, 5))
    counts[0, 2] = 10
    out = summarize(counts, np.arange(6.0))
    np.testing.assert_allclose(out[0, :5], [2.1, 2.3, 2.5, 2.7, 2.9])
    assert out[0, 5] == 2.5 and out[0, 6] == 0


def test_legacy_quantiles_give_range_of_nonempty_bins():
    counts = np.array([[0, 3, 4, 0, 2, 0]], float)
    out = summarize(counts, np.arange(7.0), LEGACY_2016_QUANTILES)
    assert out[0, 0] == 1.0 and out[0, 4] == 5.0


def test_empty_histogram_gives_nan_row():
    out = summarize(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]), np.arange(4.0))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_normalised_bins_sum_to_one():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, (10, 30)).astype(float)
    np.testing.assert_allclose(normalised_bins(counts).sum(axis=1), 1.0)


def test_mismatched_edges_rejected():
    with pytest.raises(ValueError):
        summarize(np.ones((2, 5)), np.arange(5.0))

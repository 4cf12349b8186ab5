"""``mahalanobis``: the score is what ``explain`` shows, in every mode; ``topn`` finds a
failure that moves a few of many correlated features where the whole distance dilutes it;
``histogram`` finds a failure that changes one histogram's shape, and lets
through far fewer good LS at the cut-off that stops 99 % of such failures."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from dc_mlops.detectors import load_detector, registry
from dc_mlops.detectors.mahalanobis import chi2_to_z
from dc_mlops.errors import DataError

D = 120  # features, as a PD's summary table (98-203)


def _correlated(rng: np.random.Generator, n: int, mix: np.ndarray) -> np.ndarray:
    """LS whose features move together (a few common factors, as pile-up moves
    multiplicities) plus each feature's own noise."""
    return rng.normal(size=(n, mix.shape[0])) @ mix + rng.normal(size=(n, D))


@pytest.fixture(scope="module")
def sparse_failures():
    """Good training LS, good test LS and failures that shift 3 of 120 features by 2.5
    times their own noise, against the correlations (a few histograms of one subsystem)."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, D)) * 2.0
    train, good = _correlated(rng, 5000, mix), _correlated(rng, 1000, mix)
    bad = _correlated(rng, 1000, mix)
    cols = rng.choice(D, size=(len(bad), 3))
    np.put_along_axis(bad, cols, np.take_along_axis(bad, cols, axis=1) + 2.5, axis=1)
    return train, good, bad


NAMES = [f"h{j // 6}_{j % 6}" for j in range(D)]  # 20 histograms of 6 numbers


@pytest.mark.parametrize("mode", ["sum", "topn", "histogram"])
def test_the_score_is_what_explain_shows(mode, sparse_failures):
    train, good, _ = sparse_failures
    det = registry.build("mahalanobis", score_mode=mode, top_n=7).fit(train, feature_names=NAMES)
    terms = det.explain(good[:200])
    if mode == "sum":
        expected = terms.sum(axis=1)
    elif mode == "topn":
        expected = np.sort(terms, axis=1)[:, -7:].mean(1)
    else:  # each histogram's 6 terms add up to its distance, chi-square with 6 dof
        d2 = terms.reshape(len(terms), 20, 6).sum(axis=2)
        expected = chi2_to_z(d2, np.full(20, 6.0)).max(axis=1)
    # scoring whitens in float32 (see MahalanobisDetector._score_batch)
    np.testing.assert_allclose(det.score(good[:200]), expected, rtol=1e-5, atol=1e-5)


def test_chi2_to_z_is_a_standard_normal_for_chi_square_values():
    rng = np.random.default_rng(1)
    for k in (3, 7, 50):  # a histogram has 7 summary numbers, or its bins
        z = chi2_to_z(rng.chisquare(k, 200_000), np.full(1, float(k)))
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05, k
        assert abs(np.mean(z > 3) - 0.00135) < 0.0015, k  # the tail a cut-off sits in


@pytest.fixture(scope="module")
def histogram_failures():
    """30 histograms of 7 numbers that move together (quantiles of one distribution); each
    failure changes the shape of one histogram: its numbers move 1.5 of their own noise up
    and down, against how they usually move."""
    rng = np.random.default_rng(1)
    h, k = 30, 7

    def ls(n):
        return (0.8 * rng.normal(size=(n, h, 1)) + 0.6 * rng.normal(size=(n, h, k)))

    train, good, bad = ls(3000).reshape(3000, -1), ls(1000).reshape(1000, -1), ls(400)
    bad[np.arange(400), rng.integers(0, h, 400)] += 1.5 * np.where(np.arange(k) % 2, -1, 1)
    return train, good, bad.reshape(400, -1), [f"h{j // k}_{j % k}" for j in range(h * k)]


def test_histogram_mode_certifies_far_more_good_ls_at_the_same_failure_cut_off(
        histogram_failures):
    """What certification needs: the cut-off that lets 1 % of failures through, and the
    share of good LS below it. Measured here: 0.42 summed, 0.49 top 10, 0.96 per histogram
    (ROC AUC 0.91, 0.94, 0.998). Without names the columns are one group: the whole
    distance again."""
    train, good, bad, names = histogram_failures
    below, auc = {}, {}
    for mode in ("sum", "topn", "histogram"):
        det = registry.build("mahalanobis", score_mode=mode).fit(train, feature_names=names)
        sg, sb = det.score(good), det.score(bad)
        below[mode] = float(np.mean(sg < np.quantile(sb, 0.01)))
        auc[mode] = roc_auc_score(np.r_[np.zeros(len(sg)), np.ones(len(sb))], np.r_[sg, sb])
    assert below["histogram"] > max(below["sum"], below["topn"]) + 0.3, below
    assert auc["histogram"] > max(auc["sum"], auc["topn"]), auc
    unnamed = registry.build("mahalanobis", score_mode="histogram").fit(train)
    assert len(unnamed.dof_) == 1
    summed = registry.build("mahalanobis", score_mode="sum").fit(train).score(good)
    assert spearmanr(unnamed.score(good), summed).statistic > 0.9999


def test_topn_finds_failures_of_a_few_features_that_the_whole_distance_dilutes(
        sparse_failures):
    """The sum over 120 terms carries the shift of 3 features against the spread of all
    120; the mean of the 10 largest keeps more of it. Measured here (ROC AUC): 0.78 summed,
    0.82 top 10."""
    train, good, bad = sparse_failures
    y = np.r_[np.zeros(len(good)), np.ones(len(bad))]
    X = np.r_[good, bad]
    auc = {m: roc_auc_score(y, registry.build("mahalanobis", score_mode=m).fit(train).score(X))
           for m in ("sum", "topn")}
    assert auc["topn"] > auc["sum"] + 0.02, auc


@pytest.mark.parametrize("mode", ["topn", "histogram"])
def test_the_mode_is_saved_with_the_model(mode, sparse_failures, tmp_path):
    train, good, _ = sparse_failures
    det = registry.build("mahalanobis", score_mode=mode, top_n=5).fit(train, feature_names=NAMES)
    det.save(tmp_path / "m")
    back = load_detector(tmp_path / "m")
    assert (back.score_mode, back.top_n, back.feature_names_in_) == (mode, 5, NAMES)
    np.testing.assert_allclose(back.score(good[:50]), det.score(good[:50]), rtol=1e-12)


def test_feature_names_must_name_each_column_once(sparse_failures):
    train = sparse_failures[0]
    with pytest.raises(DataError, match="feature_names: 119 names for 120 feature columns"):
        registry.build("mahalanobis").fit(train, feature_names=NAMES[:-1])
    with pytest.raises(DataError, match="feature_names: 'h0_0' names two columns"):
        registry.build("mahalanobis").fit(train, feature_names=["h0_0"] + NAMES[:-1])


@pytest.mark.parametrize("params, message", [
    ({"score_mode": "max"}, "score_mode must be one of sum, topn, histogram, got 'max'"),
    ({"top_n": 0}, "top_n must be a whole number >= 1, got 0"),
    ({"top_n": 2.5}, "top_n must be a whole number >= 1, got 2.5"),
])
def test_bad_settings_are_refused_before_fitting(params, message):
    with pytest.raises(DataError, match=message):
        registry.build("mahalanobis", **params).fit(np.zeros((10, 3)) + np.arange(3))

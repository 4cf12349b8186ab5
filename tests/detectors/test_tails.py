"""``tails``: known answers for the empirical part and the exponential tail, and the property
PyOD's ECOD lacks (an LS scores the same whatever it is scored with)."""
from __future__ import annotations

import numpy as np
import pytest

from dc_mlops.detectors import registry
from dc_mlops.errors import DataError


def test_empirical_tail_probabilities_are_counted_among_the_good_ls():
    X = np.arange(1.0, 101.0)[:, None]  # 100 good LS: 1, 2, ..., 100
    det = registry.build("tails", tail_share=0.05).fit(X)
    # 10 sits with 10 good LS at or below it: p = 11/101; 50 with 50 below: p = 51/101
    np.testing.assert_allclose(det.score(np.array([[10.0], [50.0], [91.0]])),
                               -np.log(np.array([11, 51, 11]) / 101.0))


def test_past_the_good_ls_the_score_keeps_growing_exponentially():
    X = np.arange(1.0, 101.0)[:, None]
    det = registry.build("tails", tail_share=0.05).fit(X)
    # the 5 most extreme: threshold u = 96, mean excess b = (0+1+2+3+4)/5 = 2
    far = det.score(np.array([[96.0 + 2.0], [96.0 + 20.0], [96.0 + 200.0]]))
    np.testing.assert_allclose(far, np.log(101.0 / 5) + np.array([1.0, 10.0, 100.0]))
    low = det.score(np.array([[5.0 - 20.0]]))  # the lower tail: u = 5, b = 2
    np.testing.assert_allclose(low, np.log(101.0 / 5) + 10.0)


def test_a_score_does_not_depend_on_the_batch():
    """PyOD's ECOD ranks each LS among the training LS and the batch it is scored with: a
    failure scored with many like it looks ordinary. Here the distributions are frozen."""
    rng = np.random.default_rng(0)
    det = registry.build("tails").fit(rng.normal(size=(2000, 6)))
    one = rng.normal(size=(1, 6)) + 3.0
    crowd = np.repeat(one, 500, axis=0)
    assert det.score(one)[0] == pytest.approx(det.score(np.r_[crowd, one])[-1], rel=1e-12)


def test_explain_adds_up_and_names_the_feature_that_moved():
    rng = np.random.default_rng(1)
    det = registry.build("tails").fit(rng.normal(size=(3000, 5)))
    x = np.zeros((1, 5))
    x[0, 3] = 6.0
    terms = det.explain(x)
    assert np.argmax(terms[0]) == 3
    np.testing.assert_allclose(terms.sum(axis=1), det.score(x))


def test_a_constant_feature_is_harmless_and_bad_settings_say_which():
    X = np.c_[np.random.default_rng(2).normal(size=500), np.full(500, 3.0)]
    s = registry.build("tails").fit(X).score(X[:10])
    assert np.isfinite(s).all()
    with pytest.raises(DataError, match="tails: tail_share must be in"):
        registry.build("tails", tail_share=0.7).fit(X)
    with pytest.raises(DataError, match="tails: max_samples must be positive"):
        registry.build("tails", max_samples=0).fit(X)


def test_the_empirical_tail_stays_at_the_floor_as_in_ecod():
    X = np.arange(1.0, 101.0)[:, None]
    det = registry.build("tails", tail="empirical").fit(X)
    np.testing.assert_allclose(det.score(np.array([[150.0], [1e6]])), np.log(101.0))
    with pytest.raises(DataError, match="tails: tail must be one of exponential, empirical"):
        registry.build("tails", tail="gumbel").fit(X)

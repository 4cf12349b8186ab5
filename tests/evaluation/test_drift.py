"""The domain check of certify (evaluation.drift): score drift is judged upwards only."""
import numpy as np

from dc_mlops.evaluation.drift import domain_report, upward_ks


def test_upward_ks_sees_an_era_that_scores_higher_not_one_that_scores_lower():
    rng = np.random.default_rng(0)
    ref = rng.exponential(size=4000)
    assert upward_ks(ref * 2.5, ref) > 0.3  # more anomalous than the calibration: drift
    assert upward_ks(ref * 0.7, ref) == 0.0  # less: what a fuller model gives
    assert upward_ks(rng.exponential(size=4000), ref) < 0.05


def test_an_era_scoring_higher_is_out_of_domain_and_says_why():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 3))
    calib = rng.exponential(size=2000)
    rep = domain_report(X, ["a", "b", "c"], [-5] * 3, [5] * 3, calib * 2.5, calib)
    assert not rep["in_domain"] and "score distribution moved" in rep["reasons"][0]
    assert domain_report(X, ["a", "b", "c"], [-5] * 3, [5] * 3, calib * 0.5, calib)["in_domain"]

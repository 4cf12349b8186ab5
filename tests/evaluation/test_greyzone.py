import numpy as np
import pytest

from dc_mlops.evaluation.greyzone import (BAD, GOOD, GREY, conformal_bad_cutoff,
                                          conformal_p_values, decide, empirical_good_cutoff,
                                          fit_cutoffs, grey_zone_metrics)


def test_conformal_cutoff_by_hand():
    calib = np.arange(1.0, 100.0)  # 99 good LS scored 1..99
    # alpha = 0.05: k = floor(0.05 * 100) = 5 -> 5th largest score = 95
    assert conformal_bad_cutoff(calib, 0.05) == 95.0
    p = conformal_p_values(calib, np.array([95.0, 95.5, 96.0]))
    np.testing.assert_allclose(p, [6 / 100, 5 / 100, 5 / 100])
    # exactly the scores with p <= alpha are above the cut-off
    scores = np.linspace(0, 120, 1201)
    assert ((conformal_p_values(calib, scores) <= 0.05) == (scores > 95.0)).all()


def test_too_few_calibration_ls_flags_nothing():
    assert conformal_bad_cutoff(np.ones(50), 0.01) == float("inf")


def test_conformal_bound_holds_in_finite_samples():
    # many small calibration sets: the share of fresh good LS flagged stays <= alpha on average
    rng = np.random.default_rng(0)
    alpha, n = 0.1, 19
    flagged = []
    for _ in range(4000):
        calib, fresh = rng.exponential(size=n), rng.exponential()
        flagged.append(fresh > conformal_bad_cutoff(calib, alpha))
    assert np.mean(flagged) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / 4000)
    assert np.mean(flagged) > alpha - 0.03  # and it is not wastefully conservative


def test_good_cutoff_lets_at_most_beta_of_known_bad_through():
    bad = np.arange(10.0, 110.0)  # 100 known bad LS scored 10..109
    assert empirical_good_cutoff(bad, 0.0) == 10.0      # below every known bad LS
    assert empirical_good_cutoff(bad, 0.03) == 13.0     # 3 bad LS (10, 11, 12) would pass
    assert np.mean(bad < empirical_good_cutoff(bad, 0.03)) <= 0.03
    assert empirical_good_cutoff(np.array([]), 0.01) == -float("inf")


def test_decisions_rates_and_automation_by_hand():
    calib = np.arange(1.0, 100.0)
    bad_known = np.array([50.0, 60.0, 70.0])
    cut = fit_cutoffs(calib, bad_known, max_good_as_bad=0.05, max_bad_as_good=0.0)
    assert (cut.t_good, cut.t_bad) == (50.0, 95.0)
    scores = np.array([10.0, 49.9, 50.0, 80.0, 95.0, 96.0, 200.0])
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    assert decide(scores, cut).tolist() == [GOOD, GOOD, GREY, GREY, GREY, BAD, BAD]
    m = grey_zone_metrics(scores, labels, cut)
    assert m["test_automation_rate"] == pytest.approx(4 / 7)
    assert m["test_bad_as_good_rate"] == 0.0 and m["test_good_as_bad_rate"] == 0.0
    assert m["test_good_certified_rate"] == pytest.approx(2 / 4)


def test_overlapping_cutoffs_leave_no_grey_zone():
    cut = fit_cutoffs(np.arange(1.0, 100.0), np.array([500.0]), 0.05, 0.0)
    assert cut.t_good == cut.t_bad == 95.0
    assert GREY not in decide(np.array([1.0, 94.0, 96.0]), cut).tolist()

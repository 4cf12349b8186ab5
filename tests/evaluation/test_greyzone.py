"""Cut-offs, decisions and the SPEC §4.2 figures, checked by hand."""
import numpy as np
import pytest

from dc_mlops.evaluation.greyzone import (BAD, DCS, GOOD, GREY, LOW, bad_needed,
                                          bounded_good_cutoff, clustered_rate_upper_bound,
                                          combine, conformal_bad_cutoff, conformal_p_values,
                                          decide, decision_metrics, episode_ids, fit_cutoffs,
                                          rate_upper_bound, refresh_cutoffs)


def test_conformal_cutoff_by_hand():
    calib = np.arange(1.0, 100.0)  # 99 good LS scored 1..99
    # alpha = 0.05: k = floor(0.05 * 100) = 5 -> 5th largest score = 95
    assert conformal_bad_cutoff(calib, 0.05) == 95.0
    p = conformal_p_values(calib, np.array([95.0, 95.5, 96.0]))
    np.testing.assert_allclose(p, [6 / 100, 5 / 100, 5 / 100])
    scores = np.linspace(0, 120, 1201)
    assert ((conformal_p_values(calib, scores) <= 0.05) == (scores > 95.0)).all()


def test_too_few_calibration_ls_flags_nothing():
    assert conformal_bad_cutoff(np.ones(50), 0.01) == float("inf")


def test_conformal_bound_holds_in_finite_samples():
    rng = np.random.default_rng(0)
    alpha, n = 0.1, 19
    flagged = [rng.exponential() > conformal_bad_cutoff(rng.exponential(size=n), alpha)
               for _ in range(4000)]
    assert np.mean(flagged) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / 4000)
    assert np.mean(flagged) > alpha - 0.03  # and it is not wastefully conservative


def test_one_sided_bound_by_hand():
    # none of m seen: the 95 % upper bound is 1 - 0.05^(1/m)
    assert rate_upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert rate_upper_bound(0, 298) > 0.01 > rate_upper_bound(0, 299)
    assert bad_needed(0.01) == 299 and bad_needed(0.001) == 2995


def test_good_cutoff_rests_on_enough_known_bad_ls():
    few = np.arange(10.0, 110.0)  # 100 known bad LS: a 1 % claim is not supported
    t, bound = bounded_good_cutoff(few, 0.01)
    assert t == 10.0 and bound > 0.01  # the lowest known-bad score, marked unsupported
    many = np.arange(2000.0)  # 2000: supports k bad LS below the cut-off with bound <= 1 %
    t, bound = bounded_good_cutoff(many, 0.01)
    k = int(t)
    assert bound <= 0.01 and rate_upper_bound(k + 1, 2000) > 0.01 and k >= 5
    assert bounded_good_cutoff(np.array([]), 0.01) == (-float("inf"), 1.0)
    cut = fit_cutoffs(np.arange(1.0, 100.0), few, 0.05, 0.01)
    assert not cut.t_good_supported and cut.bad_needed == 299 and cut.n_known_bad == 100


def test_decisions_and_rates_by_hand():
    scores = np.array([1.0, 2.0, 5.0, 5.0, 9.0, 9.5, 8.0, 1.5])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    judged = np.array([False, False, False, True, False, True, True, False])
    d = decide(scores, t_good=3.0, t_bad=8.5)
    assert d.tolist() == [GOOD, GOOD, GREY, GREY, BAD, BAD, GREY, GOOD]
    m = decision_metrics(d, labels, judged)  # LS 7 (bad, not judged) is left out
    assert m["test_n_ls"] == 7 and m["test_n_bad"] == 3
    assert m["test_automation_rate"] == pytest.approx(4 / 7)
    assert m["test_correct_automation_rate"] == pytest.approx(3 / 7)  # LS 0, 1 GOOD; 5 BAD
    assert m["test_good_as_bad_rate"] == pytest.approx(1 / 4)
    assert m["test_bad_as_good_rate"] == 0.0 and m["test_contamination"] == 0.0
    m_all = decision_metrics(d, labels)  # every bad LS judged: LS 7 is a bad LS certified GOOD
    assert m_all["test_bad_as_good_rate"] == pytest.approx(1 / 4)
    assert m_all["test_contamination"] == pytest.approx(1 / 3)
    empty = decision_metrics(np.array([GREY]), np.array([0]))
    assert np.isnan(empty["test_contamination"]) and np.isnan(empty["test_bad_as_good_rate"])


def test_overlapping_cutoffs_leave_no_grey_zone():
    cut = fit_cutoffs(np.arange(1.0, 100.0), np.full(10, 500.0), 0.05, 0.5)
    assert cut.t_good == cut.t_bad == 95.0
    assert GREY not in decide(np.array([1.0, 94.0, 96.0]), cut.t_good, cut.t_bad).tolist()


def test_too_few_known_failures_certify_nothing_good():
    """58 known bad LS cannot support bad->GOOD <= 5 % at 95 % (59 needed): below the lowest
    of them may still lie a failure nobody has seen, so t_good is -inf; BAD still works."""
    calib = np.arange(1.0, 1001.0)
    few = fit_cutoffs(calib, np.linspace(500, 3000, 58), 0.01, 0.05)
    enough = fit_cutoffs(calib, np.linspace(500, 3000, 59), 0.01, 0.05)
    assert few.bad_needed == 59 and not few.t_good_supported and few.t_good == -np.inf
    assert enough.t_good_supported and enough.t_good == 500.0
    assert decide(np.array([0.5, 5000.0]), few.t_good, few.t_bad).tolist() == [GREY, BAD]


def test_combining_pds_per_ls():
    ls = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    d = np.array([GOOD, GOOD, GOOD, GREY, GREY, BAD, GOOD, LOW, DCS, GOOD])
    keys, out = combine(d, ls)
    assert keys.tolist() == [1, 2, 3, 4, 5]
    assert out.tolist() == [GOOD, GREY, BAD, LOW, DCS]


def test_reviews_adapt_the_cutoffs_to_a_new_era_and_the_rates_hold():
    """A stream of reviewed blocks (the truth plays the DC expert on the grey and the BAD LS):
    calibrated on an older window whose good LS scored 30 % higher, the certifier starts
    conservative; as verdicts arrive t_bad follows the new era, the grey zone shrinks, and
    the rates stay within their targets. Bad LS found in a review never loosen t_good."""
    rng = np.random.default_rng(3)

    def scores(n, scale=1.0):
        y = (rng.random(n) < 0.05).astype(int)
        bad = np.where(rng.random(n) < 0.2, rng.gamma(4, 1, n) * 1.5 + 5,
                       rng.gamma(4, 1, n) * 6 + 15)
        return np.where(y == 1, bad, rng.gamma(4, 1, n) * scale), y

    calib = rng.gamma(4, 1, 2000) * 1.3
    s0, y0 = scores(20000)
    known_bad = s0[y0 == 1][:400]
    first = cut = fit_cutoffs(calib, known_bad, 0.01, 0.01)
    for _ in range(10):
        s, y = scores(4000)
        d = decide(s, cut.t_good, cut.t_bad)
        seen = d != GOOD  # the expert reviews the grey LS and checks the BAD ones
        cut, calib = refresh_cutoffs(calib, known_bad, s[(d == GOOD) | (seen & (y == 0))],
                                     s[:0], s[seen & (y == 1)], 0.01, 0.01)
    assert cut.t_good == first.t_good  # found bad LS (all above t_good) loosen nothing
    s, y = scores(200_000)  # the same fresh LS judged before and after the reviews
    before = decision_metrics(decide(s, first.t_good, first.t_bad), y)
    after = decision_metrics(decide(s, cut.t_good, cut.t_bad), y)
    assert after["test_grey_fraction"] < before["test_grey_fraction"] - 0.005
    assert cut.t_bad < first.t_bad and cut.n_calib_good > first.n_calib_good
    assert after["test_good_as_bad_rate"] <= 0.01 + 0.002
    assert after["test_bad_as_good_rate"] <= 0.01 + 0.002


def test_a_bad_ls_found_among_certified_good_ones_pulls_t_good_down():
    calib, known_bad = np.arange(1.0, 1000.0), np.arange(500.0, 1000.0)
    cut, _ = refresh_cutoffs(calib, known_bad, np.arange(1.0, 100.0), np.zeros(0),
                             np.array([42.0]), 0.01, 0.01)
    assert cut.t_good == 42.0


def test_withhold_sends_good_and_bad_to_review_and_keeps_the_rest():
    from dc_mlops.evaluation.greyzone import BAD, DCS, GOOD, GREY, LOW, withhold
    d = np.array([GOOD, BAD, GREY, LOW, DCS])
    assert withhold(d).tolist() == [GREY, GREY, GREY, LOW, DCS]


def test_bad_needs_the_ls_unusual_on_its_own_and_the_veto_only_makes_grey():
    from dc_mlops.evaluation.greyzone import BAD, GOOD, GREY
    scores = np.array([0.5, 5.0, 50.0, 50.0, 50.0])
    lone = np.array([False, False, True, False, False])
    outside = np.array([False, False, False, False, True])
    assert decide(scores, 1.0, 10.0).tolist() == [GOOD, GREY, BAD, BAD, BAD]
    assert decide(scores, 1.0, 10.0, outside, lone).tolist() == [GOOD, GREY, BAD, GREY, GREY]


def test_episodes_are_blocks_of_consecutive_ls_of_one_run():
    ids = episode_ids([1, 1, 1, 2, 2, 1, 3], [5, 6, 8, 1, 2, 7, 9])
    assert ids.tolist() == [0, 0, 0, 1, 1, 0, 2]  # 1:5-8, 2:1-2, 3:9
    assert episode_ids([], []).tolist() == []


def test_passes_piled_into_one_episode_weigh_more_than_passes_spread_over_many():
    """10 passing LS of 2 000 in 100 episodes of 20: spread over 10 episodes the bound is about
    the LS-count bound; all in one episode it is nearly three times larger."""
    blocks = np.repeat(np.arange(100), 20)
    m = len(blocks)

    def bound(passed: np.ndarray) -> float:
        x = np.bincount(blocks, weights=passed.astype(float))
        r = passed.mean()
        var = 100 / 99 * np.sum((x - r * 20) ** 2) / m ** 2
        return clustered_rate_upper_bound(int(passed.sum()), m, 100, var)

    spread = np.zeros(m, bool)
    spread[np.arange(10) * 20] = True
    piled = np.zeros(m, bool)
    piled[:10] = True
    assert bound(spread) == pytest.approx(rate_upper_bound(10, m), rel=0.1)
    assert bound(piled) > 0.02 > 2 * rate_upper_bound(10, m)  # over a 1 % or 2 % target
    assert clustered_rate_upper_bound(0, m, 100, 0.0) == rate_upper_bound(0, m)


def test_the_good_cutoff_counting_episodes_breaks_its_target_far_less_often():
    """Histories of 60 failure episodes (blocks of 5-60 LS), 4 % of them invisible to the
    detector (their LS score like good LS, U(0, 1); the others above 1), so a cut-off t < 1
    lets 4 % x t of the failures through: over the 1 % target when t > 0.25. t_good is set
    on each history; counting LS as independent draws it breaks the target in 76 of 200
    histories, counting episodes (Korn-Graubard) in 38, and it still certifies good LS. Not in all but 5 %: when no invisible episode is among
    the known ones, nothing tells a bound about them (60 episodes cannot support a claim
    about 1 % of episodes: 299 would)."""
    rng = np.random.default_rng(7)
    over = {"ls": 0, "episodes": 0}
    certified = []
    for _ in range(200):
        sizes = rng.integers(5, 61, 60)
        blocks = np.repeat(np.arange(60), sizes)
        invisible = (rng.random(60) < 0.04)[blocks]
        known = np.where(invisible, rng.random(len(blocks)),
                         1.0 + rng.exponential(size=len(blocks)))
        for how, b in (("ls", None), ("episodes", blocks)):
            t, bound = bounded_good_cutoff(known, 0.01, blocks=b)
            t = min(t, 1.0) if bound <= 0.01 else 0.0  # the share of good LS certified
            over[how] += 0.04 * t > 0.01
            if how == "episodes":
                certified.append(t)
    assert over["ls"] >= 50
    assert over["episodes"] < 0.6 * over["ls"]
    assert np.median(certified) > 0.05

"""The combined decision of several PDs and its GOOD cut-off (evaluation.combined)."""
from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from dc_mlops.evaluation.combined import (combined_walk, describe_hardest, failure_mask,
                                          hardest_failures, joint_cutoff, joint_failures,
                                          joint_t_good)
from dc_mlops.evaluation.greyzone import GOOD, conformal_p_values, rate_upper_bound


def test_the_joint_cutoff_lets_through_only_as_many_failures_as_the_bound_allows():
    rng = np.random.default_rng(0)
    min_p = rng.uniform(0, 0.05, 1000)  # failures: every PD finds them unusual
    cut = joint_cutoff(min_p, 0.01)
    passed = int((min_p > cut.p_good).sum())
    assert cut.supported and cut.n_failures == 1000
    assert rate_upper_bound(passed, 1000) <= 0.01 < rate_upper_bound(passed + 1, 1000)
    assert 0 < cut.p_good < 0.05


def test_too_few_failures_certify_nothing_good_and_say_how_many_are_needed():
    cut = joint_cutoff(np.full(100, 1e-4), 0.01)
    assert not cut.supported and cut.p_good == 1.0 and cut.bad_needed == 299
    assert joint_t_good(np.arange(10.0), cut.p_good) == -np.inf


def test_a_pds_t_good_is_the_p_value_rule_in_score_units():
    rng = np.random.default_rng(1)
    calib = rng.exponential(size=2000)
    scores = rng.exponential(size=5000) * 1.3
    for p_good in (0.01, 0.05, 0.3):
        t = joint_t_good(calib, p_good)
        p = conformal_p_values(calib, scores)
        assert np.array_equal(scores < t, (p > p_good) & (scores != t))


def test_joint_failures_take_the_smallest_p_value_of_ls_every_pd_scored():
    a = pd.DataFrame({"runId": [1, 1, 2], "lumiId": [1, 2, 1], "p_value": [0.5, 0.01, 0.2]})
    b = pd.DataFrame({"runId": [1, 2], "lumiId": [1, 1], "p_value": [0.02, 0.9]})
    j = joint_failures({"A": a, "B": b})
    assert j["min_p"].tolist() == [0.02, 0.2] and j["runId"].tolist() == [1, 2]
    assert j["block"].nunique() == 2


def test_joint_failures_name_the_pd_that_sees_each_ls_best():
    a = pd.DataFrame({"runId": [1, 1], "lumiId": [1, 2], "p_value": [0.5, 0.01]})
    b = pd.DataFrame({"runId": [1, 1], "lumiId": [1, 2], "p_value": [0.02, 0.9]})
    assert joint_failures({"A": a, "B": b})["pd"].tolist() == ["B", "A"]
    j = joint_failures({"A": a, "B": b.assign(p_value=[np.nan, 0.9])})  # B has no say on LS 1
    assert j["min_p"].tolist() == [0.5, 0.01] and j["pd"].tolist() == ["A", "A"]


def test_the_hardest_failure_blocks_are_those_holding_p_good_up():
    """Three blocks: one every PD sees (p 1e-4), one with a faint edge (one LS at p 0.3), one
    a PD barely sees in every LS (p 0.2-0.25). The faint edge comes first (its least visible
    LS is what a cut-off below 0.3 lets through), then the faint block; LS above p_good are
    counted per block."""
    a = pd.DataFrame({"runId": [7] * 3 + [8] * 4 + [9] * 2,
                      "lumiId": [1, 2, 3, 10, 11, 12, 13, 5, 6],
                      "p_value": [1e-4, 1e-4, 1e-4, 0.3, 1e-3, 1e-3, 1e-3, 0.2, 0.25]})
    b = a.assign(p_value=np.where(a["runId"] == 8, 0.9, a["p_value"] + 0.1))
    j = joint_failures({"ZeroBias": a, "JetHT": b})
    h = hardest_failures(j, p_good=0.22)
    assert h["run"].tolist() == [8, 9, 7]
    assert h.iloc[0][["first_ls", "last_ls", "n_ls", "max_p", "pd", "n_ls_above"]].tolist() \
        == [10, 13, 4, 0.3, "ZeroBias", 1]
    assert h.iloc[1]["n_ls_above"] == 1 and h.iloc[2]["n_ls_above"] == 0
    assert h["n_ls"].sum() == len(j)
    text = describe_hardest(h.head(2).to_dict("records"))
    assert text == ("run 8 LS 10-13 (1 of 4 LS pass, p up to 0.3 in ZeroBias), "
                    "run 9 LS 5-6 (1 of 2 LS pass, p up to 0.25 in ZeroBias)")
    assert hardest_failures(j.iloc[:0], 0.5).empty


def test_failures_are_flagged_bad_ls_but_not_dcs_or_low_statistics():
    m = failure_mask([1, 1, 1, 0, 1], ["failure", "human", "dcs", "good", "low_stats"])
    assert m.tolist() == [True, True, False, False, False]


def _walk(pd_name: str, p: np.ndarray, decision: np.ndarray, label: np.ndarray,
          step: np.ndarray) -> pd.DataFrame:
    n = len(p)
    return pd.DataFrame({"runId": 1000 + step * 10 + np.arange(n) // 500, "lumiId": np.arange(n),
                         "step": step, "label": label,
                         "origin": np.where(label == 1, "failure", "good"),
                         "decision": decision, "p_value": p, "outside": np.zeros(n, bool)})


def test_combined_walk_certifies_good_only_once_earlier_failures_support_it():
    rng = np.random.default_rng(2)
    n = 3000
    step = np.repeat([0, 1, 2], n // 3)
    label = (rng.random(n) < 0.2).astype(int)
    # PD A sees every failure, PD B none of them: together they catch all
    p_a = np.where(label == 1, rng.uniform(0, 0.002, n), rng.uniform(0, 1, n))
    p_b = rng.uniform(0, 1, n)
    dec = np.full(n, "GREY")
    d = combined_walk({"A": _walk("A", p_a, dec, label, step),
                       "B": _walk("B", p_b, dec, label, step)}, 0.01, 0.01)
    # step 0 knows no failure, step 1 the ~200 of step 0 (299 support a 1 % claim)
    early = d["step"] < 2
    assert (d.loc[early, "decision"] != GOOD).all() and (d.loc[early, "p_good"] == 1).all()
    last = ~early & (d["label"] == 0)
    assert (d.loc[last, "decision"] == GOOD).mean() > 0.9
    assert (d.loc[~early & (d["label"] == 1), "decision"] == GOOD).mean() <= 0.01
    # BAD: one PD's p-value within its share of the good->BAD target (0.01 / 2 PDs)
    p_b2 = p_b.copy()
    p_b2[-1], p_b2[-2] = 0.004, 0.006
    d2 = combined_walk({"A": _walk("A", p_a, dec, label, step),
                        "B": _walk("B", p_b2, dec, label, step)}, 0.01, 0.01)
    assert d2["decision"].iat[-1] == "BAD" and d2["decision"].iat[-2] != "BAD"
    good = d2["label"] == 0
    # uniform p-values of good LS: P(min of 2 <= 0.005) = 0.00998; 2 400 LS, within 3 sd
    assert (d2.loc[good, "decision"] == "BAD").mean() <= 0.016


def test_a_step_out_of_its_domain_decides_nothing_in_the_combined_walk():
    rng = np.random.default_rng(3)
    n = 3000
    step = np.repeat([0, 1, 2], n // 3)
    label = (rng.random(n) < 0.2).astype(int)
    p_a = np.where(label == 1, rng.uniform(0, 0.002, n), rng.uniform(0, 1, n))
    dec = np.full(n, "GREY")
    p_b = rng.uniform(0, 1, n)
    a = _walk("A", p_a, dec, label, step).assign(in_domain=step != 2)
    d = combined_walk({"A": a, "B": _walk("B", p_b, dec, label, step)}, 0.01, 0.01)
    last = (d["step"] == 2).to_numpy()
    # A decides nothing in step 2: no GOOD, and BAD only where B flags (its own p-values)
    assert not (d.loc[last, "decision"] == GOOD).any()
    assert ((d["decision"] == "BAD").to_numpy()[last] == (p_b[last] <= 0.005)).all()
    assert (d.loc[d["step"] == 1, "decision"] == "BAD").sum() > 100


def test_known_until_rests_p_good_on_the_failures_of_the_labelled_runs_only():
    """In a review loop the failures found later are no fair sample (those certified GOOD
    are never shown): p_good rests on the failures of the runs before the loop."""
    rng = np.random.default_rng(4)
    n = 6000
    step = np.repeat([0, 1, 2, 3], n // 4)
    label = (rng.random(n) < 0.2).astype(int)
    p_a = np.where(label == 1, rng.uniform(0, 0.002, n), rng.uniform(0, 1, n))
    dec = np.full(n, "GREY")
    walks = {"A": _walk("A", p_a, dec, label, step),
             "B": _walk("B", rng.uniform(0, 1, n), dec, label, step)}
    truth = combined_walk(walks, 0.01, 0.01)
    start = int(truth.loc[truth["step"] == 2, "runId"].min())
    loop = combined_walk(walks, 0.01, 0.01, known_until=start)
    # before the loop the same; in it, p_good rests on the failures of steps 0-1 only
    before = (loop["step"] < 3).to_numpy()
    assert (loop["decision"].to_numpy()[before] == truth["decision"].to_numpy()[before]).all()
    labelled = (loop["failure"] & (loop["runId"] < start)).to_numpy()
    expected = joint_cutoff(loop["min_p"].to_numpy()[labelled], 0.01).p_good
    assert loop.loc[loop["step"] == 3, "p_good"].iat[0] == expected
    assert expected != truth.loc[truth["step"] == 3, "p_good"].iat[0]


def test_p_good_rests_on_every_known_failure_as_certify_does_the_first_window_included():
    """The walk's decisions never hold the first window's failures (no step certifies them);
    ``certify`` rests ``p_good`` on every failure of the history. With each step's p-values
    of the failures known before it (``failures``), the walk decides as certify would: a
    faint episode in the first window keeps ``p_good`` above it; without them the walk
    certifies LS that look like it GOOD."""
    rng = np.random.default_rng(5)
    n = 4000
    step = np.repeat([0, 1], n // 2)
    label = (rng.random(n) < 0.2).astype(int)
    p_a = np.where(label == 1, rng.uniform(0, 0.002, n), rng.uniform(0, 1, n))
    dec = np.full(n, "GREY")
    walks = {"A": _walk("A", p_a, dec, label, step),
             "B": _walk("B", rng.uniform(0, 1, n), dec, label, step)}
    # the first window: 60 episodes of 10 LS, one of them faint (every PD's p-value 0.3-0.6)
    first = pd.DataFrame({"runId": np.repeat(np.arange(500, 560), 10),
                          "lumiId": np.tile(np.arange(1, 11), 60)})
    faint = (first["runId"] == 530).to_numpy()
    fa = np.where(faint, rng.uniform(0.3, 0.6, len(first)), rng.uniform(0, 0.002, len(first)))
    fb = np.where(faint, rng.uniform(0.3, 0.6, len(first)), rng.uniform(0, 1, len(first)))
    w = walks["A"]
    step0 = w[(w["step"] == 0) & (w["label"] == 1)]
    failures = {}
    for name, p_first, p_walk in (("A", fa, p_a), ("B", fb, walks["B"]["p_value"].to_numpy())):
        t0 = first.assign(p_value=p_first, step=0)
        t1 = pd.concat([first.assign(p_value=p_first),
                        step0[["runId", "lumiId"]].assign(
                            p_value=p_walk[step0.index.to_numpy()])]).assign(step=1)
        failures[name] = pd.concat([t0, t1], ignore_index=True)
    d = combined_walk(walks, 0.01, 0.01, failures=failures)
    faint_p = np.minimum(fa, fb)[faint]
    p_good = d.groupby("step")["p_good"].first()
    # step 0 already rests on the 600 first-window failure LS; at most a few LS of the faint
    # episode would pass (the bound counts them as about one draw), not the episode
    assert (p_good < 1).all(), p_good.tolist()
    assert all((faint_p > p).sum() <= 2 for p in p_good), (p_good.tolist(), faint_p)
    assert (d.loc[d["label"] == 0, "decision"] == GOOD).mean() > 0.05
    # the walk's own failures alone (the fallback) know no faint episode: it would pass whole
    blind = combined_walk(walks, 0.01, 0.01)
    assert blind.loc[blind["step"] == 1, "p_good"].iat[0] < faint_p.min()


def test_hindsight_automation_is_the_best_single_cutoff_at_the_target():
    """Failures at p ~ U(0, 0.1) except 2 % invisible (p ~ U(0, 1)); good LS at U(0, 1): at
    bad->GOOD <= 1 % the hindsight cut-off sits where half the invisible failures pass,
    p ~ 0.5, so about half the good LS are certified; BAD and outside LS stay as decided."""
    from dc_mlops.evaluation.combined import hindsight_automation
    rng = np.random.default_rng(3)
    n_good, n_fail = 20000, 2000
    invisible = rng.random(n_fail) < 0.02
    p_fail = np.where(invisible, rng.random(n_fail), rng.uniform(0, 0.1, n_fail))
    min_p = np.concatenate([rng.random(n_good), p_fail])
    label = np.r_[np.zeros(n_good, int), np.ones(n_fail, int)]
    decision = np.full(len(min_p), "GREY", dtype=object)
    decision[:100] = "BAD"  # a few good LS flagged: they stay BAD
    walk = pd.DataFrame({"decision": decision, "min_p": min_p, "label": label,
                         "failure": label == 1, "p_good": 1.0})  # no step could certify
    share, t = hindsight_automation(walk, 0.01)
    passed = ((min_p > t) & (label == 1)).sum()
    assert passed <= 0.01 * n_fail < passed + 2  # the loosest cut-off the target allows
    assert 0.35 < t < 0.65
    good_certified = np.mean(min_p[100:n_good] > t)
    assert share == pytest.approx((100 + good_certified * (n_good - 100) + passed)
                                  / (n_good + n_fail))
    # an LS GREY though above its step's p_good was outside its conditions: never GOOD
    p_good = np.ones(len(walk))
    p_good[100:2100] = 0.0  # 2000 good LS outside
    share2, t2 = hindsight_automation(walk.assign(p_good=p_good), 0.01)
    assert t2 == t and share2 == pytest.approx(
        share - np.sum(min_p[100:2100] > t) / (n_good + n_fail))


def test_failure_blocks_are_runs_of_consecutive_ls_that_every_pd_scored():
    a = pd.DataFrame({"runId": [1, 1, 1, 1], "lumiId": [1, 2, 3, 4], "p_value": 0.1})
    b = pd.DataFrame({"runId": [1, 1, 1], "lumiId": [1, 2, 4], "p_value": 0.1})
    j = joint_failures({"A": a, "B": b})  # LS 3 was not scored by B: 1-2 and 4
    assert j["block"].tolist() == [0, 0, 1]
    cut = joint_cutoff(np.full(400, 1e-4), 0.01, blocks=np.repeat(np.arange(7), [58] * 6 + [52]))
    assert cut.to_dict()["n_blocks"] == 7 and cut.supported


def test_the_joint_cutoff_counts_failure_episodes():
    """1 500 failure LS in 60 blocks of 25; one block no PD sees (p ~ U(0, 1)). Counted as
    independent LS, about 8 of them may pass: p_good falls inside the invisible block. Counted
    by episode, passes piled into one block weigh as one draw: p_good stays higher."""
    rng = np.random.default_rng(4)
    blocks = np.repeat(np.arange(60), 25)
    min_p = np.where(blocks == 7, rng.random(1500), rng.uniform(0, 1e-3, 1500))
    iid = joint_cutoff(min_p, 0.01)
    episodes = joint_cutoff(min_p, 0.01, blocks=blocks)
    assert iid.supported and episodes.supported and episodes.n_blocks == 60
    assert episodes.p_good > iid.p_good
    assert (min_p > episodes.p_good).sum() <= 3 < 6 <= (min_p > iid.p_good).sum()

"""The promotion rule: targets first, then correct automation; wrong flags are no automation."""
import numpy as np
import pandas as pd

from dc_mlops.evaluation.selection import best_seed, rank, summarise


def _cands(rows):
    cols = ["model", "seed", "test_correct_automation_rate", "test_automation_rate",
            "test_good_as_bad_rate", "test_bad_as_good_rate", "test_roc_auc"]
    return pd.DataFrame(rows, columns=cols)


def test_a_detector_that_misses_a_target_is_never_first_however_much_it_automates():
    c = _cands([("greedy", 0, 0.60, 1.00, 0.40, 0.0, 0.9),      # flags 40 % of good LS BAD
                ("leaky", 0, 0.95, 0.99, 0.005, 0.07, 0.99),    # 7 % bad LS certified GOOD
                ("careful", 0, 0.70, 0.71, 0.004, 0.005, 0.97),
                ("careful", 1, 0.72, 0.73, 0.006, 0.007, 0.97)])
    r = rank(summarise(c), max_good_as_bad=0.01, max_bad_as_good=0.01)
    assert r.iloc[0]["model"] == "careful" and r.iloc[0]["meets_targets"]
    assert r.iloc[0]["test_correct_automation_rate_mean"] == 0.71
    why = dict(zip(r["model"], r["why_not"]))
    assert "good->BAD 0.4000 > 0.01" in why["greedy"]
    assert "bad->GOOD 0.0700 > 0.01" in why["leaky"]
    assert best_seed(c, "careful")["seed"] == 1


def test_unmeasured_rates_and_chance_level_detectors_do_not_meet_targets():
    c = _cands([("no_bad_seen", 0, 0.9, 0.9, 0.0, np.nan, np.nan),
                ("coin", 0, 0.05, 0.06, 0.01, 0.0, 0.49)])
    r = rank(summarise(c), 0.01, 0.01)
    assert not r["meets_targets"].any()
    why = dict(zip(r["model"], r["why_not"]))
    assert "bad->GOOD not measured" in why["no_bad_seen"] and "chance" in why["coin"]


def _walk(p: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    n = len(p)
    step = np.arange(n) // 2000
    return pd.DataFrame({"runId": 1000 + np.arange(n) // 100, "lumiId": np.arange(n) % 100,
                         "step": step, "label": label,
                         "origin": np.where(label == 1, "failure", "good"),
                         "decision": "GREY", "p_value": p, "outside": np.zeros(n, bool)})


def test_combinations_rank_by_the_golden_json_and_never_pick_one_missing_a_target():
    """PD A has a detector that sees its failures and one that also flags 10 % of good LS
    BAD (more failures caught, more LS decided, a missed good->BAD target on the Golden
    JSON); PD B one that sees its failures and one that is blind to them."""
    from dc_mlops.evaluation.selection import rank_combinations
    rng = np.random.default_rng(0)
    n = 8000
    label = (rng.random(n) < 0.06).astype(int)
    mine = rng.random(n) < 0.5  # which PD's subsystem failed
    u = rng.random((4, n))
    tiny = rng.uniform(0, 1e-3, n)
    a_sees = np.where(label & mine, tiny, u[0])
    a_noisy = np.where(label & mine, tiny, u[1] ** 2)  # P(p <= 0.01) = 10 % of good LS
    b_sees = np.where(label & ~mine, tiny, u[2])
    b_blind = u[3]
    walks = {"A": {"sees": _walk(a_sees, label), "noisy": _walk(a_noisy, label)},
             "B": {"sees": _walk(b_sees, label), "blind": _walk(b_blind, label)}}
    r = rank_combinations(walks, max_good_as_bad=0.02, max_bad_as_good=0.01)
    assert len(r) == 4
    assert (r.iloc[0]["A"], r.iloc[0]["B"]) == ("sees", "sees") and r.iloc[0]["meets_targets"]
    noisy = r[r["A"] == "noisy"]
    assert not noisy["meets_targets"].any() and noisy["why_not"].str.contains("good->BAD").all()
    # the noisy detector decides more LS: only the target keeps it out
    assert noisy["walk_automation_rate"].max() > r.iloc[0]["walk_automation_rate"]
    blind = r[(r["A"] == "sees") & (r["B"] == "blind")].iloc[0]
    assert blind["walk_correct_automation_rate"] < r.iloc[0]["walk_correct_automation_rate"]

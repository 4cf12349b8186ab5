"""The conditions correction (SPEC §3.1): what it removes, what it keeps, where it stops."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dc_mlops.data.correction import (METHODS, ConditionsCorrection, check_conditions,
                                      condition_columns, conditions_column)
from dc_mlops.errors import DataError


def _good_ls(n: int = 3000, seed: int = 0):
    """Features with a linear, a curved and no pile-up dependence, and a spread that
    shrinks with pile-up (more entries per LS at high pile-up)."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(15, 55, n)
    noise = rng.normal(size=(n, 3))
    X = np.stack([3.0 + 0.5 * c + noise[:, 0] * (2.0 - c / 55),
                  100.0 - 0.02 * (c - 35) ** 2 + 0.3 * noise[:, 1],
                  7.0 + noise[:, 2]], axis=1)
    return X, c


@pytest.mark.parametrize("method", METHODS)
def test_residuals_lose_the_pileup_dependence_and_are_in_spread_units(method):
    X, c = _good_ls()
    R = ConditionsCorrection(method).fit(X, c).transform(X, c)
    for j in range(X.shape[1]):
        assert abs(np.corrcoef(R[:, j], c)[0, 1]) < 0.05
        assert abs(np.corrcoef(np.abs(R[:, j]), c)[0, 1]) < 0.1  # the spread follows c too
    np.testing.assert_allclose(R.std(axis=0), 1.0, atol=0.1)
    # without the correction the first feature is almost all pile-up
    assert abs(np.corrcoef(X[:, 0], c)[0, 1]) > 0.9


def test_a_few_bad_ls_among_the_good_ones_do_not_move_the_fit():
    X, c = _good_ls()
    clean = ConditionsCorrection().fit(X, c)
    dirty_X = X.copy()
    hit = np.random.default_rng(1).choice(len(X), size=len(X) // 100, replace=False)
    dirty_X[hit, 0] += 50.0  # 1 % of LS far off
    dirty = ConditionsCorrection().fit(dirty_X, c)
    grid = np.linspace(16, 54, 20)
    shift = np.abs(dirty.centre(grid) - clean.centre(grid))[:, 0] / clean.spread(grid)[:, 0]
    assert shift.max() < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_outside_the_fitted_range_the_centre_is_a_straight_line_and_the_ls_flagged(method):
    X, c = _good_ls()
    corr = ConditionsCorrection(method).fit(X, c)
    lo, hi = corr.range_
    assert (lo, hi) == (c.min(), c.max())
    far = np.array([lo - 20, lo - 10, lo, (lo + hi) / 2, hi, hi + 10, hi + 20])
    m = corr.centre(far)
    # the linear feature is continued along its slope (0.5 per unit of pile-up): a good LS
    # at pile-up 5 is not corrected as if at the edge, tens of spreads away
    assert m[1, 0] - m[2, 0] == pytest.approx(-5.0, rel=0.1)
    assert m[5, 0] - m[4, 0] == pytest.approx(5.0, rel=0.1)
    # every feature (the curved one too) is a straight line beyond the edges
    np.testing.assert_allclose(m[0] - m[1], m[1] - m[2], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(m[6] - m[5], m[5] - m[4], rtol=1e-6, atol=1e-9)
    # the spread stays at the edge's value
    s = corr.spread(far)
    np.testing.assert_array_equal(s[0], s[2])
    np.testing.assert_array_equal(s[6], s[4])
    assert corr.outside(far).tolist() == [True, True, False, False, False, True, True]


def test_save_and_load_give_the_same_residuals(tmp_path):
    X, c = _good_ls()
    corr = ConditionsCorrection().fit(X, c)
    corr.save(tmp_path / "c.npz")
    back = ConditionsCorrection.load(tmp_path / "c.npz")
    assert back.method == corr.method and back.range_ == corr.range_
    np.testing.assert_array_equal(back.transform(X, c), corr.transform(X, c))


@pytest.mark.parametrize("values,match", [
    (np.full(100, 30.0), "only 1 distinct value"),
    (np.r_[np.nan, np.arange(99.0)], "NaN or inf for 1 LS .first in row 0"),
    (np.arange(50.0), "has 50 values for 100 LS"),
    (np.ones((100, 4)), "1-D., or two or three"),
])
def test_unusable_conditions_are_one_line_errors(values, match):
    X = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(DataError, match=match):
        ConditionsCorrection().fit(X, values)


def _two_schemes(n: int, share: float, seed: int = 0):
    """Pile-up and luminosity of fills with 2556 or (a ``share`` of) 1866 bunches: pile-up
    per luminosity differs by the bunch scheme; feature 0 follows the pile-up, feature 1
    (a luminosity monitor) the luminosity."""
    rng = np.random.default_rng(seed)
    lumi = rng.uniform(4, 20, n)
    ratio = np.where(rng.random(n) < share, 3.3, 2.41)
    pu = lumi * ratio
    X = np.stack([2.0 * pu + rng.normal(0, 1, n), 5.0 * lumi + rng.normal(0, 0.5, n)], axis=1)
    return X, np.stack([pu, lumi], axis=1), ratio


def test_a_luminosity_monitor_is_fitted_against_luminosity_across_bunch_schemes(tmp_path):
    X, c, ratio = _two_schemes(4000, 0.1)
    corr = ConditionsCorrection().fit(X, c)
    assert corr.choice_.tolist() == [0, 1]  # pile-up for the first, luminosity for the second
    R = corr.transform(X, c)
    minority = ratio == 3.3

    def offset(res):  # how far the minority scheme's monitor sits from the majority's
        return abs(np.median(res[minority, 1]) - np.median(res[~minority, 1]))
    assert offset(R) < 0.3
    # one column only (pile-up): the minority scheme's luminosity monitor is far off
    assert offset(ConditionsCorrection().fit(X, c[:, 0]).transform(X, c[:, 0])) > 3
    corr.save(tmp_path / "c.npz")
    back = ConditionsCorrection.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.transform(X, c), R)
    assert back.ratio_range_ == corr.ratio_range_


def test_a_bunch_scheme_the_training_never_saw_is_outside_the_fitted_conditions():
    X, c, ratio = _two_schemes(4000, 0.0)
    corr = ConditionsCorrection().fit(X, c)
    assert corr.choice_.tolist() == [0, 0]  # one scheme: the columns move together
    X2, c2, ratio2 = _two_schemes(500, 0.5, seed=1)
    inside_range = (c2[:, 0] >= corr.range_[0]) & (c2[:, 0] <= corr.range_[1]) \
        & (c2[:, 1] >= corr.ranges_[1][0]) & (c2[:, 1] <= corr.ranges_[1][1])
    out = corr.outside(c2)
    assert out[(ratio2 == 3.3)].all()
    assert not out[(ratio2 == 2.41) & inside_range].any()


def test_check_conditions_names_the_first_bad_row():
    with pytest.raises(DataError, match="row 2"):
        check_conditions([1.0, 2.0, np.inf, 4.0], 4, "test conditions")


def _split(**cols) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})


def test_conditions_column_picks_and_checks_the_column():
    train = _split(pileup=np.linspace(20, 50, 40), lumi=np.linspace(8, 20, 40))
    test = _split(pileup=[30.0], lumi=[10.0])
    assert conditions_column("pileup", train, {"test": test}) == "pileup"
    assert conditions_column("lumi", train, {"test": test}) == "lumi"
    assert conditions_column("none", train) == "none"


def test_unknown_pileup_falls_back_to_lumi_only_when_it_is_unknown_everywhere():
    lumi = np.linspace(8, 20, 40)
    no_pu = _split(lumi=lumi)
    assert conditions_column("pileup", no_pu, {"test": _split(lumi=[9.0])}) == "lumi"
    nan_pu = _split(lumi=lumi, pileup=np.full(40, np.nan))
    assert conditions_column("pileup", nan_pu, {"test": _split(lumi=[9.0])}) == "lumi"
    # pile-up known for some LS only: an error, not a silent mix
    partly = _split(lumi=lumi, pileup=np.r_[np.full(39, 30.0), np.nan])
    with pytest.raises(DataError, match="no pileup value for 1 of its 40 training LS"):
        conditions_column("pileup", partly, where="preprocess run abc")


@pytest.mark.parametrize("train,match", [
    (_split(lumi=np.zeros(40)), "only 1 distinct lumi"),  # lstable's "unknown" lumi
    (_split(pileup=np.linspace(20, 50, 40)), None),
])
def test_conditions_column_errors_name_the_run_and_the_way_out(train, match):
    test = _split(lumi=[1.0])  # no pile-up in the test split
    with pytest.raises(DataError) as err:
        conditions_column("pileup" if "pileup" in train else "lumi", train, {"test": test},
                          where="preprocess run abc")
    msg = str(err.value)
    assert "preprocess run abc" in msg and "conditions=none" in msg
    assert match is None or match in msg


def _reference_residuals(corr: ConditionsCorrection, X: np.ndarray, c: np.ndarray
                         ) -> np.ndarray:
    """(x − m(c)) / s(c) feature by feature from the saved per-column fits, written out
    the plain way (the quadratic a + t (b + t q) and its tangent beyond the range, the
    piecewise-linear tables by ``np.interp``-style look-up): what the stacked matrix
    products must reproduce."""
    C = np.asarray(c, dtype=float).reshape(len(c), -1)

    def interp(knots, values, x, lo, hi):
        x = np.clip(x, lo, hi)
        if len(knots) == 1:
            return np.repeat(values[:1], len(x), axis=0)
        i = np.clip(np.searchsorted(knots, x) - 1, 0, len(knots) - 2)
        w = ((x - knots[i]) / (knots[i + 1] - knots[i]))[:, None]
        return values[i] + w * (values[i + 1] - values[i])

    out = np.empty(X.shape)
    for j, fit in enumerate(corr._fits):
        cols = np.flatnonzero(corr.choice_ == j)
        if not len(cols):
            continue
        x, (lo, hi) = C[:, j], fit.range_
        if fit.coef_ is not None:
            t = ((x - (lo + hi) / 2) / ((hi - lo) / 2))[:, None]
            a, b, q = fit.coef_
            edge = np.clip(t, -1, 1)  # beyond the range: the tangent at the edge
            m = a + edge * (b + edge * q) + (t - edge) * (b + 2 * edge * q)
        else:
            m = interp(fit.knots_, fit.centre_, x, -np.inf, np.inf)
        k = fit.spread_knots_
        s = interp(k, fit.spread_, x, k[0], k[-1])
        out[:, cols] = (X[:, cols] - m) / s
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("columns", [1, 2])
def test_stacked_matrix_products_match_the_per_feature_fits(method, columns, tmp_path):
    """The correction is applied as two small matrix products over both columns at once;
    same residuals as the per-column formulas, inside and outside the fitted range, also
    after save and load and for a file of the single-column format."""
    X, c, _ = _two_schemes(3000, 0.3)
    rng = np.random.default_rng(5)
    X = np.c_[X, rng.normal(size=(len(X), 3)) + c[:, :1] * [0.1, -0.2, 0.0]]
    c = c if columns == 2 else c[:, 0]
    corr = ConditionsCorrection(method).fit(X, c)
    if columns == 2:
        assert set(corr.choice_.tolist()) == {0, 1}  # both columns take part
    C = np.asarray(c).reshape(len(c), -1)
    lo, hi = C.min(axis=0), C.max(axis=0)
    # new LS: inside, at and beyond both ends of each column's range
    C_new = rng.uniform(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo), size=(4000, C.shape[1]))
    C_new[:4] = np.stack([lo, hi, lo - 5, hi + 5])
    c_new = C_new if columns == 2 else C_new[:, 0]
    X_new = X[rng.integers(0, len(X), len(C_new))] + rng.normal(size=(len(C_new), X.shape[1]))
    want = _reference_residuals(corr, X_new, c_new)
    np.testing.assert_allclose(corr.transform(X_new, c_new), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(corr.transform(X_new.astype(np.float32), c_new),
                               _reference_residuals(corr, X_new.astype(np.float32)
                                                    .astype(float), c_new),
                               rtol=1e-9, atol=1e-9)
    corr.save(tmp_path / "c.npz")
    back = ConditionsCorrection.load(tmp_path / "c.npz")
    np.testing.assert_allclose(back.transform(X_new, c_new), want, rtol=1e-9, atol=1e-9)
    if columns == 1:  # the format saved before luminosity could be a column
        with np.load(tmp_path / "c.npz") as z:
            old = {k[:-2] if k.endswith("_0") else k: z[k] for k in z.files
                   if k not in ("n_columns", "choice", "ranges")}
        np.savez(tmp_path / "old.npz", **old)
        back = ConditionsCorrection.load(tmp_path / "old.npz")
        np.testing.assert_allclose(back.transform(X_new, c_new), want, rtol=1e-9, atol=1e-9)


def _fills(n: int, seed: int = 0):
    """LS of short and long fills: luminosity decays with the time in fill, from a peak
    that differs by fill, so at one luminosity a long fill is hours older. A multiplicity
    follows pile-up; a vertex-z quantile follows the time in fill only (the beam spot's walk
    along z), as in the simulator."""
    rng = np.random.default_rng(seed)
    peak = rng.choice([20.0, 10.0], n)
    t = rng.uniform(0, 16, n) * np.where(peak > 15, 1.0, 0.5)  # short fills at low peak
    lumi = peak * np.exp(-t / 12.0)
    pu = 3.3 * lumi
    X = np.stack([2.0 * pu + rng.normal(0, 1, n), 0.5 * t + rng.normal(0, 0.3, n)], axis=1)
    return X, np.stack([pu, lumi, t], axis=1)


def test_a_feature_that_drifts_in_the_fill_is_fitted_against_the_time_in_fill(tmp_path):
    X, c = _fills(4000)
    corr = ConditionsCorrection().fit(X, c)
    assert corr.choice_.tolist() == [0, 2]  # pile-up for the multiplicity, t_fill for z
    R = corr.transform(X, c)
    old = c[:, 2] > 10  # the last hours of the long fills

    def offset(res):  # how far those LS sit from the rest, in spreads
        return abs(np.median(res[old, 1]) - np.median(res[~old, 1]))
    assert offset(R) < 0.3
    # on pile-up and luminosity alone, the old LS of a fill are systematically off
    assert offset(ConditionsCorrection().fit(X, c[:, :2]).transform(X, c[:, :2])) > 1
    corr.save(tmp_path / "c.npz")
    back = ConditionsCorrection.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.transform(X, c), R)
    assert back.n_columns == 3 and back.ranges_[2] == corr.ranges_[2]


def test_the_time_in_fill_is_read_only_beside_pileup_and_lumi():
    assert condition_columns(["pileup", "lumi", "t_fill"], "pileup") == ["pileup", "lumi", "t_fill"]
    assert condition_columns(["pileup", "lumi"], "pileup") == ["pileup", "lumi"]
    assert condition_columns(["pileup", "t_fill"], "pileup") == ["pileup"]
    assert condition_columns(["pileup", "lumi", "t_fill"], "lumi") == ["lumi"]


def test_time_in_fill_in_training_must_be_in_every_part():
    train = _split(pileup=np.linspace(20, 50, 40), lumi=np.linspace(8, 20, 40),
                   t_fill=np.linspace(0, 12, 40))
    ok = _split(pileup=[30.0], lumi=[10.0], t_fill=[3.0])
    assert conditions_column("pileup", train, {"test": ok}) == "pileup"
    with pytest.raises(DataError, match="has no 't_fill' column in its test LS"):
        conditions_column("pileup", train, {"test": _split(pileup=[30.0], lumi=[10.0])},
                          where="preprocess run abc")

"""The contract every registered detector keeps (STYLE: one test over all of them).

Interface only: shapes, persistence, errors, the conditions correction. Whether a detector
sees failures is ``test_quality.py``'s business (toy data cannot tell a working model from a
constant one).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dc_mlops.detectors import load_detector, registry
from dc_mlops.errors import DataError

from tests.detectors.conftest import FEATURE_NAMES

NAMES = registry.names()
FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")


@pytest.fixture(scope="module")
def fitted(data, fast_params):
    """Each detector fitted once on the training LS (module cache keeps the run quick)."""
    train, _, _ = data
    return {name: registry.build(name, **fast_params(name)).fit(train, feature_names=FEATURE_NAMES)
            for name in NAMES}


@pytest.fixture(scope="module")
def fitted_with_conditions(data, pileup, fast_params):
    """Each detector fitted with pile-up values (the conditions correction on)."""
    return {name: registry.build(name, **fast_params(name)).fit(data[0], conditions=pileup[0],
                                                                 feature_names=FEATURE_NAMES)
            for name in NAMES}


def test_registry_lists_every_model_of_the_study():
    expected = {"vanilla_ae", "sparse_ae", "contractive_ae", "variational_ae",
                "sparse_contractive_ae", "sparse_variational_ae",
                "contractive_variational_ae", "ocsvm", "iforest", "pca", "knn", "mahalanobis",
                "tails"}
    assert set(NAMES) == expected
    assert {registry.family(n) for n in NAMES} == {"autoencoder", "baseline"}


@pytest.mark.parametrize("name", NAMES)
def test_the_lazy_table_agrees_with_the_classes(name):
    cls = registry.detector_class(name)
    assert cls.name == name and cls.family == registry.family(name)


def test_listing_and_using_a_baseline_imports_no_deep_learning_framework(tmp_path):
    code = f"""
import sys
import numpy as np
from dc_mlops.detectors import registry, load_detector
from dc_mlops.settings import TrainSettings
registry.names(); registry.family("vanilla_ae"); TrainSettings(model="sparse_ae")
X = np.random.default_rng(0).normal(size=(200, 5)); c = np.linspace(10, 50, 200)
registry.build("pca").fit(X, conditions=c).save({str(tmp_path / 'pca')!r})
load_detector({str(tmp_path / 'pca')!r}).score(X, conditions=c)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {FRAMEWORKS!r})
print(loaded)
assert not loaded, loaded
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError, match="known: vanilla_ae"):
        registry.build("vanila_ae")


@pytest.mark.parametrize("name,param", [("vanilla_ae", "lambda_sparse"),
                                        ("vanilla_ae", "sparse_on"),
                                        ("sparse_ae", "kl_weight"), ("ocsvm", "epochs")])
def test_unknown_param_is_a_data_error(name, param):
    with pytest.raises(DataError, match=param):
        registry.build(name, **{param: 1})


@pytest.mark.parametrize("name", NAMES)
def test_default_params_are_json_and_round_trip(name):
    params = registry.default_params(name)
    assert json.loads(json.dumps(params)) == params
    assert registry.build(name, **params).get_params() == params


def test_the_study_preset_gives_the_study_numbers_and_parameters_override_it():
    det = registry.build("sparse_ae", preset="study")
    assert (det.lambda_sparse, det.sparse_on, det.learning_rate, det.beta_1, det.beta_2,
            det.epochs, det.latent_dim) == (1e-5, "weights", 1e-4, 0.7, 0.9, 1200, 16)
    assert registry.build("sparse_ae", preset="study", epochs=30).epochs == 30
    # a variant takes only the study numbers it has a term for
    assert "lambda_sparse" not in registry.build("vanilla_ae", preset="study").get_params()
    assert registry.build("pca", preset="study").get_params() == registry.default_params("pca")
    with pytest.raises(DataError, match="unknown preset"):
        registry.build("pca", preset="paper")


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_records_fitted_attributes(name, data, fitted):
    det = fitted[name]
    assert det.n_features_in_ == data[0].shape[1]
    assert det.fit_seconds_ > 0
    assert isinstance(det.history_, dict)
    assert det.conditions_range_ is None


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_one_per_ls(name, data, fitted):
    s = fitted[name].score(data[1])
    assert s.shape == (len(data[1]),) and np.isfinite(s).all()


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_scores(name, data, fitted, tmp_path):
    det = fitted[name]
    det.save(tmp_path / name)
    back = load_detector(tmp_path / name)
    assert type(back) is type(det) and back.get_params() == det.get_params()
    X = np.r_[data[1], data[2]]
    np.testing.assert_array_equal(back.score(X), det.score(X))
    assert type(det).load(tmp_path / name).n_features_in_ == det.n_features_in_


@pytest.mark.parametrize("name", NAMES)
def test_the_conditions_correction_is_saved_inside_the_detector(
        name, data, pileup, fitted_with_conditions, tmp_path):
    det = fitted_with_conditions[name]
    assert det.conditions_range_ == (pileup[0].min(), pileup[0].max())
    det.save(tmp_path / name)
    assert (tmp_path / name / "conditions.npz").is_file()
    back = load_detector(tmp_path / name)
    assert back.conditions_range_ == det.conditions_range_
    X, c = np.r_[data[1], data[2]], np.r_[pileup[1], pileup[2]]
    np.testing.assert_array_equal(back.score(X, c), det.score(X, c))
    # the conditions change the scores: they are used, not just carried
    assert not np.array_equal(det.score(X, c), det.score(X, c[::-1]))


@pytest.mark.parametrize("name", ["pca", "vanilla_ae"])
def test_conditions_must_match_how_the_detector_was_fitted(
        name, data, pileup, fitted, fitted_with_conditions):
    with pytest.raises(DataError, match="fitted with a conditions correction .fitted range"):
        fitted_with_conditions[name].score(data[1])
    with pytest.raises(DataError, match="fitted without conditions"):
        fitted[name].score(data[1], pileup[1])
    with pytest.raises(DataError, match="has 3 values for 300 LS"):
        fitted_with_conditions[name].score(data[1], pileup[1][:3])
    with pytest.raises(DataError, match="validation data needs its conditions"):
        registry.build(name).fit(data[0], data[1], conditions=pileup[0])


def test_ls_outside_the_fitted_conditions_range_are_counted_and_reported(
        data, pileup, fitted_with_conditions, caplog):
    det = fitted_with_conditions["pca"]
    lo, hi = det.conditions_range_
    c = np.full(len(data[1]), (lo + hi) / 2)
    c[:7] = hi + 5
    assert det.conditions_outside(c).sum() == 7
    with caplog.at_level("DEBUG", logger="dc_mlops"):
        det.score(data[1], c)
    assert "7 of 300 LS have conditions outside the fitted range" in caplog.text
    # the grey zone sends them to review, whatever their score
    from dc_mlops.evaluation.greyzone import BAD, GOOD, GREY, decide
    d = decide(np.r_[0.0, 9.0, 0.0], 1.0, 5.0, outside=np.r_[True, True, False])
    assert list(d) == [GREY, GREY, GOOD] and BAD not in d


@pytest.mark.parametrize("name", NAMES)
def test_wrong_feature_count_is_a_data_error(name, data, fitted):
    with pytest.raises(DataError, match="data has 19 features, the model expects 20"):
        fitted[name].score(data[1][:, :-1])


@pytest.mark.parametrize("name", NAMES)
def test_explain_shape_or_clear_refusal(name, data, fitted):
    det = fitted[name]
    X = data[2][:50]
    if not det.supports_explain:
        with pytest.raises(NotImplementedError, match="no per-feature"):
            det.explain(X)
        return
    contrib = det.explain(X)
    assert contrib.shape == X.shape and (contrib >= 0).all()
    if registry.family(name) == "autoencoder" or name == "pca":  # sum mode: rows add up
        np.testing.assert_allclose(contrib.sum(axis=1), det.score(X), rtol=1e-5)
    # the shifted features 0..3 are what explains an anomaly
    assert contrib[:, :4].mean() > contrib[:, 4:].mean()


def test_scoring_in_batches_matches_one_pass(data, pileup, fitted_with_conditions):
    det = fitted_with_conditions["vanilla_ae"]
    X, c = np.r_[data[1], data[2]], np.r_[pileup[1], pileup[2]]
    whole = det.score(X, c)
    det.score_batch_size = 7
    try:
        np.testing.assert_allclose(det.score(X, c), whole, rtol=1e-6)
    finally:
        del det.score_batch_size


def test_nan_input_is_a_data_error(data):
    X = data[0].copy()
    X[3, 2] = np.nan
    with pytest.raises(DataError, match="row 3"):
        registry.build("pca").fit(X)


def test_unfitted_detector_says_so(data):
    with pytest.raises(DataError, match="not fitted"):
        registry.build("knn").score(data[1])


@pytest.mark.parametrize("name", ["pca", "knn", "ocsvm", "iforest", "mahalanobis", "tails"])
def test_baseline_scores_are_comparable_between_fits_on_more_or_less_data(name):
    """The cross-fitted calibration compares scores of models fitted on 3/4 of a window with
    the certifier's, fitted on all of it: the same LS must score about the same."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 8))
    test = rng.normal(size=(500, 8))
    small = registry.build(name).fit(X[:3000]).score(test)  # one fold left out of four
    big = registry.build(name).fit(X).score(test)
    ratio = np.median(big) / np.median(small)
    assert 0.9 < ratio < 1.1, f"{name}: median score x{ratio:.2f} with 4/3 the training LS"


@pytest.fixture(scope="module")
def runs():
    """Run numbers of the contract data: train, good test and bad test LS, 50 LS a run."""
    return lambda n, first=0: first + np.arange(n) // 50


@pytest.mark.parametrize("name", ["pca", "mahalanobis", "knn", "vanilla_ae"])
def test_run_context_is_used_saved_and_needs_the_runs(name, data, pileup, runs, fast_params,
                                                      tmp_path):
    train = data[0]
    det = registry.build(name, **fast_params(name)).fit(
        train, conditions=pileup[0], runs=runs(len(train)), context_ls=3,
        feature_names=FEATURE_NAMES)
    assert det.context_ls == 3
    X, c = np.r_[data[1], data[2]], np.r_[pileup[1], pileup[2]]
    r = runs(len(X), 1000)
    s = det.score(X, c, r)
    det.save(tmp_path / name)
    back = load_detector(tmp_path / name)
    assert back.context_ls == 3
    np.testing.assert_allclose(back.score(X, c, r), s, rtol=1e-6)
    # the neighbours count: one LS per run scores differently from 50 LS per run
    assert not np.allclose(det.score(X, c, np.arange(len(X))), s)
    # scored in small batches, each batch reads its neighbours beyond its ends
    det.score_batch_size = 7
    try:
        np.testing.assert_allclose(det.score(X, c, r), s, rtol=1e-6)
    finally:
        del det.score_batch_size
    with pytest.raises(DataError, match="fitted with run context .3 LS.: give each LS's run"):
        det.score(X, c)
    with pytest.raises(DataError, match="not contiguous"):
        det.score(X, c, np.r_[r[1:], r[:1]])
    with pytest.raises(DataError, match="training runs: one run number per LS"):
        registry.build(name, **fast_params(name)).fit(train, runs=runs(3), context_ls=3)
    with pytest.raises(DataError, match="context_ls must be a whole number"):
        registry.build(name, **fast_params(name)).fit(train, context_ls=-1)


def test_a_model_fitted_on_fewer_condition_columns_reads_its_own(data, pileup):
    """Conditions with luminosity and time in fill beside the pile-up, given to a model
    fitted on pile-up and luminosity (made before t_fill was a column): it reads its own
    two columns and scores as before; a model fitted on fewer LS columns than given."""
    rng = np.random.default_rng(3)
    two = [np.c_[c, c / 3.3] for c in pileup]
    det = registry.build("pca", n_components=4).fit(data[0], conditions=two[0])
    with_t = np.c_[two[1], rng.uniform(0, 12, len(two[1]))]
    np.testing.assert_array_equal(det.score(data[1], with_t), det.score(data[1], two[1]))


def test_a_model_spec_names_a_detector_and_its_parameters():
    """``evaluate``'s variants of one detector (``name:key=value``): the values take the
    type of each parameter's default; the spec builds the detector it names."""
    assert registry.parse_spec("pca") == ("pca", {})
    assert registry.parse_spec("mahalanobis:score_mode=histogram") == (
        "mahalanobis", {"score_mode": "histogram"})
    assert registry.parse_spec("mahalanobis:top_n=5:score_mode=topn:shrinkage=0.3") == (
        "mahalanobis", {"top_n": 5, "score_mode": "topn", "shrinkage": 0.3})
    assert registry.parse_spec("mahalanobis:shrinkage=auto")[1] == {"shrinkage": "auto"}
    name, params = registry.parse_spec("mahalanobis:score_mode=histogram")
    assert registry.build(name, **params).get_params()["score_mode"] == "histogram"
    for spec, match in [("mahalanobis:seed=3", "no parameter 'seed' to set here"),
                        ("mahalanobis:top_n=3:top_n=4", "top_n is given twice"),
                        ("mahalanobis:shrinkage=2", "shrinkage must be 'auto'"),
                        ("nope:x=1", "unknown model 'nope'")]:
        with pytest.raises(DataError, match=match):
            registry.parse_spec(spec)

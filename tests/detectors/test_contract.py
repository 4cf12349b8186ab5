"""The contract every registered detector keeps (STYLE: one test over all of them)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dc_mlops.detectors import load_detector, registry
from dc_mlops.errors import DataError

NAMES = registry.names()
AUC_FLOOR = 0.8


@pytest.fixture(scope="module")
def fitted(data, fast_params):
    """Each detector fitted once on the training LS (module cache keeps the run quick)."""
    train, _, _ = data
    return {name: registry.build(name, **fast_params(name)).fit(train) for name in NAMES}


def test_registry_lists_every_model_of_the_study():
    expected = {"vanilla_ae", "sparse_ae", "contractive_ae", "variational_ae",
                "sparse_contractive_ae", "sparse_variational_ae",
                "contractive_variational_ae", "ocsvm", "iforest", "pca", "knn"}
    assert set(NAMES) == expected
    assert {registry.family(n) for n in NAMES} == {"autoencoder", "baseline"}


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError, match="known: vanilla_ae"):
        registry.build("vanila_ae")


@pytest.mark.parametrize("name,param", [("vanilla_ae", "lambda_sparse"),
                                        ("sparse_ae", "kl_weight"), ("ocsvm", "epochs")])
def test_unknown_param_is_a_data_error(name, param):
    with pytest.raises(DataError, match=param):
        registry.build(name, **{param: 1})


@pytest.mark.parametrize("name", NAMES)
def test_default_params_are_json_and_round_trip(name):
    params = registry.default_params(name)
    assert json.loads(json.dumps(params)) == params
    assert registry.build(name, **params).get_params() == params


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_records_fitted_attributes(name, data, fitted):
    det = fitted[name]
    assert det.n_features_in_ == data[0].shape[1]
    assert det.fit_seconds_ > 0
    assert isinstance(det.history_, dict)


@pytest.mark.parametrize("name", NAMES)
def test_anomalies_score_higher(name, data, fitted):
    _, good, bad = data
    s_good, s_bad = fitted[name].score(good), fitted[name].score(bad)
    assert s_good.shape == (len(good),) and np.isfinite(s_good).all()
    assert s_bad.mean() > s_good.mean()
    y = np.r_[np.zeros(len(good)), np.ones(len(bad))]
    assert roc_auc_score(y, np.r_[s_good, s_bad]) > AUC_FLOOR


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


def test_scoring_in_batches_matches_one_pass(data, fitted):
    det = fitted["vanilla_ae"]
    X = np.r_[data[1], data[2]]
    whole = det.score(X)
    det.score_batch_size = 7
    try:
        np.testing.assert_allclose(det.score(X), whole, rtol=1e-6)
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

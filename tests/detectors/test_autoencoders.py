"""Autoencoder specifics: loss terms, score modes, determinism, the epoch hook."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dc_mlops.detectors import losses, registry
from dc_mlops.detectors.networks import AEModel
from dc_mlops.errors import DataError

AE_NAMES = [n for n in registry.names() if registry.family(n) == "autoencoder"]


def _small_model(terms=(), activation="prelu"):
    keras.utils.set_random_seed(1)
    return AEModel(6, hidden=(5,), latent_dim=3, activation=activation, terms=terms, seed=3,
                   lambda_sparse=1e-5, lambda_contractive=1e-5, kl_weight=0.5)


@pytest.mark.parametrize("activation", ["prelu", "tanh", "elu"])
def test_contractive_penalty_matches_finite_differences(activation):
    model = _small_model(activation=activation)
    # non-trivial PReLU slopes, so the test would catch a hand derivation for sigmoid units
    for layer in model.encoder.layers:
        if isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.full(layer.alpha.shape, 0.3, dtype="float32"))
    x = np.random.default_rng(0).uniform(size=(4, 6))
    encode = model.encode_mean

    def f(v):
        return encode(tf.constant(v, tf.float32)).numpy().astype(np.float64)

    eps = 1e-3
    fd = np.zeros((4, 3, 6))
    for j in range(6):
        step = np.zeros(6)
        step[j] = eps
        fd[:, :, j] = (f(x + step) - f(x - step)) / (2 * eps)
    expected = (fd ** 2).sum(axis=(1, 2))
    got = losses.jacobian_frobenius_sq(encode, tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-2, atol=1e-6)
    pen = losses.contractive_penalty(encode, tf.constant(x, tf.float32), 1e-5).numpy()
    np.testing.assert_allclose(pen, 1e-5 * expected.mean(), rtol=2e-2)


def test_sparse_penalty_is_lambda_times_l1_of_all_kernels():
    model = _small_model(terms=("sparse",))
    kernels = model.kernels()
    assert len(kernels) == 4  # enc hidden, code, dec hidden, output
    expected = 1e-5 * sum(np.abs(k.numpy()).sum() for k in kernels)
    got = float(losses.sparse_penalty(kernels, 1e-5))
    assert got == pytest.approx(expected, rel=1e-5)
    terms = model.loss_terms(tf.zeros((2, 6)), training=False)
    assert float(terms["sparse"]) == pytest.approx(expected, rel=1e-5)


def test_kl_matches_closed_form():
    rng = np.random.default_rng(2)
    mu, logvar = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)) * 0.5
    var = np.exp(logvar)
    expected = 0.5 * (var + mu ** 2 - 1 - np.log(var)).sum(axis=1)
    np.testing.assert_allclose(np.asarray(losses.kl_divergence(mu, logvar)), expected,
                               rtol=1e-6)
    assert np.allclose(np.asarray(losses.kl_divergence(np.zeros((1, 4)), np.zeros((1, 4)))), 0)


def test_each_loss_term_is_in_the_history(data, fast_params):
    det = registry.build("sparse_contractive_ae", **{**fast_params("sparse_ae"), "epochs": 2})
    det.fit(data[0][:300])
    for key in ("train_loss", "val_loss", "train_recon", "val_recon", "train_sparse",
                "train_contractive", "val_contractive"):
        assert len(det.history_[key]) == 2, key
    total = (det.history_["val_recon"][0] + det.history_["val_sparse"][0]
             + det.history_["val_contractive"][0])
    assert det.history_["val_loss"][0] == pytest.approx(total, rel=1e-4)


@pytest.mark.parametrize("name", ["vanilla_ae", "variational_ae"])
def test_same_seed_same_scores(name, data, fast_params):
    params = {**fast_params(name), "epochs": 2}
    a = registry.build(name, **params).fit(data[0][:400]).score(data[2])
    b = registry.build(name, **params).fit(data[0][:400]).score(data[2])
    np.testing.assert_array_equal(a, b)
    c = registry.build(name, **{**params, "seed": 1}).fit(data[0][:400]).score(data[2])
    assert not np.array_equal(a, c)


def test_on_epoch_end_is_called_once_per_epoch(data, fast_params):
    calls = []
    det = registry.build("vanilla_ae", **{**fast_params("vanilla_ae"), "epochs": 3,
                                          "patience": 100})
    det.fit(data[0][:300], data[1][:100], on_epoch_end=lambda e, logs: calls.append((e, logs)))
    assert [e for e, _ in calls] == [0, 1, 2]
    assert {"train_loss", "val_loss", "train_recon"} <= set(calls[0][1])
    assert det.history_["val_loss"] == [logs["val_loss"] for _, logs in calls]


def test_exception_in_on_epoch_end_stops_training(data, fast_params):
    class Pruned(Exception):
        pass

    calls = []

    def hook(epoch, logs):
        calls.append(epoch)
        if epoch == 1:
            raise Pruned("trial pruned")

    det = registry.build("vanilla_ae", **{**fast_params("vanilla_ae"), "epochs": 5})
    with pytest.raises(Pruned):
        det.fit(data[0][:300], on_epoch_end=hook)
    assert calls == [0, 1]


def test_early_stopping_restores_the_best_epoch(data, fast_params):
    # a huge learning rate makes validation loss bounce, so the best epoch is not the last
    det = registry.build("vanilla_ae", **{**fast_params("vanilla_ae"), "epochs": 8,
                                          "patience": 2, "learning_rate": 0.3})
    X_val = data[1][:100]
    det.fit(data[0][:300], X_val)
    val = det.history_["val_loss"]
    assert det.best_epoch_ == int(np.argmin(val))
    assert det.n_epochs_ == len(val) <= 8
    assert det.n_epochs_ == 8 or det.n_epochs_ - 1 - det.best_epoch_ == 2  # patience
    # the restored weights reproduce the best validation loss, not the last one
    restored = det.model_.evaluate(det._scale(X_val), batch_size=7, verbose=0,
                                   return_dict=True)["loss"]
    assert restored == pytest.approx(min(val), rel=1e-4)


@pytest.mark.parametrize("mode", ["mean", "topn"])
def test_score_modes(mode, data, fast_params):
    params = {**fast_params("vanilla_ae"), "epochs": 2}
    det = registry.build("vanilla_ae", **params, score_mode=mode, top_n=3).fit(data[0][:300])
    err = det.explain(data[2][:20])
    expected = err.mean(axis=1) if mode == "mean" else np.sort(err, axis=1)[:, -3:].mean(axis=1)
    np.testing.assert_allclose(det.score(data[2][:20]), expected, rtol=1e-6)


def test_far_out_of_range_inputs_stay_finite(data, fast_params):
    det = registry.build("vanilla_ae", **{**fast_params("vanilla_ae"), "epochs": 1})
    det.fit(data[0][:300])
    X = data[1][:5].copy()
    X[:, 0] = 1e30
    s = det.score(X)
    assert np.isfinite(s).all() and (s <= 4 * X.shape[1]).all()


@pytest.mark.parametrize("bad", [{"score_mode": "max"}, {"hidden": ()}, {"epochs": 0},
                                 {"validation_fraction": 1.0}, {"activation": "nope"}])
def test_invalid_params_fail_in_fit(bad, data):
    det = registry.build("vanilla_ae", **bad)  # __init__ only stores
    with pytest.raises(DataError):
        det.fit(data[0][:50])

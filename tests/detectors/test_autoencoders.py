"""Autoencoder specifics: loss terms, training plan and convergence, score modes,
determinism, the epoch hook. Runs on the default Keras backend (TensorFlow); the other
backends are ``test_backends.py``."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from dc_mlops.detectors import autoencoders as ae
from dc_mlops.detectors import losses, registry
from dc_mlops.detectors.networks import AEModel
from dc_mlops.errors import DataError

AE_NAMES = [n for n in registry.names() if registry.family(n) == "autoencoder"]


def _small_model(terms=(), activation="prelu", sparse_on="code"):
    keras.utils.set_random_seed(1)
    model = AEModel(6, hidden=(5,), latent_dim=3, activation=activation, terms=terms, seed=3,
                    lambda_sparse=1e-5, sparse_on=sparse_on, lambda_contractive=1e-5,
                    kl_weight=0.5)
    # non-trivial PReLU slopes, so a test would catch a hand derivation for sigmoid units
    for layer in model.encoder.layers:
        if isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.full(layer.alpha.shape, 0.3, dtype="float32"))
    return model


def _t(x):
    return ops.convert_to_tensor(np.asarray(x, dtype="float32"))


def _f(x) -> float:
    return float(ops.convert_to_numpy(x))


@pytest.mark.parametrize("activation", ["prelu", "tanh", "elu"])
def test_contractive_penalty_matches_finite_differences(activation):
    model = _small_model(terms=("contractive",), activation=activation)
    x = np.random.default_rng(0).uniform(size=(4, 6))

    def f(v):
        return ops.convert_to_numpy(model.encode_mean(_t(v))).astype(np.float64)

    eps = 1e-3
    fd = np.zeros((4, 3, 6))
    for j in range(6):
        step = np.zeros(6)
        step[j] = eps
        fd[:, :, j] = (f(x + step) - f(x - step)) / (2 * eps)
    expected = (fd ** 2).sum(axis=(1, 2))
    got = ops.convert_to_numpy(losses.jacobian_frobenius_sq(model.encode_mean, _t(x)))
    np.testing.assert_allclose(got, expected, rtol=2e-2, atol=1e-6)
    terms = model.loss_terms(_t(x), model(_t(x)), training=False)
    assert _f(terms["contractive"]) == pytest.approx(1e-5 * expected.mean(), rel=2e-2)


def test_sparse_term_is_the_l1_activity_of_the_code():
    model = _small_model(terms=("sparse",))
    x = np.random.default_rng(4).uniform(size=(8, 6))
    code = ops.convert_to_numpy(model.encode_mean(_t(x)))
    terms = model.loss_terms(_t(x), model(_t(x)), training=False)
    assert _f(terms["sparse"]) == pytest.approx(1e-5 * np.abs(code).sum(axis=1).mean(),
                                                rel=1e-5)


def test_sparse_on_weights_is_lambda_times_l1_of_all_kernels():
    model = _small_model(terms=("sparse",), sparse_on="weights")
    kernels = model.kernels()
    assert len(kernels) == 4  # enc hidden, code, dec hidden, output
    expected = 1e-5 * sum(np.abs(ops.convert_to_numpy(k)).sum() for k in kernels)
    x = _t(np.zeros((2, 6)))
    assert _f(model.loss_terms(x, model(x), training=False)["sparse"]) == pytest.approx(
        expected, rel=1e-5)


def test_kl_matches_closed_form():
    rng = np.random.default_rng(2)
    mu, logvar = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)) * 0.5
    var = np.exp(logvar)
    expected = 0.5 * (var + mu ** 2 - 1 - np.log(var)).sum(axis=1)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.kl_divergence(_t(mu), _t(logvar))),
                               expected, rtol=1e-5)
    zero = _t(np.zeros((1, 4)))
    assert np.allclose(ops.convert_to_numpy(losses.kl_divergence(zero, zero)), 0)


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
    det = registry.build("vanilla_ae", **{**fast_params("vanilla_ae"), "epochs": 3})
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
    # patience is at least MIN_PATIENCE_STEPS optimiser steps: 8 short epochs all run
    assert det.n_epochs_ == len(val) == 8 and det.converged_ is False
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


def test_training_plan_gives_small_data_sets_enough_steps():
    det = registry.build("vanilla_ae")
    small = det.training_plan(300)
    assert small["steps_per_epoch"] >= ae.MIN_STEPS_PER_EPOCH  # the batch shrinks
    assert small["max_epochs"] * small["steps_per_epoch"] >= ae.MAX_STEPS
    assert small["patience"] * small["steps_per_epoch"] >= ae.MIN_PATIENCE_STEPS
    big = det.training_plan(100_000)
    assert big["batch_size"] == det.batch_size and big["patience"] == det.patience
    assert registry.build("vanilla_ae", epochs=7).training_plan(300)["max_epochs"] == 7


def test_defaults_converge_on_a_small_data_set(data):
    """300 LS: early stopping, not the epoch limit, ends training, and the model
    reconstructs far better than a constant output would (the variance of the data)."""
    det = registry.build("vanilla_ae", hidden=(32, 16), latent_dim=4)
    det.fit(data[0][:300], data[1][:100])
    assert det.converged_
    constant_loss = float(det._scale(data[1][:100]).var(axis=0).mean())
    assert min(det.history_["val_recon"]) < 0.3 * constant_loss
    assert det.output_spread(data[1]) > 0.5


@pytest.mark.parametrize("bad", [{"score_mode": "max"}, {"hidden": ()}, {"epochs": -1},
                                 {"validation_fraction": 1.0}, {"activation": "nope"},
                                 {"beta_1": 1.0}, {"sparse_on": "bias"}])
def test_invalid_params_fail_in_fit(bad, data):
    name = "sparse_ae" if "sparse_on" in bad else "vanilla_ae"
    det = registry.build(name, **bad)  # __init__ only stores
    with pytest.raises(DataError):
        det.fit(data[0][:50])

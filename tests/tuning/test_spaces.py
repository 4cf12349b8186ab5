"""Search spaces: every proposal builds a detector that accepts its parameters."""
import numpy as np
import optuna
import pytest

from dc_mlops.detectors import registry
from dc_mlops.errors import DataError
from dc_mlops.tuning.spaces import suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)
N_SAMPLES = 30


def _sample(model, n, sampler, fixed=None):
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, suggest(trial, model, fixed)))
        study.tell(trial, 0.5)
    return out


@pytest.mark.parametrize("model", registry.names())
def test_space_only_proposes_valid_configurations(model):
    X = np.random.default_rng(0).normal(size=(60, 12))
    samples = _sample(model, N_SAMPLES, optuna.samplers.RandomSampler(seed=0))
    for trial, params in samples:
        seeded = {"seed": 0} if "seed" in registry.default_params(model) else {}
        det = registry.build(model, **seeded, **params)  # unknown parameter: DataError
        det._validate_params(X)  # the checks fit() runs first
        if "score_mode" in params:  # autoencoders and mahalanobis
            assert ("top_n" in params) == (params["score_mode"] == "topn")
        if registry.family(model) == "autoencoder":
            hidden = params["hidden"]
            assert all(a >= b for a, b in zip(hidden, hidden[1:])), hidden
            assert params["latent_dim"] <= hidden[-1]
            terms = set(registry.detector_class(model).terms)
            assert ("lambda_sparse" in params) == ("sparse" in terms)
            assert ("kl_weight" in params) == ("kl" in terms)
    # and the first proposal really fits (one epoch)
    pin = {"epochs": 1} if registry.family(model) == "autoencoder" else {}
    _, params = _sample(model, 1, optuna.samplers.RandomSampler(seed=1), pin)[0]
    det = registry.build(model, **seeded, **params).fit(X[:40], X[40:])
    assert np.isfinite(det.score(X)).all()


def test_pinned_parameters_are_not_sampled_and_extra_ones_ride_along():
    fixed = {"epochs": 3, "hidden": [16, 8], "patience": 2, "latent_dim": 16}
    (trial, params), = _sample("sparse_ae", 1, optuna.samplers.RandomSampler(seed=0), fixed)
    assert not {"epochs", "depth", "width", "latent_dim"} & set(trial.params)
    assert params["hidden"] == [16, 8] and params["epochs"] == 3 and params["patience"] == 2
    assert params["latent_dim"] == 8  # capped at the last hidden layer
    assert "lambda_sparse" in trial.params


def test_seeded_sampler_repeats_its_proposals():
    a = [p for _, p in _sample("ocsvm", 5, optuna.samplers.TPESampler(seed=3))]
    b = [p for _, p in _sample("ocsvm", 5, optuna.samplers.TPESampler(seed=3))]
    assert a == b


def test_unknown_model_has_no_space():
    with pytest.raises(DataError, match="unknown model"):
        suggest(optuna.create_study().ask(), "resnet")

"""The Keras 3 autoencoder network and its composite training loss.

One ``keras.Model`` subclass covers all seven autoencoders: which loss terms it adds
(``sparse``, ``contractive``, ``kl``) is a constructor argument, so a combination such as
``contractive_variational_ae`` is not a new class. Following keras-io's VAE example, encoder
and decoder are separate functional models, the loss lives in ``train_step``/``test_step``
and each term has its own ``keras.metrics.Mean`` tracker, so Keras' history carries every
term per epoch. The terms themselves are the functions in :mod:`.losses`.

The backend is TensorFlow (the contractive term needs ``tf.GradientTape.batch_jacobian``).
"""
from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf
from keras import layers, ops

from dc_mlops.detectors import losses

TERMS = ("sparse", "contractive", "kl")
#: weight initialisation of the study: truncated normal (Keras' default stddev)
INIT_STDDEV = 0.05


def _dense(units: int, seed: int, name: str, activation: str | None = None) -> layers.Dense:
    init = keras.initializers.TruncatedNormal(stddev=INIT_STDDEV, seed=seed)
    return layers.Dense(units, activation=activation, kernel_initializer=init, name=name)


def _activation(activation: str, name: str) -> layers.Layer:
    if activation == "prelu":
        return layers.PReLU(name=name)
    return layers.Activation(activation, name=name)


def build_encoder(n_features: int, hidden: Sequence[int], latent_dim: int, activation: str,
                  variational: bool, seed: int) -> keras.Model:
    """d → hidden... → latent. Variational: two linear heads (z_mean, z_log_var)."""
    x = inputs = keras.Input((n_features,), name="x")
    for i, width in enumerate(hidden):
        x = _activation(activation, f"enc_act{i}")(_dense(width, seed + i, f"enc_dense{i}")(x))
    k = len(hidden)
    if variational:
        z_mean = _dense(latent_dim, seed + k, "z_mean")(x)
        z_log_var = _dense(latent_dim, seed + k + 1, "z_log_var")(x)
        return keras.Model(inputs, [z_mean, z_log_var], name="encoder")
    code = _activation(activation, "code_act")(_dense(latent_dim, seed + k, "code")(x))
    return keras.Model(inputs, code, name="encoder")


def build_decoder(n_features: int, hidden: Sequence[int], latent_dim: int, activation: str,
                  seed: int) -> keras.Model:
    """latent → reversed(hidden)... → d with a sigmoid output (inputs are MinMax-scaled)."""
    x = inputs = keras.Input((latent_dim,), name="z")
    for i, width in enumerate(reversed(hidden)):
        x = _activation(activation, f"dec_act{i}")(_dense(width, seed + i, f"dec_dense{i}")(x))
    out = _dense(n_features, seed + len(hidden), "reconstruction", activation="sigmoid")(x)
    return keras.Model(inputs, out, name="decoder")


@keras.saving.register_keras_serializable(package="dc_mlops")
class AEModel(keras.Model):
    """Autoencoder with an optional variational latent and optional penalty terms.

    Loss = MSE + λs·Σ|w| + λc·‖J_h(x)‖²_F + kl_weight·KL, each term present only if named in
    ``terms``. The history reports each term already weighted, so ``loss`` is their sum.
    ``call`` (used for scoring) reconstructs from the latent *mean*: the decision value of a
    VAE must not depend on a random draw. Validation loss is computed the same way
    (deterministic), which keeps early stopping from reacting to sampling noise.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (128, 64), latent_dim: int = 16,
                 activation: str = "prelu", terms: Sequence[str] = (),
                 lambda_sparse: float = 0.0, lambda_contractive: float = 0.0,
                 kl_weight: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        unknown = set(terms) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {TERMS}")
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        self.latent_dim = int(latent_dim)
        self.activation = activation
        self.terms = tuple(t for t in TERMS if t in terms)
        self.lambda_sparse = float(lambda_sparse)
        self.lambda_contractive = float(lambda_contractive)
        self.kl_weight = float(kl_weight)
        self.seed = int(seed)
        self.variational = "kl" in self.terms
        self.encoder = build_encoder(self.n_features, self.hidden, self.latent_dim,
                                     activation, self.variational, self.seed)
        self.decoder = build_decoder(self.n_features, self.hidden, self.latent_dim,
                                     activation, self.seed + 100)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "recon", *self.terms)]

    @property
    def metrics(self):
        return self.trackers

    def kernels(self) -> list:
        """Every Dense kernel of encoder and decoder: what the sparse penalty acts on."""
        return [layer.kernel for m in (self.encoder, self.decoder) for layer in m.layers
                if isinstance(layer, layers.Dense)]

    def encode_mean(self, x, training: bool = False):
        """The deterministic code h(x): the latent mean for a VAE."""
        out = self.encoder(x, training=training)
        return out[0] if self.variational else out

    def call(self, x, training: bool = False):
        return self.decoder(self.encode_mean(x, training=training), training=training)

    def loss_terms(self, x, training: bool) -> dict:
        """Each weighted loss term for batch ``x`` (training: sample z for a VAE)."""
        if self.variational:
            z_mean, z_log_var = self.encoder(x, training=training)
            z = (losses.sample_latent(z_mean, z_log_var, self.seed_generator)
                 if training else z_mean)
        else:
            z = self.encoder(x, training=training)
        out = {"recon": losses.mse(x, self.decoder(z, training=training))}
        if "sparse" in self.terms:
            out["sparse"] = losses.sparse_penalty(self.kernels(), self.lambda_sparse)
        if "contractive" in self.terms:
            out["contractive"] = losses.contractive_penalty(
                lambda v: self.encode_mean(v, training=training), x, self.lambda_contractive)
        if "kl" in self.terms:
            out["kl"] = self.kl_weight * ops.mean(losses.kl_divergence(z_mean, z_log_var))
        return out

    def _update(self, terms: dict, x) -> None:
        # weighted by batch size: the epoch value is the mean over LS, not over batches
        n = ops.cast(ops.shape(x)[0], "float32")
        self.trackers[0].update_state(ops.sum(ops.stack(list(terms.values()))), sample_weight=n)
        for tracker in self.trackers[1:]:
            tracker.update_state(terms[tracker.name], sample_weight=n)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.loss_terms(x, training=True)
            total = ops.sum(ops.stack(list(terms.values())))
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self._update(terms, x)
        return {m.name: m.result() for m in self.trackers}

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._update(self.loss_terms(x, training=False), x)
        return {m.name: m.result() for m in self.trackers}

    def get_config(self) -> dict:
        return {"name": self.name, "n_features": self.n_features, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "activation": self.activation,
                "terms": list(self.terms), "lambda_sparse": self.lambda_sparse,
                "lambda_contractive": self.lambda_contractive, "kl_weight": self.kl_weight,
                "seed": self.seed}

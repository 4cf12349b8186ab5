"""The Keras 3 autoencoder network and its composite training loss, for every backend.

One ``keras.Model`` subclass covers all seven autoencoders: which loss terms it adds
(``sparse``, ``contractive``, ``kl``) is a constructor argument, so a combination such as
``contractive_variational_ae`` is not a new class. Following keras-io's Keras 3 guides,
encoder and decoder are separate functional models and the loss lives in ``compute_loss``
written with ``keras.ops``: Keras' own ``train_step``/``test_step`` of each backend call it,
so there is no backend-specific training loop here (the Jacobian of the contractive term is
the one backend-specific piece, in :func:`losses.jacobian_frobenius_sq`). Each term has its
own ``keras.metrics.Mean`` tracker, so Keras' history carries every term per epoch.
"""
from __future__ import annotations

from typing import Sequence

import keras
from keras import layers, ops

from dc_mlops.detectors import losses

TERMS = ("sparse", "contractive", "kl")
SPARSE_ON = ("code", "weights")
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

    Loss = MSE + sparse + λc·‖J_h(x)‖²_F + kl_weight·KL, each term present only if named in
    ``terms``; sparse is λs·mean Σ_k|h_k| on the code (``sparse_on="code"``) or the study's
    λs·Σ|w| on the weights (``"weights"``). The history reports each term already weighted,
    so ``loss`` is their sum. ``call`` reconstructs from the latent *mean* unless training:
    the decision value of a VAE must not depend on a random draw, and validation loss is
    computed the same way (deterministic), which keeps early stopping from reacting to
    sampling noise.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (128, 64), latent_dim: int = 16,
                 activation: str = "prelu", terms: Sequence[str] = (),
                 lambda_sparse: float = 0.0, sparse_on: str = "code",
                 lambda_contractive: float = 0.0, kl_weight: float = 0.0, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        unknown = set(terms) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {TERMS}")
        if sparse_on not in SPARSE_ON:
            raise ValueError(f"sparse_on must be one of {SPARSE_ON}, got {sparse_on!r}")
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        self.latent_dim = int(latent_dim)
        self.activation = activation
        self.terms = tuple(t for t in TERMS if t in terms)
        self.lambda_sparse = float(lambda_sparse)
        self.sparse_on = sparse_on
        self.lambda_contractive = float(lambda_contractive)
        self.kl_weight = float(kl_weight)
        self.seed = int(seed)
        self.variational = "kl" in self.terms
        self.encoder = build_encoder(self.n_features, self.hidden, self.latent_dim,
                                     activation, self.variational, self.seed)
        self.decoder = build_decoder(self.n_features, self.hidden, self.latent_dim,
                                     activation, self.seed + 100)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.term_trackers = [keras.metrics.Mean(name=n) for n in ("recon", *self.terms)]

    def kernels(self) -> list:
        """Every Dense kernel of encoder and decoder: what the weight penalty acts on."""
        return [layer.kernel for m in (self.encoder, self.decoder) for layer in m.layers
                if isinstance(layer, layers.Dense)]

    def encode_mean(self, x, training: bool = False):
        """The deterministic code h(x): the latent mean for a VAE."""
        out = self.encoder(x, training=training)
        return out[0] if self.variational else out

    def call(self, x, training: bool = False):
        if self.variational and training:
            z_mean, z_log_var = self.encoder(x, training=True)
            z = losses.sample_latent(z_mean, z_log_var, self.seed_generator)
        else:
            z = self.encode_mean(x, training=training)
        return self.decoder(z, training=training)

    def loss_terms(self, x, x_hat, training: bool) -> dict:
        """Each weighted loss term for batch ``x`` and its reconstruction ``x_hat``."""
        out = {"recon": losses.mse(x, x_hat)}
        if not ({"sparse", "contractive", "kl"} & set(self.terms)):
            return out
        enc = self.encoder(x, training=training)
        code = enc[0] if self.variational else enc
        if "sparse" in self.terms:
            penalty = (losses.code_l1(code) if self.sparse_on == "code"
                       else losses.l1_of_kernels(self.kernels()))
            out["sparse"] = self.lambda_sparse * penalty
        if "contractive" in self.terms:
            jac = losses.jacobian_frobenius_sq(
                lambda v: self.encode_mean(v, training=training), x)
            out["contractive"] = self.lambda_contractive * ops.mean(jac)
        if "kl" in self.terms:
            out["kl"] = self.kl_weight * ops.mean(losses.kl_divergence(enc[0], enc[1]))
        return out

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The sum of the terms; Keras' train/test step of any backend calls this."""
        terms = self.loss_terms(x, y_pred, training)
        # weighted by batch size: the epoch value is the mean over LS, not over batches
        n = ops.cast(ops.shape(x)[0], "float32")
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name], sample_weight=n)
        return ops.sum(ops.stack(list(terms.values())))

    def get_config(self) -> dict:
        return {"name": self.name, "n_features": self.n_features, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "activation": self.activation,
                "terms": list(self.terms), "lambda_sparse": self.lambda_sparse,
                "sparse_on": self.sparse_on, "lambda_contractive": self.lambda_contractive,
                "kl_weight": self.kl_weight, "seed": self.seed}

"""The autoencoder loss terms as plain functions, so each can be tested on its own.

The composite models (``sparse_contractive_ae`` ...) are sums of these terms; keeping them
outside the Keras model means a test can check the contractive penalty against a
finite-difference Jacobian or the KL term against its closed form without training.
TensorFlow is the Keras backend here, so the Jacobian uses ``tf.GradientTape``.
"""
from __future__ import annotations

from typing import Callable, Iterable

import keras
import tensorflow as tf
from keras import ops


def reconstruction_error(x, x_hat):
    """Squared error per feature, shape (batch, d): the per-feature contribution to a score."""
    return ops.square(ops.subtract(x, x_hat))


def mse(x, x_hat):
    """Mean squared error over features and batch: the study's training loss."""
    return ops.mean(reconstruction_error(x, x_hat))


def l1_of_kernels(kernels: Iterable) -> tf.Tensor:
    """Σ|w| over the given kernel weights (biases and PReLU slopes are not penalised).

    ``sparse_ae`` adds ``lambda_sparse * l1_of_kernels(...)`` over every Dense kernel of the
    encoder and decoder, as in the study (λs·Σ|w|).
    """
    terms = [ops.sum(ops.abs(k)) for k in kernels]
    if not terms:
        return ops.convert_to_tensor(0.0)
    return ops.sum(ops.stack(terms))


def sparse_penalty(kernels: Iterable, lambda_sparse: float) -> tf.Tensor:
    """λs·Σ|w| over all kernel weights."""
    return lambda_sparse * l1_of_kernels(kernels)


def jacobian_frobenius_sq(encode: Callable, x) -> tf.Tensor:
    """‖∂h/∂x‖²_F per row, shape (batch,), by automatic differentiation.

    ``encode`` maps a (batch, d) tensor to the (batch, k) code h. ``batch_jacobian`` gives
    the exact (batch, k, d) Jacobian for any activation (PReLU, ELU, tanh ...), so nothing
    relies on a hand-derived formula valid for sigmoid units only. Differentiable itself,
    so it can sit inside the training tape.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = encode(x)
    jac = tape.batch_jacobian(h, x)
    return tf.reduce_sum(tf.square(jac), axis=[1, 2])


def contractive_penalty(encode: Callable, x, lambda_contractive: float) -> tf.Tensor:
    """λc·‖J_h(x)‖²_F, averaged over the batch."""
    return lambda_contractive * tf.reduce_mean(jacobian_frobenius_sq(encode, x))


def kl_divergence(z_mean, z_log_var):
    """KL(N(μ, σ²) ‖ N(0, 1)) per row, summed over latent dimensions, shape (batch,).

    Closed form: -½ Σ (1 + log σ² − μ² − σ²).
    """
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def sample_latent(z_mean, z_log_var, seed_generator: keras.random.SeedGenerator):
    """Reparameterisation trick: z = μ + σ·ε with ε ~ N(0, 1) from a seeded generator."""
    eps = keras.random.normal(ops.shape(z_mean), seed=seed_generator)
    return z_mean + ops.exp(0.5 * z_log_var) * eps

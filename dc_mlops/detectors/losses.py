"""The autoencoder loss terms as plain functions, so each can be tested on its own.

The composite models (``sparse_contractive_ae`` ...) are sums of these terms; keeping them
outside the Keras model means a test can check the contractive penalty against a
finite-difference Jacobian or the KL term against its closed form without training.
Everything is ``keras.ops`` except the Jacobian, which needs the backend's own automatic
differentiation: :func:`jacobian_frobenius_sq` holds one helper of a few lines per backend
(TensorFlow ``batch_jacobian``, JAX ``vmap(jacrev)``, PyTorch ``autograd.grad``), so the
same model trains on TensorFlow, JAX and PyTorch.
"""
from __future__ import annotations

from typing import Callable, Iterable

import keras
from keras import ops


def reconstruction_error(x, x_hat):
    """Squared error per feature, shape (batch, d): the per-feature contribution to a score."""
    return ops.square(ops.subtract(x, x_hat))


def mse(x, x_hat):
    """Mean squared error over features and batch: the reconstruction term of every AE."""
    return ops.mean(reconstruction_error(x, x_hat))


def code_l1(code):
    """Σ_k |h_k| per LS, averaged over the batch: the activity sparsity of the code.

    ``sparse_ae`` adds ``lambda_sparse * code_l1(h)`` (``sparse_on="code"``, the default):
    an L1 *activity* penalty, on the same per-LS scale as the reconstruction term, so its
    weight means the same thing whatever the number of weights in the network.
    """
    return ops.mean(ops.sum(ops.abs(code), axis=-1))


def l1_of_kernels(kernels: Iterable):
    """Σ|w| over the given kernel weights (biases and PReLU slopes are not penalised).

    The study's sparsity term (``sparse_on="weights"``, the ``study`` preset): λs·Σ|w|.
    Against a reconstruction MSE averaged over features it is ~10x the MSE at λ = 1e-5 and
    drives every weight, hence the output, to a constant (issue 11); kept for the preset.
    """
    terms = [ops.sum(ops.abs(k)) for k in kernels]
    if not terms:
        return ops.convert_to_tensor(0.0)
    return ops.sum(ops.stack(terms))


def jacobian_frobenius_sq(encode: Callable, x):
    """‖∂h/∂x‖²_F per row, shape (batch,), by the backend's automatic differentiation.

    ``encode`` maps a (batch, d) tensor to the (batch, k) code h. Exact for any activation
    (PReLU, ELU, tanh ...), nothing relies on a hand derivation for sigmoid units, and
    differentiable itself, so the penalty trains the weights. Each backend's helper also
    works where no outer gradient is being recorded (validation, scoring).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _jacobian_sq_tensorflow(encode, x)
    if backend == "jax":
        return _jacobian_sq_jax(encode, x)
    if backend == "torch":
        return _jacobian_sq_torch(encode, x)
    raise NotImplementedError(f"the contractive penalty has no Jacobian helper for the "
                              f"{backend!r} Keras backend (tensorflow, jax, torch)")


def _jacobian_sq_tensorflow(encode: Callable, x):
    import tensorflow as tf
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = encode(x)
    return tf.reduce_sum(tf.square(tape.batch_jacobian(h, x)), axis=[1, 2])


def _jacobian_sq_jax(encode: Callable, x):
    import jax
    import jax.numpy as jnp
    # Keras layers want a batch axis: each row goes through as a batch of one
    jac = jax.vmap(jax.jacrev(lambda row: encode(row[None, :])[0]))(jnp.asarray(x))
    return jnp.sum(jnp.square(jac), axis=(1, 2))


def _jacobian_sq_torch(encode: Callable, x):
    import torch
    with torch.enable_grad():  # validation runs under no_grad; the Jacobian needs a graph
        xg = x.detach().requires_grad_(True)
        h = encode(xg)
        # row j of every LS's Jacobian at once (rows are independent): d(Σ_b h_bj)/dx
        rows = [torch.autograd.grad(h[:, j].sum(), xg, create_graph=True)[0]
                for j in range(h.shape[1])]
    return torch.stack(rows, dim=1).square().sum(dim=(1, 2))


def kl_divergence(z_mean, z_log_var):
    """KL(N(μ, σ²) ‖ N(0, 1)) per row, summed over latent dimensions, shape (batch,).

    Closed form: -½ Σ (1 + log σ² − μ² − σ²).
    """
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def sample_latent(z_mean, z_log_var, seed_generator: keras.random.SeedGenerator):
    """Reparameterisation trick: z = μ + σ·ε with ε ~ N(0, 1) from a seeded generator."""
    eps = keras.random.normal(ops.shape(z_mean), seed=seed_generator)
    return z_mean + ops.exp(0.5 * z_log_var) * eps

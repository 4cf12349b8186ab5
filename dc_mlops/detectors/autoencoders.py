"""The seven autoencoder detectors of the study (SPEC §3), as one class and its presets.

:class:`Autoencoder` owns the MinMax scaler, the seeded train/validation split, early
stopping with restore of the best weights and batch-wise scoring; the network and its loss
are in :mod:`.networks`. The registered variants differ only in which loss terms they add:

==============================  ==================================
``vanilla_ae``                  MSE
``sparse_ae``                   + λs·Σ_k|h_k| (L1 activity of the code)
``contractive_ae``              + λc·‖J_h(x)‖²_F
``variational_ae``              + kl_weight·KL (16-d Gaussian latent)
``sparse_contractive_ae``       + λs·Σ_k|h_k| + λc·‖J_h(x)‖²_F
``sparse_variational_ae``       + λs·Σ_k|μ_k| + kl_weight·KL
``contractive_variational_ae``  + λc·‖J_h(x)‖²_F + kl_weight·KL
==============================  ==================================

A variant does not accept the weight of a term it lacks (``vanilla_ae`` has no
``lambda_sparse``), so a parameter never silently does nothing.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from dc_mlops.detectors.base import Detector, EpochCallback, top_n_mean
from dc_mlops.detectors.networks import SPARSE_ON, AEModel
from dc_mlops.errors import DataError

log = logging.getLogger(__name__)

SCORE_MODES = ("sum", "mean", "topn")
#: scaled inputs are clipped to this range before scoring: a feature far outside the
#: training range (a broken histogram) then adds a bounded error instead of swamping
#: the sum or overflowing float32; sigmoid outputs live in [0, 1] anyway.
CLIP_RANGE = (-1.0, 2.0)
_TERM_PARAMS = {"sparse": ("lambda_sparse", "sparse_on"), "contractive": ("lambda_contractive",),
                "kl": ("kl_weight",)}
MODEL_FILE = "model.keras"
SCALER_FILE = "scaler.npz"
#: ``epochs=0`` lets the data size set the epoch limit: enough epochs for this many
#: optimiser steps, so a 300-LS training set is not stopped after a few hundred steps
MAX_STEPS = 40_000
#: early stopping waits at least this many optimiser steps (and ``patience`` epochs)
MIN_PATIENCE_STEPS = 1_000
#: an epoch has at least this many steps: the batch shrinks on small training sets
MIN_STEPS_PER_EPOCH = 16
MIN_BATCH = 16
#: a val_loss lower by less than this share of the best does not reset the patience
MIN_REL_IMPROVEMENT = 1e-3
#: optimiser steps per call into the backend: less Python per step (TensorFlow on 2 cores
#: 295 -> 227 ms per epoch of 7380 LS x 98 features; JAX 82 -> 47 ms)
STEPS_PER_EXECUTION = 32


class _Epochs(keras.callbacks.Callback):
    """Per-epoch history, the user's ``on_epoch_end`` hook and early stopping.

    Early stopping keeps the weights of the epoch with the lowest ``val_loss`` and restores
    them when training ends for any reason (patience or the epoch limit), unlike Keras'
    EarlyStopping which restores only when it stopped training itself. Patience counts
    epochs since the last improvement by at least ``MIN_REL_IMPROVEMENT``.
    """

    def __init__(self, det: "Autoencoder", hook: EpochCallback | None, patience: int,
                 max_epochs: int):
        super().__init__()
        self.det, self.hook, self.patience, self.max_epochs = det, hook, patience, max_epochs
        self.best, self.best_epoch, self.best_weights = np.inf, -1, None
        self.reference, self.wait = np.inf, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {_history_key(k): float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.det.history_.setdefault(key, []).append(value)
        log.debug("%s epoch %d/%d %s", self.det.name, epoch + 1, self.max_epochs,
                  " ".join(f"{k}={v:.6g}" for k, v in logs.items()))
        if self.hook is not None:
            self.hook(epoch, logs)
        val = logs["val_loss"]
        if val < self.best:
            self.best, self.best_epoch = val, epoch
            self.best_weights = self.model.get_weights()
        if val < self.reference * (1 - MIN_REL_IMPROVEMENT):
            self.reference, self.wait = val, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _history_key(key: str) -> str:
    return key if key.startswith("val_") else f"train_{key}"


def _seed_everything(seed: int) -> None:
    """Same seed, same model, on every backend; TensorFlow also needs op determinism."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


def _infer(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """One eager forward pass (no ``tf.function``, so no retracing on odd batch sizes);
    PyTorch would record a graph for gradients unless told not to."""
    if keras.backend.backend() == "torch":
        import torch
        with torch.no_grad():
            return keras.ops.convert_to_numpy(model(x, training=False))
    return keras.ops.convert_to_numpy(model(x, training=False))


class Autoencoder(Detector):
    """Dense autoencoder d → hidden → latent_dim → reversed(hidden) → d on MinMax-scaled LS.

    Defaults are what works best here (``benchmarks/results/autoencoders.md``): the study's
    128 → 64 widths, PReLU, sigmoid output and truncated-normal init, but a 4-unit code
    (with the conditions fit on, a 16-unit code reconstructs the failures too: on simulated
    ZeroBias it scored below distance to the training mean, 0.85 vs 0.86 ROC AUC, where 4
    units give 0.90) and Adam at lr 1e-3 with Keras' default moments. The study's own
    numbers (16-unit code, λ = 1e-5 on the weights, lr 1e-4, β1 0.7, β2 0.9, 1200 epochs)
    are the ``study`` preset (:mod:`.presets`).

    Training stops when it has converged, not at an epoch cap: early stopping on the good-LS
    validation loss waits ``patience`` epochs and at least ``MIN_PATIENCE_STEPS`` optimiser
    steps without a ``MIN_REL_IMPROVEMENT`` gain and restores the best epoch; ``epochs=0``
    (default) sets the epoch limit from the data size (``MAX_STEPS`` optimiser steps), and
    the batch shrinks on small training sets so an epoch has ``MIN_STEPS_PER_EPOCH`` steps.
    ``converged_`` says whether early stopping (not the limit) ended training.
    Decision value: ``sum`` (default), ``mean`` or ``topn`` (mean of the ``top_n`` largest)
    of the per-feature squared reconstruction errors; ``explain`` returns those errors, so in
    ``sum`` mode a row of ``explain`` adds up to the score.
    """

    family: ClassVar[str] = "autoencoder"
    supports_explain: ClassVar[bool] = True
    terms: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._hidden_params = frozenset(p for t, ps in _TERM_PARAMS.items()
                                       if t not in cls.terms for p in ps)

    def __init__(self, *, hidden: tuple[int, ...] = (128, 64), latent_dim: int = 4,
                 activation: str = "prelu", learning_rate: float = 1e-3, beta_1: float = 0.9,
                 beta_2: float = 0.999, batch_size: int = 256, epochs: int = 0,
                 patience: int = 20, lambda_sparse: float = 1e-5, sparse_on: str = "code",
                 lambda_contractive: float = 1e-4, kl_weight: float = 1e-4,
                 score_mode: str = "sum", top_n: int = 10, seed: int = 0,
                 validation_fraction: float = 0.1):
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.activation = activation
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.lambda_sparse = lambda_sparse
        self.sparse_on = sparse_on
        self.lambda_contractive = lambda_contractive
        self.kl_weight = kl_weight
        self.score_mode = score_mode
        self.top_n = top_n
        self.seed = seed
        self.validation_fraction = validation_fraction

    # ---- fitting ----------------------------------------------------------------------
    def _validate_params(self, X: np.ndarray) -> None:
        defaults = Autoencoder.default_params()
        for p in sorted(self._hidden_params):
            if getattr(self, p) != defaults[p]:
                raise DataError(f"{self.name} has no parameter {p!r} (it has no such loss term)")
        checks = {
            "hidden": isinstance(self.hidden, (list, tuple)) and len(self.hidden) > 0
            and all(int(h) == h and h > 0 for h in self.hidden),
            "latent_dim": int(self.latent_dim) == self.latent_dim and self.latent_dim > 0,
            "learning_rate": self.learning_rate > 0,
            "beta_1": 0 <= self.beta_1 < 1,
            "beta_2": 0 <= self.beta_2 < 1,
            "batch_size": int(self.batch_size) == self.batch_size and self.batch_size > 0,
            "epochs": int(self.epochs) == self.epochs and self.epochs >= 0,
            "patience": int(self.patience) == self.patience and self.patience >= 0,
            "sparse_on": self.sparse_on in SPARSE_ON,
            "score_mode": self.score_mode in SCORE_MODES,
            "top_n": int(self.top_n) == self.top_n and self.top_n > 0,
            "validation_fraction": 0 < self.validation_fraction < 1,
        }
        for p in ("lambda_sparse", "lambda_contractive", "kl_weight"):
            checks[p] = getattr(self, p) >= 0
        bad = [p for p, ok in checks.items() if not ok]
        if bad:
            raise DataError(f"{self.name}: invalid value for {', '.join(bad)} "
                            f"({', '.join(f'{p}={getattr(self, p)!r}' for p in bad)})")
        if self.activation != "prelu":
            try:
                keras.activations.get(self.activation)
            except ValueError:
                raise DataError(f"{self.name}: unknown activation {self.activation!r}") from None

    def training_plan(self, n_train: int) -> dict[str, int]:
        """Batch size, steps per epoch, epoch limit and patience for ``n_train`` LS."""
        batch = int(min(self.batch_size, max(MIN_BATCH, math.ceil(n_train / MIN_STEPS_PER_EPOCH))))
        steps = math.ceil(n_train / batch)
        epochs = int(self.epochs) or max(1, math.ceil(MAX_STEPS / steps))
        patience = max(int(self.patience), math.ceil(MIN_PATIENCE_STEPS / steps))
        return {"batch_size": batch, "steps_per_epoch": steps, "max_epochs": epochs,
                "patience": patience}

    def _fit(self, X: np.ndarray, X_val: np.ndarray | None,
             on_epoch_end: EpochCallback | None) -> None:
        _seed_everything(int(self.seed))
        if X_val is None:
            if X.shape[0] < 2:
                raise DataError(f"{self.name} needs at least 2 training LS to hold out validation")
            perm = np.random.default_rng(self.seed).permutation(X.shape[0])
            n_val = min(max(1, round(self.validation_fraction * X.shape[0])), X.shape[0] - 1)
            X, X_val = X[perm[n_val:]], X[perm[:n_val]]
        self.data_min_ = X.min(axis=0)
        span = X.max(axis=0) - self.data_min_
        self.data_range_ = np.where(span > 0, span, 1.0)  # constant feature: no division by 0
        model = AEModel(self.n_features_in_, hidden=tuple(int(h) for h in self.hidden),
                        latent_dim=int(self.latent_dim), activation=self.activation,
                        terms=self.terms, lambda_sparse=self.lambda_sparse,
                        sparse_on=self.sparse_on, lambda_contractive=self.lambda_contractive,
                        kl_weight=self.kl_weight, seed=int(self.seed))
        self.plan_ = self.training_plan(X.shape[0])
        # XLA takes minutes to compile TensorFlow's batch_jacobian, and runs it no faster
        jit = "auto"
        if "contractive" in self.terms and keras.backend.backend() == "tensorflow":
            jit = False
        per_call = 1 if keras.backend.backend() == "torch" else STEPS_PER_EXECUTION  # torch: 1
        model.compile(optimizer=keras.optimizers.Adam(
            learning_rate=self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2),
            steps_per_execution=min(per_call, self.plan_["steps_per_epoch"]), jit_compile=jit)
        epochs = _Epochs(self, on_epoch_end, self.plan_["patience"], self.plan_["max_epochs"])
        model.fit(self._scale(X), validation_data=(self._scale(X_val),),
                  epochs=self.plan_["max_epochs"], batch_size=self.plan_["batch_size"],
                  shuffle=True, verbose=0, callbacks=[epochs])
        self.model_ = model
        self.best_epoch_ = epochs.best_epoch
        self.best_val_loss_ = float(epochs.best)
        self.n_epochs_ = len(self.history_.get("val_loss", []))
        self.converged_ = self.n_epochs_ < self.plan_["max_epochs"]
        if not self.converged_:
            log.warning("%s: validation loss still improving after the epoch limit (%d); "
                        "raise epochs, or 0 to size it from the data", self.name,
                        self.plan_["max_epochs"])

    # ---- scoring ----------------------------------------------------------------------
    def _scale(self, X: np.ndarray) -> np.ndarray:
        scaled = (X - self.data_min_) / self.data_range_
        return np.clip(scaled, *CLIP_RANGE).astype(np.float32)

    def output_spread(self, X: Any, conditions: Any = None, runs: Any = None) -> float:
        """How much the reconstruction varies across LS, relative to the input (scaled space):
        mean over features of std(x̂) / mean over features of std(x).

        A collapsed model (every LS reconstructed alike, issue 11: the study's sparse term
        left 1e-5 of the input's variation) scores ~0 and is then no better than distance
        to a fixed point; a working one is well above 0.1. ``train`` logs it.
        """
        x = np.concatenate([self._scale(b) for b in self._batches(X, conditions, runs)])
        x_hat = _infer(self.model_, x).astype(np.float64)
        x = x.astype(np.float64)
        return float(x_hat.std(axis=0).mean() / max(float(x.std(axis=0).mean()), 1e-12))

    def encode(self, X: Any, conditions: Any = None, runs: Any = None) -> np.ndarray:
        """The code h(x) (latent mean for a VAE) of each LS."""
        return np.concatenate([keras.ops.convert_to_numpy(self.model_.encode_mean(
            self._scale(b))) for b in self._batches(X, conditions, runs)])

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        x = self._scale(X)
        return np.square(x - _infer(self.model_, x)).astype(np.float64)

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        err = self._explain_batch(X)
        if self.score_mode == "sum":
            return err.sum(axis=1)
        if self.score_mode == "mean":
            return err.mean(axis=1)
        return top_n_mean(err, self.top_n)

    # ---- persistence ------------------------------------------------------------------
    def _extra_meta(self) -> dict[str, Any]:
        return {"best_epoch_": self.best_epoch_, "best_val_loss_": self.best_val_loss_,
                "n_epochs_": self.n_epochs_, "plan_": getattr(self, "plan_", None),
                "converged_": getattr(self, "converged_", None)}

    def _save(self, path: Path) -> None:
        self.model_.save(path / MODEL_FILE)
        np.savez(path / SCALER_FILE, data_min=self.data_min_, data_range=self.data_range_)

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        self.model_ = keras.saving.load_model(path / MODEL_FILE, compile=False)
        with np.load(path / SCALER_FILE) as scaler:
            self.data_min_, self.data_range_ = scaler["data_min"], scaler["data_range"]
        self.best_epoch_ = meta.get("best_epoch_")
        self.best_val_loss_ = meta.get("best_val_loss_")
        self.n_epochs_ = meta.get("n_epochs_")
        self.plan_ = meta.get("plan_")
        self.converged_ = meta.get("converged_")


class VanillaAE(Autoencoder):
    """Plain autoencoder, MSE only."""
    name = "vanilla_ae"
    terms = ()


class SparseAE(Autoencoder):
    """MSE + λs·Σ_k|h_k|, the L1 activity of the code (the study's λs·Σ|w| on every kernel
    weight with ``sparse_on="weights"``)."""
    name = "sparse_ae"
    terms = ("sparse",)


class ContractiveAE(Autoencoder):
    """MSE + λc·‖∂h/∂x‖²_F (Jacobian of the code by automatic differentiation)."""
    name = "contractive_ae"
    terms = ("contractive",)


class VariationalAE(Autoencoder):
    """Gaussian latent, MSE + kl_weight·KL; scored from the latent mean."""
    name = "variational_ae"
    terms = ("kl",)


class SparseContractiveAE(Autoencoder):
    name = "sparse_contractive_ae"
    terms = ("sparse", "contractive")


class SparseVariationalAE(Autoencoder):
    name = "sparse_variational_ae"
    terms = ("sparse", "kl")


class ContractiveVariationalAE(Autoencoder):
    name = "contractive_variational_ae"
    terms = ("contractive", "kl")


AUTOENCODERS: tuple[type[Autoencoder], ...] = (
    VanillaAE, SparseAE, ContractiveAE, VariationalAE,
    SparseContractiveAE, SparseVariationalAE, ContractiveVariationalAE)

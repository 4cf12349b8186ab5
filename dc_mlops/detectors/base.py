"""The one detector contract every model in dc_mlops follows (SPEC §3).

Sign convention, stated once: ``score`` returns a *decision value* per LS where **higher
means more anomalous**. Wrappers around scikit-learn models flip its "higher = more normal"
sign themselves, so evaluation, thresholds and certification never need to know which model
produced a score.

The base is a template method (as in pyod's ``base_dl``): it owns input validation, the
feature-count check, the conditions correction (SPEC §3.1: fitted on the training LS when
``fit`` gets ``conditions``, applied batch by batch at scoring, saved beside the model as
``conditions.npz``), batching at scoring time, timing and the on-disk layout; a subclass
only fills in ``_fit``, ``_score_batch`` (and ``_explain_batch``) and ``_save``/``_load``,
and always sees corrected features when there is a correction.
Conventions follow scikit-learn: ``__init__`` takes keyword-only arguments and only stores
them, validation happens in ``fit``, ``fit`` returns ``self``, fitted attributes end in ``_``.
"""
from __future__ import annotations

import inspect
import json
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from dc_mlops.data.context import check_runs, halo_slices, window_mean
from dc_mlops.data.correction import ConditionsCorrection, check_conditions
from dc_mlops.errors import DataError

#: Called after every training epoch with the epoch index (0-based) and a dict of floats
#: (``loss``, ``val_loss`` and each loss term). Used for MLflow step metrics and Optuna
#: pruning; an exception raised by it stops training and propagates out of ``fit``.
EpochCallback = Callable[[int, dict[str, float]], None]

META_FILE = "detector.json"
CONDITIONS_FILE = "conditions.npz"
FORMAT_VERSION = 2
log = logging.getLogger(__name__)


def top_n_mean(terms: np.ndarray, n: int) -> np.ndarray:
    """Per row, the mean of the ``n`` largest per-feature terms (all of them when a row has
    fewer): the ``topn`` score mode, so a failure that moves a few of many features is not
    averaged away by the spread of all the others. Float64 whatever the terms' type."""
    n = min(int(n), terms.shape[1])
    return np.partition(terms, terms.shape[1] - n, axis=1)[:, -n:].mean(axis=1,
                                                                        dtype=np.float64)


def check_matrix(X: Any, what: str = "data", n_features: int | None = None) -> np.ndarray:
    """A finite 2-D float matrix, or a one-line DataError saying what is wrong with it.

    Detectors are fed raw feature tables; a NaN or a column too many must fail here with a
    message a DC expert can act on, not deep inside TensorFlow.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not numeric: {exc}") from None
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-D (n_LS, n_features) matrix, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    if n_features is not None and arr.shape[1] != n_features:
        raise DataError(f"{what} has {arr.shape[1]} features, the model expects {n_features}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataError(f"{what} has NaN or inf values (first in row {bad})")
    return arr


class Detector(ABC):
    """Fit on good LS only, then give one decision value per LS (higher = more anomalous).

    Subclasses set ``name`` (the registry name), ``family`` and ``supports_explain``, and
    implement the underscore hooks. ``score_batch_size`` rows are scored at a time so an
    era of 10^6 LS never needs a full-size intermediate (e.g. a reconstruction).
    """

    name: ClassVar[str] = "detector"
    family: ClassVar[str] = "baseline"
    supports_explain: ClassVar[bool] = False
    #: constructor parameters that exist on a shared implementation class but mean nothing
    #: for this registered variant (e.g. ``kl_weight`` of a non-variational autoencoder)
    _hidden_params: ClassVar[frozenset[str]] = frozenset()
    score_batch_size: int = 8192

    # ---- parameters -------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in cls._hidden_params]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Constructor defaults, JSON-serialisable (tuples become lists)."""
        sig = inspect.signature(cls.__init__)
        return {n: _jsonable(sig.parameters[n].default) for n in cls._param_names()}

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters of this instance (JSON-serialisable)."""
        return {n: _jsonable(getattr(self, n)) for n in self._param_names()}

    def __repr__(self) -> str:
        defaults = self.default_params()
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    # ---- fitting ----------------------------------------------------------------------
    def fit(self, X: Any, X_val: Any = None, *, conditions: Any = None,
            conditions_val: Any = None, runs: Any = None, runs_val: Any = None,
            context_ls: int = 0, feature_names: Any = None,
            on_epoch_end: EpochCallback | None = None) -> "Detector":
        """Fit on good LS only; ``X`` is the raw, unscaled (n_LS, n_features) matrix.

        ``X_val`` (good LS too) drives early stopping where the model has epochs; when it is
        None such models carve a seeded ``validation_fraction`` out of ``X``.
        ``conditions`` (one pile-up or luminosity value per LS, SPEC §3.1): when given, each
        feature's smooth dependence on it is fitted on these LS and removed before the model
        sees them (:class:`~dc_mlops.data.correction.ConditionsCorrection`), and scoring then
        needs the conditions of every LS too. ``conditions_val`` goes with ``X_val``.
        ``context_ls`` > 0 (run context, :mod:`dc_mlops.data.context`): after the correction
        each LS's residuals are averaged with those of the LS within ``context_ls`` of it in
        its run; ``runs`` (``runs_val``) gives each row's run, rows grouped by run in LS
        order, and scoring then needs the runs too. ``feature_names`` (one per column,
        ``<histogram>_<i>``) are kept as ``feature_names_in_`` and saved with the model; a
        detector that scores histogram by histogram needs them.
        """
        X = check_matrix(X, "training data")
        if X_val is not None:
            X_val = check_matrix(X_val, "validation data", X.shape[1])
        self.feature_names_in_ = _check_feature_names(feature_names, X.shape[1])
        self._validate_params(X)
        if conditions is None and conditions_val is not None:
            raise DataError("conditions_val given without training conditions")
        self.correction_: ConditionsCorrection | None = None
        self.conditions_range_: tuple[float, float] | None = None
        context_ls = _check_context(context_ls)
        if context_ls:
            runs = check_runs(runs, X.shape[0], "training runs")
            if X_val is not None:
                runs_val = check_runs(runs_val, X_val.shape[0], "validation runs")
        self.context_ls_ = context_ls
        start = time.perf_counter()
        if conditions is not None:
            if X_val is not None and conditions_val is None:
                raise DataError("validation data needs its conditions too (conditions_val), "
                                "since the training data has them")
            self.correction_ = ConditionsCorrection().fit(X, conditions)
            self.conditions_range_ = self.correction_.range_
            X = self.correction_.transform(X, conditions)
            if X_val is not None:
                c_val = check_conditions(conditions_val, X_val.shape[0], "validation conditions")
                X_val = self.correction_.transform(X_val, c_val)
        if context_ls:
            X = window_mean(X, runs, context_ls)
            if X_val is not None:
                X_val = window_mean(X_val, runs_val, context_ls)
        self.n_features_in_ = int(X.shape[1])
        self.history_: dict[str, list[float]] = {}
        self._fit(X, X_val, on_epoch_end)
        self.fit_seconds_ = float(time.perf_counter() - start)
        return self

    def _validate_params(self, X: np.ndarray) -> None:
        """Raise DataError for a parameter value the model cannot use (hook)."""

    def check_params(self) -> None:
        """Refuse, in one DataError line, a parameter value the model cannot use, before any
        data is read (``fit`` checks the same against its data)."""
        self._validate_params(np.zeros((2, 1), np.float32))

    @abstractmethod
    def _fit(self, X: np.ndarray, X_val: np.ndarray | None,
             on_epoch_end: EpochCallback | None) -> None: ...

    # ---- scoring ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise DataError(f"{self.name} is not fitted yet: call fit() or load() first")

    def _batches(self, X: Any, conditions: Any = None, runs: Any = None,
                 context: bool = True):
        """Validated float64 batches, corrected for conditions when the model was fitted
        with them, averaged over each LS's run context when it was fitted with one (each
        batch reads ``context_ls`` rows beyond its ends); a float32 era is converted one
        batch at a time."""
        self._check_fitted()
        if isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 2:
            X = check_matrix(X[:0], "data", self.n_features_in_) if len(X) == 0 else X
            if X.shape[1] != self.n_features_in_:
                raise DataError(f"data has {X.shape[1]} features, the model expects "
                                f"{self.n_features_in_}")
            if not np.isfinite(X).all():
                bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
                raise DataError(f"data has NaN or inf values (first in row {bad})")
        else:
            X = check_matrix(X, "data", self.n_features_in_)
        c = self._check_score_conditions(X.shape[0], conditions)
        k = getattr(self, "context_ls_", 0) if context else 0
        if k:
            if runs is None:
                raise DataError(f"{self.name} was fitted with run context ({k} LS): give each "
                                "LS's run to score it (LS grouped by run, in LS order)")
            runs = check_runs(runs, X.shape[0])
        step = max(1, int(self.score_batch_size))
        for start in range(0, X.shape[0], step):
            stop = min(start + step, X.shape[0])
            lo, hi = halo_slices(runs, start, stop, k) if k else (start, stop)
            if c is not None:  # float64 residuals straight from a float32 era
                batch = self.correction_.transform(X[lo:hi], c[lo:hi])
            else:
                batch = X[lo:hi].astype(np.float64, copy=False)
            if k:
                batch = window_mean(batch, runs[lo:hi], k)[start - lo:stop - lo]
            yield batch

    def _check_score_conditions(self, n_rows: int, conditions: Any) -> np.ndarray | None:
        correction = getattr(self, "correction_", None)
        if correction is None:
            if conditions is not None:
                raise DataError(f"{self.name} was fitted without conditions: score it "
                                "without them (conditions=None)")
            return None
        if conditions is None:
            lo, hi = correction.range_
            raise DataError(f"{self.name} was fitted with a conditions correction (fitted "
                            f"range {lo:.4g}-{hi:.4g}): give each LS's conditions to score it")
        c = _as_fitted(correction, check_conditions(conditions, n_rows))
        outside = int(correction.outside(c).sum())
        if outside:
            lo, hi = correction.range_
            # debug: callers decide what to do with them (the grey zone sends them to
            # review, certify reports them); a walk would repeat this at every step
            log.debug("%s: %d of %d LS have conditions outside the fitted range "
                      "%.4g-%.4g; corrected along the fit's tangent at the edge",
                      self.name, outside, n_rows, lo, hi)
        return c

    def conditions_outside(self, conditions: Any) -> np.ndarray:
        """True for each LS whose conditions lie outside the range the correction was
        fitted on (their correction is extrapolated along the fit's tangent at the edge); all
        False without one."""
        self._check_fitted()
        c = np.asarray(conditions, dtype=np.float64)
        correction = getattr(self, "correction_", None)
        return np.zeros(len(c), bool) if correction is None else \
            correction.outside(_as_fitted(correction, c))

    @property
    def context_ls(self) -> int:
        """LS on each side averaged into an LS's run context (0: each LS on its own)."""
        return int(getattr(self, "context_ls_", 0))

    def score(self, X: Any, conditions: Any = None, runs: Any = None,
              context: bool = True) -> np.ndarray:
        """Decision value per LS, shape (n,), higher = more anomalous; scored batch by batch.

        ``conditions``: each LS's pile-up/luminosity, required when the detector was fitted
        with them (and refused when it was not). ``runs``: each LS's run, required when it
        was fitted with run context (rows grouped by run, in LS order); ignored otherwise.
        ``context=False`` scores each LS alone, without its run context, with the same
        model: what BAD asks of an LS on its own (:func:`dc_mlops.evaluation.greyzone.decide`).
        """
        parts = [np.asarray(self._score_batch(b), dtype=np.float64)
                 for b in self._batches(X, conditions, runs, context)]
        return np.concatenate(parts)

    def explain(self, X: Any, conditions: Any = None, runs: Any = None) -> np.ndarray:
        """Per-feature contribution to each LS's score, shape (n, n_features).

        Lets a DC expert see which histogram drives a grey-zone LS. Models with no such
        decomposition raise NotImplementedError (see ``supports_explain``).
        """
        if not self.supports_explain:
            raise NotImplementedError(
                f"{self.name} has no per-feature decomposition of its score; use an "
                "autoencoder, pca or knn detector to explain scores")
        parts = [np.asarray(self._explain_batch(b), dtype=np.float64)
                 for b in self._batches(X, conditions, runs)]
        return np.concatenate(parts)

    @abstractmethod
    def _score_batch(self, X: np.ndarray) -> np.ndarray: ...

    def _explain_batch(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write everything needed to score (model, scaler, params) into directory ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save(path)
        correction = getattr(self, "correction_", None)
        if correction is not None:
            correction.save(path / CONDITIONS_FILE)
        meta = {"format_version": FORMAT_VERSION, "name": self.name, "family": self.family,
                "params": self.get_params(), "n_features_in_": self.n_features_in_,
                "fit_seconds_": getattr(self, "fit_seconds_", None),
                "history_": getattr(self, "history_", {}),
                "conditions_range_": getattr(self, "conditions_range_", None),
                "context_ls_": self.context_ls,
                "feature_names_in_": getattr(self, "feature_names_in_", None),
                **self._extra_meta()}
        (path / META_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        """Load a detector saved by ``save``; on a base class it dispatches on the name."""
        return load_detector(path) if cls is Detector else _load_as(cls, Path(path))

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path, meta: dict[str, Any]) -> None: ...


def _read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise DataError(f"{path} is not a saved detector: {META_FILE} is missing")
    try:
        return json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_file} is not valid JSON: {exc}") from None


def _load_as(cls: type[Detector], path: Path, meta: dict[str, Any] | None = None) -> Detector:
    meta = _read_meta(path) if meta is None else meta
    if meta.get("name") != cls.name:
        raise DataError(f"{path} holds a {meta.get('name')!r} detector, not {cls.name!r}")
    det = cls(**meta["params"])
    det.n_features_in_ = int(meta["n_features_in_"])
    det.fit_seconds_ = meta.get("fit_seconds_")
    det.history_ = meta.get("history_", {})
    det.correction_, det.conditions_range_ = None, None
    det.context_ls_ = int(meta.get("context_ls_", 0) or 0)
    det.feature_names_in_ = meta.get("feature_names_in_")
    if meta.get("conditions_range_") is not None:
        if not (path / CONDITIONS_FILE).is_file():
            raise DataError(f"{path}: the detector was fitted with conditions but "
                            f"{CONDITIONS_FILE} is missing")
        det.correction_ = ConditionsCorrection.load(path / CONDITIONS_FILE)
        det.conditions_range_ = det.correction_.range_
    det._load(path, meta)
    return det


def load_detector(path: str | Path) -> Detector:
    """Load any saved detector: ``detector.json`` names the registered model to rebuild."""
    from dc_mlops.detectors import registry

    path = Path(path)
    meta = _read_meta(path)
    cls = registry.detector_class(meta.get("name", "?"))
    return _load_as(cls, path, meta)


def _as_fitted(correction: ConditionsCorrection, c: np.ndarray) -> np.ndarray:
    """More condition columns than a correction was fitted on (one saved before luminosity,
    or time in fill, could be a column): its own, the first ones."""
    if c.ndim == 2 and c.shape[1] > correction.n_columns:
        return c[:, 0] if correction.n_columns == 1 else c[:, :correction.n_columns]
    return c


def _check_feature_names(names: Any, n_features: int) -> list[str] | None:
    """The training columns' names as a list of str (None when not given); DataError when
    they do not name each column once."""
    if names is None:
        return None
    out = [str(n) for n in names]
    if len(out) != n_features:
        raise DataError(f"feature_names: {len(out)} names for {n_features} feature columns")
    if len(set(out)) != len(out):
        dup = next(n for n in out if out.count(n) > 1)
        raise DataError(f"feature_names: {dup!r} names two columns")
    return out


def _check_context(context_ls: Any) -> int:
    if isinstance(context_ls, bool) or not isinstance(context_ls, (int, np.integer)) \
            or context_ls < 0:
        raise DataError(f"context_ls must be a whole number of LS >= 0, got {context_ls!r}")
    return int(context_ls)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value

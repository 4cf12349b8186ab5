"""Conditions first (SPEC §3.1): divide each feature's pile-up/luminosity dependence out.

Why: a good LS's histograms follow its run conditions (multiplicities grow with pile-up, a
fill's luminosity halves in hours), so a detector fed raw features learns conditions, not
failures: the good LS of a high-pile-up run all look "anomalous". Every CMS monitoring
system in production removes a fitted pile-up dependence before the model (ECAL divides the
occupancy by slope·PU + intercept; the pixel NMF divides by a rate × PU fit). Here each
feature gets a smooth 1-D fit of its *centre* and its *spread* against the LS's condition
value c, on good training LS, and the detector sees

    r = (x − m(c)) / s(c)

residuals in units of the conditional LS-to-LS spread, so "3" means three typical good-LS
fluctuations at that pile-up, whatever the feature's unit.

The centre fit (``method``):

* ``poly`` (default): a quadratic in c per feature, fitted by iteratively reweighted least
  squares with Huber weights (robust to the few bad LS a Golden JSON lets through);
* ``binned``: quantile bins of c with at least ``MIN_PER_BIN`` LS each (at most
  ``MAX_BINS``); per bin the median of c and of each feature; piecewise-linear between the
  bin medians, continued linearly to the edges of the fitted range.

Measured on simulated same-era splits of the four PDs (``benchmarks/results/conditions.md``):
``poly`` leaves less pile-up correlation in the residuals on every PD (mean 0.05-0.06
against 0.07-0.09, from 0.4-0.6 raw) and gives pca a higher ROC AUC on every PD; the bin
medians of ``binned`` carry ~0.1-0.2 σ of noise each.

The spread s(c) is a winsorised standard deviation (1st/99th percentiles) of the residuals
in quantile bins of c with at least ``2 × MIN_PER_BIN`` LS, piecewise-linear in c and flat
beyond the outer bins, so it follows c too (histograms with more entries per LS fluctuate
less at high pile-up), and never below ``SPREAD_FLOOR`` of the overall spread.

Outside the fitted range [lo, hi] the centre continues along its tangent at the edge (a
straight line, never the quadratic's curvature) and the spread stays at the edge's value;
:meth:`ConditionsCorrection.outside` says which LS those are, for the caller to count and
report (the grey zone sends them to review: their score rests on an extrapolation). Why not
clamp c to the range: the correction of an LS at pile-up 8 when training saw 15-50 would
then be the one at 15, and every multiplicity of such an LS sits tens of spreads below it.
On the simulated 2018D walk (1.3-1.5 % of the LS outside), clamping ranked those good LS
above failures: mahalanobis, pca and knn lost 0.005-0.010 ROC AUC on every PD, and fell
below the same detectors without a conditions fit on EGamma and SingleMuon; with the
tangent, the ROC AUC over all LS equals the one over the LS inside the range
(``benchmarks/results/conditions.md``).

Pile-up *and* luminosity (``conditions=pileup`` gives both columns, :data:`COLUMNS`): almost
every histogram follows the pile-up, but the luminosity monitor itself (``qlumiEvt``)
follows the luminosity, and the two are not proportional across fills: pile-up per
luminosity is 1 / the number of colliding bunches. Fitted on pile-up alone, the luminosity
monitor of a fill with another bunch scheme (2018: 2556, 2460 or 1866 bunches) sat hundreds
of spreads off, and a walk over simulated 2018D flagged 30 % of the good LS of such fills
BAD. So each feature is fitted against each column, still one smooth 1-D fit, and keeps the
luminosity fit only where it leaves clearly less spread (:data:`SECOND_COLUMN_GAIN`). When
the training LS hold one bunch scheme, the two columns move together and pile-up is kept; an
LS of a scheme the training never saw (pile-up per luminosity outside the training's range)
is then outside the fitted conditions, like an LS at an unseen pile-up, and goes to review.

Time in fill (``t_fill``, hours since the fill's stable beams, from OMS: the LS's start
time minus the fill's), a third column when the conditions table has it: the luminous
region lengthens as bunches age and ECAL transparency drops during a fill, neither a
function of pile-up or luminosity across fills (a long fill reaches a given luminosity
hours after a short one). Fitted on pile-up and luminosity alone, the outer vertex-z
quantiles (relative to the beam spot) of the last run of a 16-hour fill of main's history
sat 1.1-1.7 spreads off per LS; with the 17-LS run context, 20-25 % of its good LS were
flagged BAD in every PD with ``score_mode=histogram`` (4-14 % with ``sum``), and the walk's
good->BAD with ``histogram`` was 0.9-1.1 % per PD, all of the excess in that run's step.
With ``t_fill``, chosen per feature as the other columns are, it is below 0.1 %
(``benchmarks/results/time_in_fill.md``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dc_mlops.errors import DataError

METHODS = ("binned", "poly")
#: fewest LS per bin of the binned fit: the median of 40 LS is within ~0.2 σ of the truth
MIN_PER_BIN = 40
MAX_BINS = 12
#: the spread is fitted on bins with twice as many LS (a spread needs more LS than a median)
SPREAD_BIN_FACTOR = 2
#: fewest distinct condition values for a fit: fewer is a constant or a per-run label
MIN_DISTINCT = 5
_MAD_TO_SIGMA = 1.4826
#: the spread is a standard deviation winsorised at these quantiles (see _spread)
WINSOR = 0.01
#: a spread never falls below this share of the feature's overall spread (no 1/0 blow-up
#: where a bin happens to hold identical values)
SPREAD_FLOOR = 0.05
_HUBER_K = 1.345
_IRLS_ITERATIONS = 6
#: rows the IRLS residual scale (a median) is taken on, at most
_MAD_ROWS = 2000
#: LS a conditions fit is made on, at most (evenly spaced over the training LS)
MAX_FIT_LS = 8000
#: LS-table columns a ``conditions`` setting stands for; the first is the main condition
COLUMNS = {"pileup": ("pileup", "lumi", "t_fill"), "lumi": ("lumi",), "none": ()}
#: a feature is fitted against another column than the first only when that leaves its
#: residuals at most this share of the spread the first column leaves (a clear gain, not
#: noise)
SECOND_COLUMN_GAIN = 0.8
#: pile-up per luminosity within this relative margin of the training's range is inside
RATIO_MARGIN = 0.01


def check_conditions(conditions: Any, n_rows: int, what: str = "conditions") -> np.ndarray:
    """A finite float array of one value per LS (1-D), or of one row of two or three values
    per LS (pile-up, luminosity, time in fill), or a one-line DataError."""
    try:
        c = np.asarray(conditions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} are not numeric: {exc}") from None
    if c.ndim == 2 and c.shape[1] == 1:
        c = c[:, 0]
    if not (c.ndim == 1 or (c.ndim == 2 and c.shape[1] in (2, 3))):
        raise DataError(f"{what} must be one value per LS (1-D), or two or three (pile-up, "
                        f"luminosity, time in fill), got shape {c.shape}")
    if len(c) != n_rows:
        raise DataError(f"{what} has {len(c)} values for {n_rows} LS")
    bad = ~np.isfinite(c).reshape(len(c), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{what} is NaN or inf for {int(bad.sum())} LS (first in row "
                        f"{int(np.flatnonzero(bad)[0])})")
    return c


class _Fit1D:
    """Per-feature centre m(c) and spread s(c) against one condition column.

    Fitted attributes: ``range_`` (lo, hi) of the training condition values, ``knots_``
    (the c values the centre is tabulated at), ``centre_`` (n_knots, d), ``spread_knots_``
    and ``spread_`` (n_spread_knots, d); ``poly`` stores its coefficients in ``centre_``
    evaluated on ``knots_`` (a dense grid), so one interpolation code scores both.
    """

    def __init__(self, method: str = "poly"):
        if method not in METHODS:
            raise DataError(f"unknown conditions fit {method!r}; known: {', '.join(METHODS)}")
        self.method = method

    # ---- fitting ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, c: np.ndarray, what: str = "training conditions"
            ) -> "_Fit1D":
        X = np.asarray(X, dtype=np.float64)
        c = check_conditions(c, X.shape[0], what)
        n_distinct = len(np.unique(c))
        if n_distinct < MIN_DISTINCT:
            raise DataError(f"{what} take only {n_distinct} distinct value(s) over "
                            f"{len(c)} LS (e.g. all {c[0]:g}): a conditions fit needs them to "
                            "vary; give a conditions table or use conditions=none")
        self.range_ = (float(c.min()), float(c.max()))
        self.coef_ = None
        if self.method == "binned":
            self.knots_, self.centre_ = _binned_medians(X, c, MIN_PER_BIN)
        else:
            self.knots_, self.centre_, self.coef_ = _robust_quadratic(X, c, self.range_)
        resid = X - self.centre(c)
        self.spread_knots_, spread = _binned_spread(resid, c, MIN_PER_BIN * SPREAD_BIN_FACTOR)
        overall = _spread(resid)
        overall = np.where(overall > 0, overall, resid.std(axis=0))
        self.overall_spread_ = np.where(overall > 0, overall, 1.0)
        # floored at the knots: the piecewise-linear spread between them stays above it
        self.spread_ = np.maximum(spread, SPREAD_FLOOR * self.overall_spread_)
        return self

    # ---- applying ---------------------------------------------------------------------
    # m(c) and s(c) are linear in the fitted values: a basis of c (the quadratic's 1, t, t²,
    # or the hat weights of the knots) times a coefficient matrix. ConditionsCorrection
    # stacks these bases of every column into one matrix product at scoring time.
    @property
    def centre_values(self) -> np.ndarray:
        """(n_basis, d): what :meth:`centre_basis` is multiplied with."""
        return self.centre_ if self.coef_ is None else self.coef_

    def centre_basis(self, c: np.ndarray) -> np.ndarray:
        """(n, n_basis) basis of m(c): 1, t, t² of the quadratic (``poly``; t is c scaled
        so that the fitted range is [-1, 1], t² continued along its tangent beyond it), or
        the hat weights of ``knots_`` (linear beyond the outer knots)."""
        lo, hi = self.range_
        if self.coef_ is not None:  # poly: the quadratic itself, no table look-up
            return _quadratic_basis(c, lo, hi)
        return _hat_basis(c, self.knots_)

    def spread_basis(self, c: np.ndarray) -> np.ndarray:
        """(n, n_spread_knots) hat weights of s(c): flat beyond the outer knots (the edge
        bin's spread is all there is to go on there)."""
        knots = self.spread_knots_
        return _hat_basis(c, knots, float(knots[0]), float(knots[-1]))

    def centre(self, c: np.ndarray) -> np.ndarray:
        """m(c), shape (n, d); a straight line beyond the fitted range."""
        return self.centre_basis(c) @ self.centre_values

    def spread(self, c: np.ndarray) -> np.ndarray:
        """s(c), shape (n, d), never below the floor; flat beyond the outer knots."""
        return self.spread_basis(c) @ self.spread_

    def subset(self, features: np.ndarray) -> "_Fit1D":
        """The same fit for the ``features`` columns only."""
        out = _Fit1D(self.method)
        out.range_ = self.range_
        out.knots_, out.centre_ = self.knots_, self.centre_[:, features]
        out.coef_ = None if self.coef_ is None else self.coef_[:, features]
        out.spread_knots_, out.spread_ = self.spread_knots_, self.spread_[:, features]
        out.overall_spread_ = self.overall_spread_[features]
        return out

    def arrays(self, tag: str) -> dict[str, np.ndarray]:
        extra = {} if self.coef_ is None else {f"coef{tag}": self.coef_}
        return {f"range{tag}": np.array(self.range_), f"knots{tag}": self.knots_,
                f"centre{tag}": self.centre_, f"spread_knots{tag}": self.spread_knots_,
                f"spread{tag}": self.spread_, f"overall_spread{tag}": self.overall_spread_,
                **extra}

    @classmethod
    def from_arrays(cls, z, method: str, tag: str) -> "_Fit1D":
        out = cls(method)
        out.range_ = tuple(float(v) for v in z[f"range{tag}"])
        out.knots_, out.centre_ = z[f"knots{tag}"], z[f"centre{tag}"]
        out.spread_knots_, out.spread_ = z[f"spread_knots{tag}"], z[f"spread{tag}"]
        out.overall_spread_ = z[f"overall_spread{tag}"]
        out.coef_ = z[f"coef{tag}"] if f"coef{tag}" in z.files else None
        return out


def _quadratic_basis(c: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n, 3) columns 1, t, q(t) with t = c scaled so that [lo, hi] is [-1, 1]; q(t) = t²
    inside, its tangent 2|t| − 1 beyond: any quadratic of this basis is continued by a
    straight line (extrapolating its curvature would bend far-off LS away)."""
    t = (np.asarray(c, dtype=np.float64) - (lo + hi) / 2) / ((hi - lo) / 2)
    q = np.where(np.abs(t) > 1, 2 * np.abs(t) - 1, t * t)
    return np.stack([np.ones_like(t), t, q], axis=1)


def _hat_basis(c: np.ndarray, knots: np.ndarray, lo: float = -np.inf, hi: float = np.inf
               ) -> np.ndarray:
    """(n, len(knots)) weights of the piecewise-linear interpolation through ``knots`` at c
    clamped to [lo, hi] (by default not clamped): at most two non-zeros per row (1 − w and w on
    the knots around c), continued linearly beyond the outer knots as far as [lo, hi]
    reaches past them (w outside [0, 1]), one knot a constant."""
    c = np.clip(np.asarray(c, dtype=np.float64), lo, hi)
    out = np.zeros((len(c), len(knots)))
    if len(knots) == 1:
        out[:, 0] = 1.0
        return out
    i = np.clip(np.searchsorted(knots, c) - 1, 0, len(knots) - 2)
    w = (c - knots[i]) / (knots[i + 1] - knots[i])
    rows = np.arange(len(c))
    out[rows, i] = 1.0 - w
    out[rows, i + 1] = w
    return out


class _Stacked(NamedTuple):
    """The per-column fits a correction applies as one matrix product (see ``_stacked``)."""
    fits: list[tuple[int, _Fit1D]]  # (condition column, its fit), columns some feature uses
    centre: np.ndarray  # (sum of the fits' centre bases, d)
    spread: np.ndarray  # (sum of the fits' spread knots, d)


class ConditionsCorrection:
    """Per-feature centre and spread of the good LS against their conditions (one column,
    or pile-up and luminosity: each feature against the one that explains it); residuals in
    spread units.

    Fitted attributes: ``range_`` (lo, hi) of the main condition (pile-up), ``ranges_`` of
    every column, ``ratio_range_`` of pile-up per luminosity (two columns), ``choice_`` the
    column each feature is fitted against, and one 1-D fit per column for its features.
    """

    def __init__(self, method: str = "poly"):
        self.method = _Fit1D(method).method  # an unknown method fails here, in one line

    def fit(self, X: np.ndarray, c: np.ndarray, what: str = "training conditions"
            ) -> "ConditionsCorrection":
        X = np.asarray(X, dtype=np.float64)
        C = check_conditions(c, X.shape[0], what).reshape(X.shape[0], -1)
        # a smooth curve of 3 coefficients and a binned spread need a few thousand LS, not
        # every LS of a long window: fitted on evenly spaced LS (every run, every condition),
        # the ranges taken on all of them
        every = max(1, int(np.ceil(len(X) / MAX_FIT_LS)))
        Xs, Cs = X[::every], C[::every]
        fits = [_Fit1D(self.method).fit(Xs, Cs[:, j], what) for j in range(C.shape[1])]
        self.ranges_ = [(float(C[:, j].min()), float(C[:, j].max())) for j in range(C.shape[1])]
        self.range_ = self.ranges_[0]
        C_all, X, C = C, Xs, Cs
        self.choice_ = np.zeros(X.shape[1], dtype=np.int64)
        self.ratio_range_ = None
        if len(fits) >= 2:
            left = np.array([_spread(X - f.centre(C[:, j])) for j, f in enumerate(fits)])
            best = np.argmin(left, axis=0)
            gain = left[best, np.arange(left.shape[1])] < SECOND_COLUMN_GAIN * left[0]
            self.choice_[gain] = best[gain]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = C_all[:, 0] / C_all[:, 1]  # the bunch scheme, over every LS
            if np.isfinite(ratio).all():
                self.ratio_range_ = (float(ratio.min()), float(ratio.max()))
        self._fits = [f.subset(np.flatnonzero(self.choice_ == j)) for j, f in enumerate(fits)]
        self._stacked_cache = None
        return self

    @property
    def n_columns(self) -> int:
        return len(self.ranges_)

    def _columns(self, c: np.ndarray) -> np.ndarray:
        C = np.asarray(c, dtype=np.float64).reshape(len(c), -1)
        if C.shape[1] != self.n_columns:
            raise DataError(f"the conditions correction was fitted on {self.n_columns} "
                            f"condition column(s) (pile-up, luminosity, time in fill), got "
                            f"{C.shape[1]}: give the LS all the conditions it was fitted on "
                            "(a conditions table with them)")
        return C

    def _stacked(self) -> _Stacked:
        """The fits of the columns some feature uses, with the coefficients of the centre
        and of the spread stacked over them, (n_basis, d) each: one column's rows are zero
        for the features of the other, so one matrix product gives every feature from its
        own column (no per-column copies into the output). Built once, on first use after
        fit or load; the saved file holds the per-column fits, as it always did."""
        if getattr(self, "_stacked_cache", None) is None:
            used = [(j, f) for j, f in enumerate(self._fits) if (self.choice_ == j).any()]

            def stack(values: list[np.ndarray]) -> np.ndarray:
                out = np.zeros((sum(len(v) for v in values), len(self.choice_)))
                row = 0
                for (j, _), v in zip(used, values):
                    out[row:row + len(v), self.choice_ == j] = v
                    row += len(v)
                return out
            self._stacked_cache = _Stacked(used, stack([f.centre_values for _, f in used]),
                                           stack([f.spread_ for _, f in used]))
        return self._stacked_cache

    def centre(self, c: np.ndarray) -> np.ndarray:
        """m(c), shape (n, d): see :class:`_Fit1D`."""
        stacked, C = self._stacked(), self._columns(c)
        return np.hstack([f.centre_basis(C[:, j]) for j, f in stacked.fits]) @ stacked.centre

    def spread(self, c: np.ndarray) -> np.ndarray:
        """s(c), shape (n, d): see :class:`_Fit1D`."""
        stacked, C = self._stacked(), self._columns(c)
        return np.hstack([f.spread_basis(C[:, j]) for j, f in stacked.fits]) @ stacked.spread

    def transform(self, X: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Residuals (x − m(c)) / s(c) in spread units, float64 (n, d); ``X`` may be
        float32 (cast on the way, no float64 copy of it is made)."""
        out = self.centre(c)
        np.subtract(np.asarray(X), out, out=out)
        out /= self.spread(c)
        return out

    def outside(self, c: np.ndarray) -> np.ndarray:
        """True for LS whose conditions lie outside the fitted range of any column (the
        centre there is the tangent at the edge, an extrapolation), or whose pile-up per
        luminosity (bunch scheme) the training never saw: the caller counts and reports
        them."""
        C = self._columns(c)
        out = np.zeros(len(C), bool)
        for j, (lo, hi) in enumerate(self.ranges_):
            out |= (C[:, j] < lo) | (C[:, j] > hi)
        if self.ratio_range_ is not None:
            lo, hi = self.ratio_range_
            with np.errstate(divide="ignore", invalid="ignore"):
                r = C[:, 0] / C[:, 1]
            out |= ~((r >= lo * (1 - RATIO_MARGIN)) & (r <= hi * (1 + RATIO_MARGIN)))
        return out

    # ---- persistence ------------------------------------------------------------------
    def save(self, file: str | Path) -> None:
        arrays = {k: v for j, f in enumerate(self._fits) for k, v in f.arrays(f"_{j}").items()}
        extra = {} if self.ratio_range_ is None else {"ratio_range": np.array(self.ratio_range_)}
        np.savez(file, method=np.array(self.method), n_columns=np.array(self.n_columns),
                 choice=self.choice_, ranges=np.array(self.ranges_), **arrays, **extra)

    @classmethod
    def load(cls, file: str | Path) -> "ConditionsCorrection":
        with np.load(file) as z:
            out = cls(str(z["method"]))
            z_ranges = z["ranges"] if "ranges" in z.files else None
            if "n_columns" not in z.files:  # saved before luminosity could be a column
                fits = [_Fit1D.from_arrays(z, out.method, "")]
                out.choice_ = np.zeros(fits[0].centre_.shape[1], dtype=np.int64)
                out.ratio_range_ = None
            else:
                fits = [_Fit1D.from_arrays(z, out.method, f"_{j}")
                        for j in range(int(z["n_columns"]))]
                out.choice_ = z["choice"]
                out.ratio_range_ = (tuple(float(v) for v in z["ratio_range"])
                                    if "ratio_range" in z.files else None)
        out._fits = fits
        out._stacked_cache = None
        out.ranges_ = ([tuple(float(v) for v in r) for r in z_ranges] if z_ranges is not None
                       else [f.range_ for f in fits])
        out.range_ = out.ranges_[0]
        return out


# ---- the fits ---------------------------------------------------------------------------
def _bins(c: np.ndarray, min_per_bin: int) -> list[np.ndarray]:
    """Row indices of quantile bins of c, each with >= min_per_bin LS (ties kept together)."""
    n_bins = int(np.clip(len(c) // min_per_bin, 1, MAX_BINS))
    order = np.argsort(c, kind="stable")
    cuts = np.quantile(c, np.linspace(0, 1, n_bins + 1)[1:-1])
    pos = np.unique(np.searchsorted(c[order], cuts, side="right"))
    pos = pos[(pos > 0) & (pos < len(c))]
    return [p for p in np.split(order, pos) if len(p)]


def _binned_medians(X: np.ndarray, c: np.ndarray, min_per_bin: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    parts = _bins(c, min_per_bin)
    knots = np.array([np.median(c[p]) for p in parts])
    values = np.stack([np.median(X[p], axis=0) for p in parts])
    return _merge_ties(knots, values)


def _binned_spread(R: np.ndarray, c: np.ndarray, min_per_bin: int
                ) -> tuple[np.ndarray, np.ndarray]:
    parts = _bins(c, min_per_bin)
    knots = np.array([np.median(c[p]) for p in parts])
    values = np.stack([_spread(R[p]) for p in parts])
    return _merge_ties(knots, values)


def _spread(R: np.ndarray) -> np.ndarray:
    """Standard deviation of the residuals winsorised at their 1st/99th percentiles.

    Robust to the ~1 % of bad LS a Golden JSON lets through, yet it sees every population
    holding more than that: a MAD would call the LS of a minority fill (another bunch
    scheme, so another luminosity per pile-up) 40σ outliers of the good LS themselves.
    """
    lo, hi = np.quantile(R, [WINSOR, 1 - WINSOR], axis=0)
    return np.clip(R, lo, hi).std(axis=0)


def _mad(R: np.ndarray) -> np.ndarray:
    return _MAD_TO_SIGMA * np.median(np.abs(R - np.median(R, axis=0)), axis=0)


def _merge_ties(knots: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bins whose median c coincide (many LS at one value) become one knot."""
    uniq, inverse = np.unique(knots, return_inverse=True)
    if len(uniq) == len(knots):
        return knots, values
    merged = np.stack([values[inverse == k].mean(axis=0) for k in range(len(uniq))])
    return uniq, merged


def _robust_quadratic(X: np.ndarray, c: np.ndarray, rng: tuple[float, float]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadratic in c per feature by IRLS with Huber weights: a grid, the quadratic on it,
    and its (3, d) coefficients in t = (c − mid) / half-range."""
    lo, hi = rng
    half = (hi - lo) / 2
    t = (c - (lo + hi) / 2) / half  # in [-1, 1]: a well-conditioned design
    A = np.stack([np.ones_like(t), t, t * t], axis=1)  # (n, 3)
    coef = np.linalg.lstsq(A, X, rcond=None)[0]  # (3, d)
    # the products A_i A_j of the design's columns: the weighted normal equations of every
    # feature at once become two matrix products (BLAS), not an (n, d, 3, 3) contraction
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    P = np.stack([A[:, i] * A[:, j] for i, j in pairs], axis=1)  # (n, 6)
    # the residual scale is a median: on a strided subsample of a large fit it is as good
    every = max(1, len(X) // _MAD_ROWS)
    for _ in range(_IRLS_ITERATIONS):
        R = X - A @ coef
        scale = _mad(R[::every])
        scale = np.where(scale > 0, scale, 1.0)
        W = _HUBER_K * scale / np.maximum(np.abs(R), 1e-300)
        np.minimum(W, 1.0, out=W)  # Huber weights, (n, d)
        sums = P.T @ W  # (6, d)
        AtWA = np.empty((X.shape[1], 3, 3))
        for k, (i, j) in enumerate(pairs):
            AtWA[:, i, j] = AtWA[:, j, i] = sums[k]
        AtWX = (A.T @ (W * X)).T  # (d, 3)
        coef = np.linalg.solve(AtWA + 1e-12 * np.eye(3), AtWX[..., None])[..., 0].T
    grid = np.linspace(lo, hi, 33)  # tabulated too, for a reader of the saved file
    tg = (grid - (lo + hi) / 2) / half
    return grid, np.stack([np.ones_like(tg), tg, tg * tg], axis=1) @ coef, coef


# ---- which columns of an LS table -----------------------------------------------------
def condition_columns(columns: Any, choice: str | None) -> list[str]:
    """The LS-table columns a ``conditions`` setting reads from a table with ``columns``:
    those of :data:`COLUMNS`, the luminosity beside the pile-up only when the table has a
    luminosity column (an LS table always has one; a bare table of pile-up values may not),
    and the time in fill beside both only when the table has it (a conditions table may
    leave it out)."""
    cols = list(COLUMNS[choice or "none"])
    if len(cols) < 2:
        return cols
    if cols[1] not in columns:
        return cols[:1]
    return cols[:2] + [c for c in cols[2:] if c in columns]


def conditions_matrix(frame: Any, choice: str | None) -> np.ndarray | None:
    """The condition values of each LS of ``frame`` for a ``conditions`` setting: None for
    ``none``, else the columns of :func:`condition_columns` (pile-up and luminosity, or
    one of them), one row per LS; a DataError naming the first LS without one."""
    if choice is None or choice == "none":
        return None
    cols = condition_columns(frame.columns, choice)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(f"the LS have no {missing[0]!r} column: give the preprocess step a "
                        "conditions table, or use conditions=none")
    values = frame[cols].to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        col = cols[int(np.flatnonzero(~np.isfinite(values[i]))[0])]
        where = (f"LS (run {frame['runId'].iat[i]}, LS {frame['lumiId'].iat[i]})"
                 if {"runId", "lumiId"} <= set(frame.columns) else f"row {i}")
        raise DataError(f"{where} has no {col}: give the preprocess step a conditions table, "
                        "or use conditions=none")
    return values[:, 0] if len(cols) == 1 else values


# ---- which column of an LS table ------------------------------------------------------
def conditions_column(choice: str, train: Any, others: dict[str, Any] | None = None,
                      where: str = "the data") -> str:
    """The LS-table column a ``conditions`` setting (``pileup``, ``lumi``, ``none``) means.

    ``train`` is the training LS table, ``others`` the other parts that will be scored
    (name -> table). The column must be present, finite for every LS and varying over the
    training LS, else a one-line DataError naming ``where`` says to give a conditions table
    or ``conditions=none``. One fallback, logged: ``pileup`` unknown for *every* LS (no
    column, or all NaN: feature tables carry only ``lumi``) but ``lumi`` usable → ``lumi``,
    which is proportional to pile-up within a fill (SPEC §2.4) and the next best thing.
    """
    import logging

    if choice == "none":
        return "none"
    if choice not in ("pileup", "lumi"):
        raise DataError(f"unknown conditions {choice!r}: use pileup, lumi or none")
    parts = {"training": train, **(others or {})}

    def unknown_everywhere(col: str) -> bool:
        return all(col not in t.columns or (len(t) and t[col].isna().all())
                   for t in parts.values())

    def problem(col: str) -> str | None:
        for name, t in parts.items():
            if col not in t.columns:
                return f"has no {col!r} column in its {name} LS"
            bad = ~np.isfinite(t[col].to_numpy(np.float64))
            if bad.any():
                return f"has no {col} value for {int(bad.sum())} of its {len(t)} {name} LS"
        n = len(np.unique(train[col].to_numpy(np.float64)))
        if n < MIN_DISTINCT:
            return f"has only {n} distinct {col} value(s) over its training LS"
        return None

    col = choice
    if choice == "pileup" and not unknown_everywhere("pileup") and problem("lumi"):
        raise DataError(f"{where} {problem('lumi')}: the pile-up fit keeps luminosity beside "
                        "pile-up (the luminosity monitor follows it); give the conditions "
                        "table's lumi, or train with conditions=none")
    if choice == "pileup" and "t_fill" in train.columns and problem("t_fill"):
        raise DataError(f"{where} {problem('t_fill')}: the pile-up fit keeps the time in fill "
                        "beside pile-up when the training LS have it; give every part the "
                        "conditions table's t_fill, or leave it out of the table")
    if choice == "pileup" and unknown_everywhere("pileup") and problem("lumi") is None:
        logging.getLogger("dc_mlops").info(
            "%s has no pile-up: correcting for luminosity (lumi) instead", where)
        col = "lumi"
    why = problem(col)
    if why:
        raise DataError(f"{where} {why}: give preprocess a conditions table (run, ls, lumi, "
                        "pileup) or train with conditions=none")
    return col

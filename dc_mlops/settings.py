"""Typed settings of every entry point: each parameter, its default and its rule, declared once.

The CLI builds its options from these dataclasses, ``scripts/write_mlproject.py`` builds
``MLproject`` from them, and a test checks the two agree. Building a settings object checks
every value against the rule declared beside it (``check=``), so a bad parameter stops
with one line naming it *before* any data is read or any MLflow run starts. Nothing here
reads the environment or touches the disk: settings are plain values.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dc_mlops.data.context import CONTEXT_LS
from dc_mlops.data.features import MIN_EVENTS
from dc_mlops.errors import DataError

ALL_ERAS = "2018A,2018B,2018C,2018D"
PDS = ("ZeroBias", "JetHT", "EGamma", "SingleMuon")
PROTOCOLS = ("rolling", "runs", "era")
CONDITIONS = ("pileup", "lumi", "none")

Check = Callable[[str, Any], None]


def _p(default, help: str, check: Check | None = None):  # noqa: A002 - mirrors argparse
    return field(default=default, metadata={"help": help, "check": check})


# ---- rules: each raises DataError("parameter <name>: ...") -------------------------------
def _fail(name: str, why: str, value: Any) -> None:
    raise DataError(f"parameter {name}: {why}, got {value!r}")


def at_least(lo: float) -> Check:
    def check(name: str, value: Any) -> None:
        if not value >= lo:
            _fail(name, f"must be >= {lo:g}", value)
    return check


def in_open_unit(name: str, value: Any) -> None:
    if not 0 < value < 1:
        _fail(name, "must lie strictly between 0 and 1", value)


def in_unit(name: str, value: Any) -> None:
    if not 0 <= value < 1:
        _fail(name, "must lie in [0, 1)", value)


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            _fail(name, f"must be one of {', '.join(choices)}", value)
    return check


def safe_name(name: str, value: Any) -> None:
    """Names that end up in MLflow experiment / registered-model names."""
    if value and not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        _fail(name, "may hold only letters, digits, '_', '.' and '-'", value)


def pd_name(allow_all: bool = False, allow_list: bool = False, allow_files: bool = True
            ) -> Check:
    """A built-in PD, ``auto``, a YAML/JSON feature-set file, or (where allowed) ``all``
    or a comma-separated list of built-in PDs."""
    def check(name: str, value: Any) -> None:
        if value in PDS or (allow_all and value == "all"):
            return
        if allow_files and (value == "auto" or value.endswith((".yaml", ".yml", ".json"))):
            return
        parts = [v.strip() for v in value.split(",")]
        if allow_list and len(parts) > 1 and all(p in PDS for p in parts):
            if len(set(parts)) != len(parts):
                _fail(name, "names a PD twice", value)
            return
        extra = (", 'all'" if allow_all else "") + (" or a comma-separated list" if allow_list
                                                    else "")
        files = ", 'auto' or a YAML/JSON feature-set file" if allow_files else ""
        _fail(name, f"must be one of {', '.join(PDS)}{extra}{files}", value)
    return check


def int_list(name: str, value: Any) -> None:
    parts = [p.strip() for p in str(value).split(",")]
    if not value or not all(re.fullmatch(r"\d+", p) for p in parts):
        _fail(name, "must be a comma-separated list of non-negative integers", value)
    if len(set(parts)) != len(parts):
        _fail(name, "lists a value twice", value)


def run_list(name: str, value: Any) -> None:
    """Empty, or run numbers and inclusive ranges: ``297050,297056`` or ``297100-297300``."""
    if value:
        parse_runs(value, name)


def model_list(name: str, value: Any) -> None:
    """Detector names, each optionally with parameters: ``name:key=value[:key=value]``
    (:func:`dc_mlops.detectors.registry.parse_spec`)."""
    from dc_mlops.detectors import registry  # lazy: the registry imports no framework
    names = [m.strip() for m in str(value).split(",")]
    if not value or not all(names):
        _fail(name, "must be a comma-separated list of detector names", value)
    for m in names:
        model_name(name, m.split(registry.SPEC_SEPARATOR)[0])
        try:
            registry.parse_spec(m)
        except DataError as exc:
            raise DataError(f"parameter {name}: {exc}") from None
    if len(set(names)) != len(names):
        _fail(name, "names a detector twice", value)


def model_name(name: str, value: Any) -> None:
    from dc_mlops.detectors import registry  # lazy: the registry imports no framework
    if value not in registry.names():
        _fail(name, f"unknown detector; known: {', '.join(registry.names())}", value)


def parse_runs(text: str, name: str = "runs") -> list[tuple[int, int]]:
    """``297050,297056`` or ``297100-297300`` (inclusive) -> [(first, last), ...]."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            _fail(name, "must list runs or inclusive ranges such as 297050,297100-297300", text)
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first:
            _fail(name, f"range {part!r} ends before it starts", text)
        out.append((first, last))
    return out


def _bool(text: str | bool) -> bool:
    """Command-line / MLproject booleans: true/false, yes/no, 1/0."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


class _Validated:
    """Checks every field against its declared rule (and its type) on construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            typ = _TYPES.get(f.type, f.type) if isinstance(f.type, str) else f.type
            if typ is bool:
                try:
                    object.__setattr__(self, f.name, _bool(value))
                except ValueError as exc:
                    raise DataError(f"parameter {f.name}: {exc}") from None
            elif typ is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif not isinstance(value, typ) or isinstance(value, bool):
                raise DataError(f"parameter {f.name}: must be {typ.__name__}, got {value!r}")
            if typ is float and value != value:  # NaN
                raise DataError(f"parameter {f.name}: must be a number, got nan")
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))
        self._check_together()

    def _check_together(self) -> None:
        """Rules that involve several parameters (hook)."""


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_NONNEG = at_least(0)
_POSITIVE = at_least(1)


@dataclass(frozen=True)
class SimulateSettings(_Validated):
    """Write a simulated era folder (raw histograms, conditions, Golden/DCS JSONs, truth)."""

    pd: str = _p("all", "primary dataset to simulate: ZeroBias, JetHT, EGamma, SingleMuon, "
                        "or 'all' (the four on the same runs, LS, conditions and failures)",
                 pd_name(allow_all=True, allow_files=False))
    era: str = _p(ALL_ERAS, "comma-separated eras to simulate, in order")
    n_ls: int = _p(20000, "number of LS (ignored when structure is given)", at_least(10))
    structure: str = _p("", "a certification JSON giving the real runs/LS to reproduce")
    golden: str = _p("", "with structure: the Golden JSON saying which of them are good")
    seed: int = _p(0, "random seed; the same seed gives the same era", _NONNEG)
    out: str = _p("data/simulated", "folder to write (must not exist or be empty)")

    @property
    def eras(self) -> list[str]:
        return [e.strip() for e in self.era.split(",") if e.strip()]

    def _check_together(self) -> None:
        if not self.eras:
            raise DataError("parameter era: name at least one era, e.g. 2018D")
        if self.golden and not self.structure:
            raise DataError("parameter golden: only used together with structure "
                            "(a DCS-only JSON giving the run/LS set)")


@dataclass(frozen=True)
class PreprocessSettings(_Validated):
    """Turn an input into features, drop low-statistics LS, split by run, track it."""

    pd: str = _p("JetHT", "PD name, a YAML/JSON feature-set file, or 'auto'", pd_name())
    data: str = _p("", "simulated era folder, feature table or raw histograms (required)")
    conditions_table: str = _p("", "CSV/Parquet of per-LS run conditions (run, ls, lumi"
                                   "[, pileup]) for raw histograms; an era folder brings its own")
    golden_json: str = _p("", "Golden JSON of good LS (an era folder brings its own)")
    label_column: str = _p("", "instead of a Golden JSON: a column that is true for good LS")
    dcs_bad: str = _p("", "CSV of DCS-bad LS blocks (run, first_ls, last_ls, subsystem)")
    human_bad: str = _p("", "CSV of human-bad LS blocks or runs")
    failures: str = _p("", "CSV of failure-scenario LS blocks with their subsystem")
    responsibility: str = _p("", "YAML mapping subsystems to the PD that certifies them "
                                 "(default: TRACKER, PIXEL -> ZeroBias; MUON -> SingleMuon; "
                                 "ECAL -> EGamma; HCAL, JETMET -> JetHT)")
    representation: str = _p("summary", "'summary' (7 numbers per histogram) or 'bins'",
                             one_of("summary", "bins"))
    under_overflow: str = _p("drop", "histogram under/overflow bins: 'drop' them or 'fold' "
                                     "them into the edge bins", one_of("drop", "fold"))
    min_events: int = _p(MIN_EVENTS, "LS with fewer events are dropped (low statistics)",
                         _NONNEG)
    split_mode: str = _p("chronological", "'runs' (train_runs/test_runs), 'random' or "
                                          "'chronological' assignment of runs",
                         one_of("runs", "random", "chronological"))
    train_runs: str = _p("", "split_mode=runs: the reference runs to train on, e.g. "
                             "297050,297056 or 297100-297300", run_list)
    test_runs: str = _p("", "split_mode=runs: the runs to test on (lists and ranges)", run_list)
    train_fraction: float = _p(0.5, "share of LS (whole runs) for training", in_open_unit)
    val_fraction: float = _p(0.15, "share for validation (early stopping)", in_open_unit)
    calib_fraction: float = _p(0.15, "share for calibration of the cut-offs", in_open_unit)
    seed: int = _p(0, "seed of a random split", _NONNEG)

    def _check_together(self) -> None:
        if self.train_fraction + self.val_fraction + self.calib_fraction >= 1:
            raise DataError("parameters train_fraction + val_fraction + calib_fraction must "
                            "leave a share for test (sum < 1)")
        if self.split_mode == "runs" and not (self.train_runs and self.test_runs):
            raise DataError("split_mode=runs needs train_runs and test_runs "
                            "(e.g. --train-runs 297050 --test-runs 297047-297049)")
        if self.split_mode != "runs" and (self.train_runs or self.test_runs):
            raise DataError("train_runs/test_runs are only used with split_mode=runs")
        if self.golden_json and self.label_column:
            raise DataError("give either golden_json or label_column, not both")


@dataclass(frozen=True)
class TrainSettings(_Validated):
    """Fit one detector on the good LS of a preprocessed data set and track it."""

    model: str = _p("sparse_ae", "detector name: vanilla_ae, sparse_ae, ..., ocsvm, iforest, "
                                 "pca, knn, mahalanobis, tails", model_name)
    pd: str = _p("JetHT", "primary dataset (selects the experiment and its data)", pd_name())
    conditions: str = _p("pileup", "remove each feature's dependence on 'pileup' or 'lumi' "
                                   "before the detector, or 'none'", one_of(*CONDITIONS))
    context_ls: int = _p(CONTEXT_LS, "run context: average each LS's corrected features with "
                                     "the LS within this many LS of it in its run (0: off)",
                         _NONNEG)
    preset: str = _p("default", "'default' (what works best here) or 'study' (the original "
                                "study's weights and optimiser)", one_of("default", "study"))
    epochs: int = _p(0, "maximum epochs (autoencoders); 0: the preset's limit, early "
                        "stopping on val_loss decides", _NONNEG)
    batch_size: int = _p(0, "mini-batch size (autoencoders); 0: the preset's", _NONNEG)
    learning_rate: float = _p(0.0, "Adam learning rate (autoencoders); 0: the preset's",
                              _NONNEG)
    seed: int = _p(0, "random seed of the detector", _NONNEG)
    preprocess_run: str = _p("", "run id of the preprocess run to train on; empty: the PD's "
                                 "only finished preprocess run (an error if there are several)")


@dataclass(frozen=True)
class TuneSettings(_Validated):
    """An Optuna study for one detector and PD; trials are nested MLflow runs."""

    model: str = _p("vanilla_ae", "detector name to tune", model_name)
    pd: str = _p("JetHT", "primary dataset", pd_name())
    conditions: str = _p("pileup", "conditions fit before the detector: pileup, lumi or none",
                         one_of(*CONDITIONS))
    context_ls: int = _p(CONTEXT_LS, "run context: average each LS's corrected features with "
                                     "the LS within this many LS of it in its run (0: off)",
                         _NONNEG)
    n_trials: int = _p(20, "trials to run in this call (a rerun resumes the study)", _NONNEG)
    storage: str = _p("", "Optuna storage URL (sqlite:///..., postgresql://...); empty: "
                          "sqlite:///optuna.db in the working directory")
    study_name: str = _p("", "study name; empty: dc-mlops-<pd>-<model>", safe_name)
    timeout: int = _p(0, "stop starting new trials after this many seconds (0: no limit)",
                      _NONNEG)
    n_jobs: int = _p(1, "worker processes on this machine (one per GPU when GPUs are seen)",
                     _POSITIVE)
    seed: int = _p(0, "seed of the sampler", _NONNEG)
    preprocess_run: str = _p("", "run id of the preprocess run; empty: the PD's only one")

    def _check_together(self) -> None:
        if self.storage and not re.match(r"^(sqlite|postgresql|postgresql\+psycopg2|mysql"
                                         r"(\+\w+)?)://", self.storage):
            raise DataError("parameter storage: must be an sqlite:/// or postgresql:// URL, "
                            f"got {self.storage!r}")  # DataError redacts passwords


@dataclass(frozen=True)
class EvaluateSettings(_Validated):
    """Compare detectors over seeds under a protocol, set each grey zone, report drift."""

    pd: str = _p("JetHT", "primary dataset", pd_name())
    models: str = _p("pca,vanilla_ae,sparse_ae,iforest,knn", "comma-separated detector names, "
                     "each optionally with parameters (mahalanobis:score_mode=histogram)",
                     model_list)
    seeds: str = _p("0,1,2", "comma-separated seeds", int_list)
    protocol: str = _p("rolling", "'rolling' (walk forward through the runs), 'runs' (the "
                                  "preprocess run's own split) or 'era' (train on earlier "
                                  "eras, certify the last)", one_of(*PROTOCOLS))
    window_runs: int = _p(30, "rolling: runs in the training window before each block",
                          at_least(2))
    calib_runs: int = _p(8, "rolling: the newest runs of the window, held out to calibrate "
                            "the cut-offs when calib_folds is 0", _POSITIVE)
    calib_folds: int = _p(4, "rolling/era: calibrate on out-of-fold scores of every window run "
                             "(this many run folds, each scored by a model that did not see "
                             "it); 0: on the newest calib_runs only", _NONNEG)
    step_runs: int = _p(10, "rolling: runs certified per step", _POSITIVE)
    conditions: str = _p("pileup", "conditions fit before the detector: pileup, lumi or none",
                         one_of(*CONDITIONS))
    context_ls: int = _p(CONTEXT_LS, "run context: average each LS's corrected features with "
                                     "the LS within this many LS of it in its run (0: off)",
                         _NONNEG)
    max_bad_as_good: float = _p(0.01, "target share of bad LS certified GOOD", in_unit)
    max_good_as_bad: float = _p(0.01, "target share of good LS flagged BAD", in_unit)
    epochs: int = _p(0, "epoch limit for autoencoders (0: the preset's)", _NONNEG)
    preprocess_run: str = _p("", "run id of the preprocess run; empty: the PD's only one")

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]

    @property
    def seed_list(self) -> list[int]:
        return [int(x) for x in self.seeds.split(",") if x.strip()]

    def _check_together(self) -> None:
        if self.calib_folds == 1:
            raise DataError("parameter calib_folds: 1 fold leaves nothing to train on; use 0 "
                            "(the newest calib_runs) or at least 2")
        if self.calib_runs >= self.window_runs:
            raise DataError(f"parameter calib_runs ({self.calib_runs}) must be smaller than "
                            f"window_runs ({self.window_runs}): the rest of the window trains")


@dataclass(frozen=True)
class PromoteSettings(_Validated):
    """Make the best evaluated candidate the Production certifier, if it meets the targets
    and beats the champion."""

    pd: str = _p("JetHT", "primary dataset (registered model dc-certifier-<pd>), or 'all': "
                          "the combination of one candidate per PD that is best for the Golden "
                          "JSON (the PDs' walks combined per LS)",
                 pd_name(allow_all=True))
    metric: str = _p("test_correct_automation_rate", "figure to maximise among the "
                     "candidates that meet both error-rate targets")
    evaluation_run: str = _p("", "run id of the evaluate run; empty: the latest of the PD "
                                 "(pd=all: one per PD, comma-separated, or empty)")


@dataclass(frozen=True)
class CertifySettings(_Validated):
    """Certify every LS of a new era with the Production certifier of each PD."""

    pd: str = _p("JetHT", "one PD, a comma-separated list, or 'all' (combined per LS through "
                          "the subsystem responsibility map)",
                 pd_name(allow_all=True, allow_list=True))
    data: str = _p("", "the new era: simulated era folder, feature table or raw histograms")
    out: str = _p("certification", "output folder (must not exist or be empty)")
    model_uri: str = _p("", "model to use (one PD only); empty: the production certifier "
                            "models:/dc-certifier-<pd>@production")
    conditions_table: str = _p("", "CSV/Parquet of per-LS run conditions for raw histograms")
    dcs_json: str = _p("", "DCS-only JSON: LS outside it are never certified GOOD (an era "
                           "folder brings its own)")
    golden_json: str = _p("", "a Golden JSON of the era, to report agreement (an era folder "
                              "brings its own)")
    responsibility: str = _p("", "YAML mapping subsystems to the PD that certifies them")
    force: bool = _p(False, "certify GOOD even when the era is outside the model's domain")
    min_events: int = _p(MIN_EVENTS, "LS with fewer events are not certified (low "
                                     "statistics)", _NONNEG)

    @property
    def pd_list(self) -> list[str]:
        return list(PDS) if self.pd == "all" else [p.strip() for p in self.pd.split(",")]

    def _check_together(self) -> None:
        if self.model_uri and len(self.pd_list) > 1:
            raise DataError("parameter model_uri: give it for one PD only (pd names "
                            f"{len(self.pd_list)})")


@dataclass(frozen=True)
class ReviewSettings(_Validated):
    """Read a DC expert's verdicts on grey-zone LS and feed them back into the certifier."""

    verdicts: str = _p("", "grey_zone.csv of a certification with a 'verdict' column "
                           "(GOOD or BAD) filled in (required)")
    pd: str = _p("all", "the PD(s) whose certifier learns from the verdicts: one, a list, "
                        "or 'all'", pd_name(allow_all=True, allow_list=True,
                                            allow_files=False))


@dataclass(frozen=True)
class MainSettings(_Validated):
    """The whole chain on the simulator."""

    pd: str = _p("all", "'all' (the four PDs, certified together) or one PD",
                 pd_name(allow_all=True, allow_files=False))
    n_ls: int = _p(40000, "LS to simulate for the history", at_least(1000))
    seed: int = _p(0, "random seed", _NONNEG)


ENTRY_POINTS: dict[str, type] = {
    "simulate": SimulateSettings,
    "preprocess": PreprocessSettings,
    "train": TrainSettings,
    "tune": TuneSettings,
    "evaluate": EvaluateSettings,
    "promote": PromoteSettings,
    "certify": CertifySettings,
    "review": ReviewSettings,
    "main": MainSettings,
}


def parameters(settings_cls: type) -> dict[str, tuple[type, object, str]]:
    """name -> (type, default, help) for every parameter of an entry point."""
    return {f.name: (_TYPES.get(f.type, f.type) if isinstance(f.type, str) else f.type,
                     f.default, f.metadata.get("help", ""))
            for f in dataclasses.fields(settings_cls)}

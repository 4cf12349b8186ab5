"""Typed settings of every entry point: each parameter and its default is declared here once.

The CLI builds its options from these dataclasses, and a test parses ``MLproject`` to check
that every entry point passes every parameter with the same default. Nothing here reads the
environment or touches the disk: settings are plain values.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ALL_ERAS = "2018A,2018B,2018C,2018D"


def _p(default, help: str):  # noqa: A002 - mirrors argparse
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SimulateSettings:
    """Write a simulated era folder (raw histograms, Golden/DCS JSONs, failure lists)."""

    pd: str = _p("JetHT", "primary dataset: ZeroBias, JetHT, EGamma or SingleMuon")
    era: str = _p(ALL_ERAS, "comma-separated eras to simulate, in order")
    n_ls: int = _p(20000, "number of LS (ignored when structure is given)")
    structure: str = _p("", "a certification JSON giving the real runs/LS to reproduce")
    golden: str = _p("", "with structure: the Golden JSON saying which of them are good")
    seed: int = _p(0, "random seed; the same seed gives the same era")
    out: str = _p("data/simulated", "folder to write (must not exist or be empty)")

    @property
    def eras(self) -> list[str]:
        return [e.strip() for e in self.era.split(",") if e.strip()]


@dataclass(frozen=True)
class PreprocessSettings:
    """Turn an input into features, drop low-statistics LS, split by run, track it."""

    pd: str = _p("JetHT", "PD name, a YAML/JSON feature-set file, or 'auto'")
    data: str = _p("", "simulated era folder, feature table or raw histograms; "
                       "empty: simulate the default era with `seed`")
    golden_json: str = _p("", "Golden JSON of good LS (an era folder brings its own)")
    label_column: str = _p("", "instead of a Golden JSON: a column that is true for good LS")
    dcs_bad: str = _p("", "CSV of DCS-bad LS blocks (run, first_ls, last_ls, subsystem)")
    human_bad: str = _p("", "CSV of human-bad LS blocks or runs")
    failures: str = _p("", "CSV of failure-scenario LS blocks with their subsystem")
    representation: str = _p("summary", "'summary' (7 numbers per histogram) or 'bins'")
    min_events: int = _p(500, "LS with fewer events are dropped (low statistics)")
    split_mode: str = _p("chronological", "'chronological' or 'random' assignment of runs")
    train_fraction: float = _p(0.5, "share of LS (whole runs) for training")
    val_fraction: float = _p(0.15, "share for validation (early stopping)")
    calib_fraction: float = _p(0.15, "share for calibration of the cut-offs")
    seed: int = _p(0, "seed for the simulator (empty data) and a random split")


@dataclass(frozen=True)
class TrainSettings:
    """Fit one detector on the good LS of a preprocessed data set and track it."""

    model: str = _p("sparse_ae", "detector name: vanilla_ae, sparse_ae, ..., ocsvm, iforest, pca, knn")
    pd: str = _p("JetHT", "primary dataset (selects the experiment and its data)")
    epochs: int = _p(200, "maximum epochs (autoencoders; early stopping on val_loss)")
    batch_size: int = _p(256, "mini-batch size (autoencoders)")
    learning_rate: float = _p(1e-4, "Adam learning rate (autoencoders)")
    seed: int = _p(0, "random seed of the detector")
    preprocess_run: str = _p("", "run id of the preprocess run to train on; "
                                 "empty: the latest finished one of the PD (made if none)")


@dataclass(frozen=True)
class TuneSettings:
    """An Optuna study for one detector and PD; trials are nested MLflow runs."""

    model: str = _p("vanilla_ae", "detector name to tune")
    pd: str = _p("JetHT", "primary dataset")
    n_trials: int = _p(20, "trials to run in this call (a rerun resumes the study)")
    storage: str = _p("", "Optuna storage URL; empty: sqlite:///optuna.db in the working directory")
    study_name: str = _p("", "study name; empty: dc-mlops-<pd>-<model>")
    timeout: int = _p(0, "stop starting new trials after this many seconds (0: no limit)")
    n_jobs: int = _p(1, "worker processes on this machine (one per GPU when GPUs are seen)")
    seed: int = _p(0, "seed of the sampler")
    preprocess_run: str = _p("", "run id of the preprocess run; empty: the latest of the PD")


@dataclass(frozen=True)
class EvaluateSettings:
    """Compare detectors on the same data over seeds, set their grey zones, report drift."""

    pd: str = _p("JetHT", "primary dataset")
    models: str = _p("sparse_ae,vanilla_ae,pca,iforest,knn", "comma-separated detector names")
    seeds: str = _p("0,1,2", "comma-separated seeds (finished train runs are reused)")
    max_bad_as_good: float = _p(0.001, "target share of known bad LS certified GOOD")
    max_good_as_bad: float = _p(0.01, "bound on the share of good LS flagged BAD (conformal)")
    epochs: int = _p(200, "epoch limit for detectors that must be trained first")
    preprocess_run: str = _p("", "run id of the preprocess run; empty: the latest of the PD")

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]

    @property
    def seed_list(self) -> list[int]:
        return [int(x) for x in self.seeds.split(",") if x.strip()]


@dataclass(frozen=True)
class PromoteSettings:
    """Make the best evaluated candidate the Production certifier, if it beats the champion."""

    pd: str = _p("JetHT", "primary dataset (registered model dc-certifier-<pd>)")
    metric: str = _p("test_automation_rate", "figure to maximise; ties broken by test_roc_auc")
    evaluation_run: str = _p("", "run id of the evaluate run; empty: the latest of the PD")


@dataclass(frozen=True)
class CertifySettings:
    """Certify every LS of a new era with the Production certifier of a PD."""

    pd: str = _p("JetHT", "primary dataset (the certifier dc-certifier-<pd>)")
    data: str = _p("", "the new era: simulated era folder, feature table or raw histograms")
    out: str = _p("certification", "output folder (must not exist or be empty)")
    model_uri: str = _p("", "model to use; empty: models:/dc-certifier-<pd>@production")
    golden_json: str = _p("", "a Golden JSON of the era, to report agreement (an era folder "
                              "brings its own)")
    min_events: int = _p(500, "LS with fewer events are not certified (low statistics)")


@dataclass(frozen=True)
class MainSettings:
    """The whole chain on the simulator."""

    pd: str = _p("JetHT", "primary dataset to run the chain for")
    n_ls: int = _p(20000, "LS to simulate for the training eras")
    seed: int = _p(0, "random seed")


ENTRY_POINTS: dict[str, type] = {
    "simulate": SimulateSettings,
    "preprocess": PreprocessSettings,
    "train": TrainSettings,
    "tune": TuneSettings,
    "evaluate": EvaluateSettings,
    "promote": PromoteSettings,
    "certify": CertifySettings,
    "main": MainSettings,
}


def parameters(settings_cls: type) -> dict[str, tuple[type, object, str]]:
    """name -> (type, default, help) for every parameter of an entry point."""
    hints = {"int": int, "float": float, "str": str}
    return {f.name: (hints.get(f.type, f.type) if isinstance(f.type, str) else f.type,
                     f.default, f.metadata.get("help", ""))
            for f in dataclasses.fields(settings_cls)}

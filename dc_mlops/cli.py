"""``dc-mlops <entry> --<param> <value>``: the same entry points, names and defaults as
``mlflow run . -e <entry> -P <param>=<value>`` (both are built from dc_mlops.settings).

The CLI only sets up the console, parses and calls one step function; bad input becomes one
line on stderr and exit code 2; the tracking server or the Optuna database failing midway
is one line and exit code 3. Neither line ever shows a password
(:func:`dc_mlops.errors.redact`).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from dc_mlops import console
from dc_mlops.errors import DataError, redact
from dc_mlops.settings import ENTRY_POINTS, _bool, parameters


# entry -> "module:function"; imported only when called, so `dc-mlops preprocess` never
# pays for TensorFlow and `--help` is instant
STEPS = {
    "simulate": "dc_mlops.steps.simulate:run_simulate",
    "preprocess": "dc_mlops.steps.preprocess:run_preprocess",
    "train": "dc_mlops.steps.train:run_train",
    "tune": "dc_mlops.steps.tune:run_tune",
    "evaluate": "dc_mlops.steps.evaluate:run_evaluate",
    "promote": "dc_mlops.steps.promote:run_promote",
    "certify": "dc_mlops.steps.certify:certify_and_report",
    "review": "dc_mlops.steps.review:run_review",
    "main": "dc_mlops.steps.main:run_main",
}


def _step(entry: str) -> Callable:
    module, func = STEPS[entry].split(":")
    return getattr(importlib.import_module(module), func)


class _Parser(argparse.ArgumentParser):
    """A bad option is one line on stderr and exit code 2, like any other bad input."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message}\n")


DESCRIPTION = (
    "Certify CMS lumisections (LS) automatically: detectors trained on good LS score every "
    "LS, two cut-offs split the scores into GOOD, BAD and a grey zone for a DC expert, and "
    "every step is tracked in MLflow.")
EPILOG = (
    "Each command is also an MLflow entry point with the same parameters and defaults: "
    "`dc-mlops train --model sparse_ae` is `mlflow run . -e train -P model=sparse_ae "
    "--env-manager local`. Runs are tracked in $MLFLOW_TRACKING_URI (default ./mlflow.db). "
    "Add --help after a command for its parameters.")


def _summary(doc: str | None) -> str:
    """The first sentence of a docstring, however many lines it spans."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".") + "."


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dc-mlops", description=DESCRIPTION, epilog=EPILOG)
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true",
                      help="only warnings and errors, no progress bars")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="also the libraries' own output (TensorFlow, MLflow, warnings) "
                           "and one line per training epoch")
    sub = parser.add_subparsers(dest="entry", required=True, metavar="command")
    for entry, cls in ENTRY_POINTS.items():
        doc = _summary(cls.__doc__)
        p = sub.add_parser(entry, help=doc, description=doc,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        for name, (typ, default, help_) in parameters(cls).items():
            p.add_argument(f"--{name.replace('_', '-')}", dest=name,
                           type=_bool if typ is bool else typ, default=default, help=help_)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure(quiet=args.quiet, verbose=args.verbose)  # before TensorFlow/MLflow load
    cls = ENTRY_POINTS[args.entry]
    try:
        # every parameter is checked here, before any data is read or any run starts
        settings = cls(**{k: v for k, v in vars(args).items() if k in parameters(cls)})
        if args.entry != "simulate":
            from dc_mlops.tracking.runs import check_tracking
            check_tracking()
        _step(args.entry)(settings)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the tracking server or the database failing midway
        failed = _infrastructure_failure(exc)
        if failed:
            reason = (str(exc).strip().splitlines() or [""])[0][:300]
            print(redact(f"error: the {failed} failed during {args.entry}: "
                         f"{type(exc).__name__}: {reason}"), file=sys.stderr)
            return 3
        raise
    return 0


def _infrastructure_failure(exc: Exception) -> str:
    """What failed, when ``exc`` is shared infrastructure going away midway ("" otherwise):
    exit 3, so scripts can tell it from bad input (exit 2) and retry."""
    import requests
    from mlflow.exceptions import MlflowException
    if isinstance(exc, (MlflowException, requests.RequestException, ConnectionError)):
        return "MLflow tracking server"
    if "sqlalchemy" in sys.modules:
        import sqlalchemy.exc
        if isinstance(exc, sqlalchemy.exc.OperationalError):
            return "database"
    return ""

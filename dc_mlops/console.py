"""The console a person reads: our own log lines, one progress bar per long task, and
nothing from the libraries unless ``--verbose``.

A DC expert running ``dc-mlops main`` should see what dc_mlops did and decided, not
TensorFlow's start-up banner (oneDNN notices, CPU-feature hints, ``cuInit`` failures that look
like errors on a healthy CPU machine), MLflow's "Downloading artifacts" bars or library
deprecation warnings. Most of that noise is emitted while TensorFlow and MLflow are *imported*,
and they read their switches from the environment at that moment: :func:`configure` must run
before either is imported (the CLI calls it first; entry points import nothing else before
it). The environment is inherited, so ``mlflow run`` steps and tuning workers stay quiet too.

Progress bars (tqdm) are drawn only on a terminal: in CI logs, pipes and files they are
silent, and so are they under ``-q``. Log lines go through ``tqdm.write`` so that a line
printed during training does not tear the bar.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

#: read by TensorFlow, absl, gRPC, GitPython and MLflow when they are imported (setdefault:
#: a value the user exported wins)
QUIET_ENVIRONMENT = {
    # TensorFlow's C++ log: oneDNN and CPU-feature notices (I), "failed call to cuInit" on a
    # machine without a GPU and "NodeDef mentions attribute ..." (E) -- none are actionable
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
    # MLflow: no "Downloading artifacts" bar per artifact, no INFO lines ("Creating initial
    # MLflow database tables...", "Validating input example ..."); its warnings stay
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # MLflow imports GitPython, which warns when there is no git executable
    "GIT_PYTHON_REFRESH": "quiet",
}

#: Python loggers that talk about their own plumbing at INFO
LIBRARY_LOGGERS = ("alembic", "urllib3", "botocore", "boto3", "s3transfer", "absl", "h5py",
                   "matplotlib", "PIL", "git", "mlflow", "optuna", "numexpr")

#: our own loggers whose INFO lines a progress bar replaces (shown with --verbose)
BAR_REPLACES = ("dc_mlops.detectors.autoencoders",)  # one line per training epoch

#: TensorFlow's start-up banner, printed by C++ code while ``import tensorflow`` runs and
#: before TF_CPP_MIN_LOG_LEVEL is read: absl's notice, I/W-level lines
#: (``I0000 00:00:1795572540.366111 13064 port.cc:153] oneDNN custom operations are on``,
#: ``cudart_stub.cc:31] Could not find cuda drivers``) and the CPU-feature hint's 2nd line
STARTUP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                           r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
                           r"|To enable the following instructions: )")

_state = {"bars": True}


class _ConsoleFormatter(logging.Formatter):
    """``12:03:04 message`` for information, ``12:03:04 WARNING message`` for the rest."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        text = f"{self.formatTime(record, self.datefmt)} {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _TqdmHandler(logging.StreamHandler):
    """Writes above any progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def quiet_libraries() -> None:
    """Switch the libraries' own output off (before TensorFlow/MLflow are imported).

    Also for processes that do not go through :func:`configure`, such as tuning workers.
    """
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    # library warnings (deprecations inside MLflow, SQLAlchemy, pandas...) are not the
    # user's to act on; ours still show
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"dc_mlops(\.|$)")
    for name in LIBRARY_LOGGERS:  # also when MLflow was imported before us
        logging.getLogger(name).setLevel(logging.WARNING)
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` with the process's stderr (fd 2) captured, then
    writes back every captured line that is not :data:`STARTUP_NOISE` (real errors stay).

    TensorFlow 2.21 prints its banner from C++ before it reads TF_CPP_MIN_LOG_LEVEL, so no
    environment variable hides it; this keeps ``dc-mlops preprocess`` free of TensorFlow (it
    is still imported only when a step needs it) and ``dc-mlops certify`` free of its banner.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module):
                with _stderr_filtered(STARTUP_NOISE):
                    run(module)
            spec.loader.exec_module = exec_module  # this package's own loader object only
        return spec


@contextmanager
def _stderr_filtered(noise: re.Pattern):
    """Capture fd 2 (C/C++ writes included) and replay the lines that are not ``noise``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines()
                    if line.strip() and not noise.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """Set up the console for one dc_mlops command (call before TensorFlow/MLflow imports).

    ``quiet``: only warnings and errors, no progress bars. ``verbose``: every library's own
    output as it would be without dc_mlops, plus our per-epoch lines.
    """
    _state["bars"] = not quiet
    if not verbose:
        quiet_libraries()
    handler = _TqdmHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _TqdmHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.getLogger("dc_mlops").setLevel(logging.DEBUG if verbose else logging.NOTSET)
    for name in BAR_REPLACES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def bars_enabled(stream: Any = None) -> bool:
    """Progress bars only for a person at a terminal, and not under ``-q``."""
    stream = sys.stderr if stream is None else stream
    return _state["bars"] and bool(getattr(stream, "isatty", lambda: False)())


def progress(total: int | None = None, desc: str = "", unit: str = "it", *,
             file: Any = None, enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """One progress bar for one long task (epochs, trials, LS scored); a context manager.

    Silent (a no-op object with the same methods) unless :func:`bars_enabled`; ``enabled``
    forces it either way; ``total=0`` (nothing to count, e.g. a baseline has no epochs) is
    silent too. The bar is removed when the task ends: the step's summary line says how it
    went.
    """
    stream = sys.stderr if file is None else file
    on = (bars_enabled(stream) if enabled is None else enabled) and total != 0
    kwargs = {"leave": False, "dynamic_ncols": True, "mininterval": 0.5, **kwargs}
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not on, **kwargs)


def epoch_hook(bar: tqdm, then=None):
    """An ``on_epoch_end`` callback that advances ``bar`` (showing the validation loss) and
    then calls ``then(epoch, logs)``, e.g. the MLflow step-metric logger."""
    def hook(epoch: int, logs: dict[str, float]) -> None:
        if then is not None:
            then(epoch, logs)
        if "val_loss" in logs:
            bar.set_postfix_str(f"val_loss {logs['val_loss']:.4g}", refresh=False)
        bar.update(1)
    return hook

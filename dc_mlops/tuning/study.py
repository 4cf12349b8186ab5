"""Studies, storages and workers.

- Storage: an Optuna RDB URL; empty means ``sqlite:///optuna.db`` in the working directory.
  ``postgresql://`` is rewritten to ``postgresql+psycopg2://`` (SQLAlchemy 2 would look for
  psycopg 3 otherwise). Each process opens **one** storage (one SQLAlchemy engine) with
  :func:`open_storage` and disposes of it at the end: many workers share one PostgreSQL
  server, whose ``max_connections`` (100 by default) is the budget of the whole team. A
  server database gets a small pool (``POOL_SIZE`` + ``MAX_OVERFLOW`` = 3 connections at
  most per process: the worker's thread and Optuna's heartbeat thread use one each), checked
  before use (``pool_pre_ping``: a connection the server or a firewall dropped while a long
  trial ran is replaced, not an error). See docs/shared_infrastructure.md for the budget.
  A storage that cannot be opened at the start is one line (DataError, exit 2: the URL the
  user gave does not answer, and nothing has started yet). Every storage runs heartbeats: a trial whose process stops beating
  for ``grace_period`` seconds (SIGKILL, a lost node) is failed just before the next trial
  of any worker asks for parameters, and its MLflow run is closed as FAIL. A killed worker
  thus loses at most its running trial.
- The study is created once (``load_if_exists``) by the launcher before any worker starts
  (two workers racing to create it on an empty PostgreSQL database crash), and remembers
  the model, PD and preprocess run it scores, so a rerun cannot mix objectives.
- ``n_trials`` counts the trials *this call* runs, in every state, shared by its workers
  through a ticket counter: a rerun resumes the study and runs ``n_trials`` more; with
  two workers the two together run exactly ``n_trials`` (a killed worker's unused tickets go
  to the others). ``timeout`` stops starting new trials after that many seconds.
- Workers: one process per GPU when TensorFlow sees GPUs (autoencoders), each started with
  ``CUDA_VISIBLE_DEVICES`` set to its device before TensorFlow is imported in it;
  otherwise ``n_jobs`` CPU processes (each with ``cores / n_jobs`` TensorFlow threads). A
  single worker runs in the calling process. Processes are started with ``spawn``.
- Sampler: TPE seeded with ``seed + 1000·worker + trials already in the study`` (so workers
  and reruns do not replay each other's proposals), ``constant_liar`` for parallel workers.
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from dc_mlops import console
from dc_mlops.errors import DataError

log = logging.getLogger("dc_mlops")

DEFAULT_STORAGE = "sqlite:///optuna.db"
#: connections one process may hold to a database server (see the module docstring)
POOL_SIZE, MAX_OVERFLOW = 2, 1
#: seconds to wait for a database server to accept a connection before giving up
CONNECT_TIMEOUT = 10
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class TuneOptions:
    """Knobs of a study beyond the entry point's parameters (tests, benchmarks, power users).

    ``fixed`` pins search-space parameters (see :mod:`.spaces`); ``enqueue`` adds trials with
    given parameters before sampling starts; ``retrain`` retrains the best trial as a
    ``train`` run at the end.
    """

    fixed: Mapping[str, Any] = field(default_factory=dict)
    enqueue: tuple[Mapping[str, Any], ...] = ()
    prune_startup_trials: int = 5
    prune_warmup_epochs: int = 5
    tpe_startup_trials: int = 10
    heartbeat_interval: int = 30
    grace_period: int = 120
    retrain: bool = True


def storage_url(url: str) -> str:
    url = url or DEFAULT_STORAGE
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings: a bounded, pre-pinged pool for database servers; a long
    lock timeout for SQLite (several workers on one file)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW,
                              "pool_timeout": 120, "pool_pre_ping": True, "pool_recycle": 1800}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return kwargs


def make_storage(url: str, options: TuneOptions) -> optuna.storages.RDBStorage:
    """The process's storage; prefer :func:`open_storage`, which also disposes of it."""
    import sqlalchemy.exc

    url = storage_url(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs(url),
                heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period,
                heartbeat_stale_trial_callback=_close_lost_trial_run)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise DataError(f"cannot open the Optuna storage {url}: "
                        f"{reason[0] if reason else type(exc).__name__}") from None


@contextmanager
def open_storage(url: str, options: TuneOptions) -> Iterator[optuna.storages.RDBStorage]:
    """One storage for this process, its connections closed when the block ends."""
    storage = make_storage(url, options)
    try:
        yield storage
    finally:
        close_storage(storage)


def close_storage(storage: optuna.storages.RDBStorage) -> None:
    storage.remove_session()
    storage.engine.dispose()


def make_sampler(seed: int, worker: int, n_existing: int, options: TuneOptions) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed + 1000 * worker + n_existing,
                                      n_startup_trials=options.tpe_startup_trials,
                                      constant_liar=True)


def make_pruner(options: TuneOptions) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=options.prune_startup_trials,
                                       n_warmup_steps=options.prune_warmup_epochs)


def create_or_load(storage: optuna.storages.RDBStorage, study_name: str,
                   attrs: Mapping[str, str], options: TuneOptions) -> optuna.Study:
    """Create the study (or load it) in the launcher; refuse one made for other data."""
    study = optuna.create_study(storage=storage, study_name=study_name,
                                direction="maximize", load_if_exists=True,
                                pruner=make_pruner(options))
    for key, value in attrs.items():
        have = study.user_attrs.get(key)
        if have is None:
            study.set_user_attr(key, value)
        elif have != value:
            raise DataError(f"study {study_name!r} was made for {key}={have!r}, not {value!r}; "
                            "choose another study_name")
    return study


def _close_lost_trial_run(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    log.warning("tune: trial %d lost its worker (no heartbeat), marked FAIL", trial.number)
    run_id = trial.user_attrs.get("mlflow_run_id")
    if run_id:
        from dc_mlops.tracking.studies import mark_lost_trial
        mark_lost_trial(run_id, trial.number, "worker stopped sending heartbeats (killed?)")


def fail_stale(study: optuna.Study) -> None:
    """Fail trials of dead workers now (Optuna also does it before each new trial)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


# ---- workers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: no TensorFlow objects)."""

    model: str
    storage: str
    study_name: str
    preprocess_run: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    seed: int
    options: TuneOptions
    run_tags: Mapping[str, str]
    worker: int = 0
    conditions: str = "pileup"  # the conditions column the detector corrects for
    context_ls: int = 0  # run context of the detector (LS on each side)
    device: str | None = None  # CUDA device id; None: CPU
    cpu_threads: int = 0  # TensorFlow intra-op threads; 0: TensorFlow's default
    log_level: int = logging.INFO


class _Tickets:
    """In-process ticket counter (the same interface as the shared one)."""

    def __init__(self, n: int):
        self.n = n

    def take(self) -> bool:
        if self.n <= 0:
            return False
        self.n -= 1
        return True


class _SharedTickets:
    def __init__(self, value):
        self.value = value

    def take(self) -> bool:
        with self.value.get_lock():
            if self.value.value <= 0:
                return False
            self.value.value -= 1
            return True


def visible_gpus() -> list[str]:
    """CUDA ids of the GPUs TensorFlow sees (respecting an inherited CUDA_VISIBLE_DEVICES)."""
    import tensorflow as tf
    n = len(tf.config.list_physical_devices("GPU"))
    inherited = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (inherited or [str(i) for i in range(n)])[:n]


def plan_workers(n_jobs: int, family: str, gpus: list[str] | None = None) -> list[str | None]:
    """One entry per worker: its CUDA device, or None for CPU."""
    if family == "autoencoder":
        gpus = visible_gpus() if gpus is None else gpus
        if gpus:
            if n_jobs > 1 and n_jobs != len(gpus):
                log.info("tune: %d GPU(s) seen: one worker per GPU (n_jobs=%d ignored)",
                         len(gpus), n_jobs)
            return list(gpus)
    return [None] * max(1, n_jobs)


def run_workers(base: WorkerSpec, devices: list[str | None], n_trials: int,
                timeout: float, storage: optuna.storages.RDBStorage | None = None) -> None:
    """Run ``n_trials`` trials (in all) on ``devices``; returns when all workers are done.
    A single CPU worker runs here, on ``storage`` (the launcher's) when given."""
    deadline = time.time() + timeout if timeout > 0 else math.inf
    bar = console.progress(n_trials, f"tune {base.model}", "trial")
    if len(devices) == 1 and devices[0] is None:
        with bar:
            worker_main(base, _Tickets(n_trials), deadline, storage, bar)
        return
    ctx = mp.get_context("spawn")
    tickets = ctx.Value("i", n_trials)
    threads = 0 if devices[0] is not None else max(1, (os.cpu_count() or 1) // len(devices))
    procs = []
    for i, device in enumerate(devices):
        spec = _replace(base, worker=i, device=device, cpu_threads=threads)
        p = ctx.Process(target=_worker_entry, args=(spec, tickets, deadline),
                        name=f"tune-worker-{i}")
        with _cuda_env(device):  # inherited by the new interpreter before any import
            p.start()
        procs.append(p)
    with bar:  # trials handed out so far (each worker takes a ticket per trial it starts)
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            bar.update(n_trials - max(tickets.value, 0) - bar.n)
    for p in procs:
        p.join()
    failed = [(p.name, p.exitcode) for p in procs if p.exitcode]
    for name, code in failed:
        if code < 0:
            log.warning("tune: %s was killed (signal %d); at most its running trial is lost",
                        name, -code)
    crashed = [f"{n} (exit {c})" for n, c in failed if c > 0]
    if crashed and len(crashed) == len(procs):
        raise RuntimeError(f"every tune worker failed: {', '.join(crashed)}; see their tracebacks")
    if crashed:
        log.error("tune: worker(s) failed: %s", ", ".join(crashed))


def _replace(spec: WorkerSpec, **changes) -> WorkerSpec:
    import dataclasses
    return dataclasses.replace(spec, **changes)


class _cuda_env:
    def __init__(self, device: str | None):
        self.device, self.saved = device, None

    def __enter__(self):
        if self.device is not None:
            self.saved = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = self.device

    def __exit__(self, *exc):
        if self.device is not None:
            if self.saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = self.saved


def _worker_entry(spec: WorkerSpec, tickets, deadline: float) -> None:
    if spec.device is not None:  # before TensorFlow is imported in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.device
    if spec.log_level > logging.DEBUG:  # not --verbose: quiet libraries, as in the parent
        console.quiet_libraries()
    logging.basicConfig(level=spec.log_level, format=f"%(asctime)s %(levelname)s "
                        f"[worker {spec.worker}] %(message)s", datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker_main(spec, _SharedTickets(tickets), deadline)


def worker_main(spec: WorkerSpec, tickets, deadline: float,
                storage: optuna.storages.RDBStorage | None = None, bar=None) -> int:
    """Load the data once, then run trials while tickets and time last; returns the count.
    Uses ``storage`` when given (in-process), else opens the process's own and closes it;
    ``bar``: the parent's trial bar when the worker runs in the parent process."""
    if storage is None:
        with open_storage(spec.storage, spec.options) as own:
            return worker_main(spec, tickets, deadline, own, bar)
    from dc_mlops.tracking.runs import set_tracking_uri
    set_tracking_uri(spec.tracking_uri)
    if spec.cpu_threads and _keras_backend() == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(spec.cpu_threads)
    from dc_mlops.detectors import registry
    from dc_mlops.tuning.objective import DivergedError, Objective, TuningData

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = TuningData.load(spec.preprocess_run, spec.conditions, spec.context_ls)
    n_existing = len(optuna.load_study(study_name=spec.study_name, storage=storage).trials)
    study = optuna.load_study(study_name=spec.study_name, storage=storage,
                              sampler=make_sampler(spec.seed, spec.worker, n_existing, spec.options),
                              pruner=make_pruner(spec.options))
    objective = Objective(spec.model, data, spec.experiment_id, spec.parent_run_id,
                          seed=spec.seed, fixed=spec.options.fixed, worker=spec.worker,
                          run_tags=spec.run_tags)
    catch: tuple[type[Exception], ...] = (DivergedError,)
    if registry.family(spec.model) == "autoencoder" and _keras_backend() == "tensorflow":
        import tensorflow as tf
        catch += (tf.errors.ResourceExhaustedError,)  # a too-large batch on a small GPU
    done = 0
    while time.time() < deadline and tickets.take():
        study.optimize(objective, n_trials=1, catch=catch,
                       callbacks=[_progress(spec.worker, bar)])
        done += 1
    return done


def _keras_backend() -> str:
    """The Keras backend this process will use, without importing Keras (JAX and PyTorch
    hosts have no TensorFlow to import)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _progress(worker: int, bar=None):
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no completed trial yet"
        if bar is not None:
            bar.set_postfix_str(best, refresh=False)
            bar.update(1)
        value = f"{trial.value:.4f}" if trial.state == TrialState.COMPLETE else "-"
        log.info("tune trial %d %s value=%s, %s, %.1f s", trial.number, trial.state.name,
                 value, best, trial.duration.total_seconds() if trial.duration else float("nan"))
    return callback


def counts(study: optuna.Study) -> dict[str, int]:
    out = {s.name.lower(): 0 for s in (*FINISHED, TrialState.RUNNING)}
    for t in study.get_trials(deepcopy=False):
        if t.state.name.lower() in out:
            out[t.state.name.lower()] += 1
    return out


def figures(study: optuna.Study) -> dict[str, Any]:
    """Optimisation history and parameter importances as matplotlib figures (by file name);
    a plot that cannot be drawn yet (too few completed trials) is left out."""
    import matplotlib
    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    out = {}
    for name, plot in (("optimization_history.png", vis.plot_optimization_history),
                       ("param_importances.png", vis.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning
                ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.info("tune: no %s yet (%s)", name, exc)
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        out[name] = fig
    return out

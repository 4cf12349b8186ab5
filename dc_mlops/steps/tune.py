"""The ``tune`` step: an Optuna study for one detector and PD, tracked in MLflow.

One ``tune`` run per call in the PD's experiment, with one nested run per trial
(``trial-007 COMPLETE 0.9412``: parameters, per-epoch ``train_loss``/``val_loss``/``val_recon``,
``val_roc_auc``, ``val_pr_auc``, ``val_roc_auc_<subsystem>``, ``best_val_recon``). The study
run logs the settings, the storage URL without credentials, the study name, ``best_<param>``
parameters, ``best_val_roc_auc``, trial counts per state, and the artifacts
``optimization_history.png``, ``param_importances.png`` and ``trials.csv``. The best trial is
then retrained with :func:`dc_mlops.steps.train.run_train` as an ordinary ``train`` run
(test metrics, pyfunc model), tagged with the study run; tuning never promotes.

The objective is detection quality on validation LS of earlier runs (good ``val`` LS plus
``known_bad``), never the test split. A rerun with the same study name resumes the study
and runs ``n_trials`` more; see :mod:`dc_mlops.tuning.study` for storage and workers.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field


from dc_mlops.detectors import registry
from dc_mlops.errors import redact
from dc_mlops.settings import TrainSettings, TuneSettings
from dc_mlops.steps.inputs import resolve_preprocess_run
from dc_mlops.tracking import runs as tr
from dc_mlops.tracking.ui import run_name
from dc_mlops.tracking import studies as ts
from dc_mlops.tuning import study as st
from dc_mlops.tuning.spaces import space_for

log = logging.getLogger("dc_mlops")
STEP = "tune"
#: detector parameters that TrainSettings carries itself (the rest go as extra_params)
TRAIN_SETTINGS_PARAMS = ("epochs", "batch_size", "learning_rate", "seed")


@dataclass(frozen=True)
class TuneResult:
    run_id: str
    study_name: str
    storage: str
    best_value: float | None
    best_params: dict
    counts: dict[str, int]
    train_run_id: str = ""
    model_uri: str = ""
    trial_numbers: list[int] = field(default_factory=list)


def default_study_name(s: TuneSettings) -> str:
    return s.study_name or f"dc-mlops-{s.pd}-{s.model}"


def run_tune(s: TuneSettings, options: st.TuneOptions | None = None) -> TuneResult:
    options = options or st.TuneOptions()
    space_for(s.model)  # an unknown or untunable model fails before any work
    family = registry.family(s.model)
    pre_run = resolve_preprocess_run(s.pd, s.preprocess_run)
    url = st.storage_url(s.storage)
    name = default_study_name(s)
    # this process's one engine (an unreachable database fails here, in one line)
    with st.open_storage(url, options) as storage:
        # the experiment and the study exist before any worker starts (STACK_NOTES: races)
        exp = tr.ensure_experiment(tr.experiment_name(s.pd))
        study = st.create_or_load(storage, name, {"model": s.model, "pd": s.pd,
                                                  "preprocess_run": pre_run}, options)
        st.fail_stale(study)
        before = {t.number for t in study.get_trials(deepcopy=False)}
        for params in options.enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=True)
        devices = st.plan_workers(s.n_jobs, family)
        where = (f"GPU {','.join(devices)}" if devices[0] is not None
                 else f"{len(devices)} CPU worker(s)")
        log.info("tune %s on %s: study %r in %s (%d trials so far), %d more on %s",
                 s.model, s.pd, name, redact(url), len(before), s.n_trials, where)
        tags = {**ts.study_tags(name, s.pd, s.model), "dc_mlops.preprocess_run": pre_run}
        with tr.tracked_run(exp, STEP, run_name(STEP, model=s.model, pd=s.pd), tags=tags) as run:
            tr.log_params({"model": s.model, "family": family, "pd": s.pd,
                           "n_trials": s.n_trials, "storage": redact(url), "study_name": name,
                           "timeout": s.timeout, "n_jobs": s.n_jobs, "context_ls": s.context_ls, "workers": len(devices),
                           "devices": where, "seed": s.seed, "preprocess_run": pre_run,
                           "fixed_params": json.dumps(dict(options.fixed), sort_keys=True)})
            spec = st.WorkerSpec(model=s.model, storage=url, study_name=name,
                                 preprocess_run=pre_run, experiment_id=exp,
                                 parent_run_id=run.info.run_id, tracking_uri=tr.tracking_uri(),
                                 seed=s.seed, options=options, run_tags=tags,
                                 conditions=s.conditions, context_ls=s.context_ls,
                                 log_level=logging.getLogger("dc_mlops").getEffectiveLevel())
            st.run_workers(spec, devices, s.n_trials, s.timeout, storage)
            study = st.create_or_load(storage, name, {}, options)
            result = _log_study(study, before, redact(url))
            best_trial = study.best_trial.number if result.best_value is not None else -1
    if result.best_value is not None and options.retrain:
        result = _retrain_best(s, name, best_trial, pre_run, result)
    elif result.best_value is None:
        log.warning("tune %s: no completed trial in study %r, nothing to retrain", s.model, name)
    log.info("tune %s: %s; best val ROC AUC %s", s.model,
             ", ".join(f"{v} {k}" for k, v in result.counts.items() if v),
             "n/a" if result.best_value is None else f"{result.best_value:.4f}")
    return result


def _log_study(study, before: set[int], storage: str) -> TuneResult:
    counts = st.counts(study)
    new = sorted(t.number for t in study.get_trials(deepcopy=False) if t.number not in before)
    tr.log_metrics({f"n_{k}": v for k, v in counts.items()} | {"n_trials_this_call": len(new)})
    best_value, best_params = None, {}
    if counts["complete"]:
        best = study.best_trial
        best_value, best_params = best.value, dict(best.user_attrs.get("detector_params", {}))
        tr.log_params({f"best_{k}": json.dumps(v) if isinstance(v, list) else v
                       for k, v in best_params.items()} | {"best_trial": best.number})
        tr.log_metrics({"best_val_roc_auc": best.value,
                        **{f"best_{k}": v for k, v in best.user_attrs.items()
                           if k in ("val_pr_auc", "best_val_recon", "val_good_score_mean")}})
        tr.set_tag("dc_mlops.best_trial_run_id", best.user_attrs.get("mlflow_run_id", ""))
    for fname, fig in st.figures(study).items():
        tr.log_figure(fig, fname)
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration",
                                          "user_attrs"))
    if len(frame):
        frame["duration"] = frame["duration"].dt.total_seconds()
        tr.log_frame(frame.astype({c: str for c in frame.columns if frame[c].dtype == object}),
                     "", "trials.csv", fmt="csv")
    return TuneResult(ts.active_run_id(), study.study_name, storage, best_value, best_params, counts,
                      trial_numbers=new)


def _retrain_best(s: TuneSettings, study_name: str, best_trial: int, pre_run: str,
                  result: TuneResult) -> TuneResult:
    """The best trial's configuration as an ordinary ``train`` run on the training split."""
    from dc_mlops.steps.train import run_train
    params = dict(result.best_params)
    own = {k: params.pop(k) for k in TRAIN_SETTINGS_PARAMS if k in params}
    defaults = TrainSettings()
    train = TrainSettings(model=s.model, pd=s.pd, preprocess_run=pre_run,
                          conditions=s.conditions, context_ls=s.context_ls,
                          seed=own.get("seed", s.seed),
                          epochs=own.get("epochs", defaults.epochs),
                          batch_size=own.get("batch_size", defaults.batch_size),
                          learning_rate=own.get("learning_rate", defaults.learning_rate))
    log.info("tune %s: retraining trial %d as a train run", s.model, best_trial)
    with ts.detached_from_launcher():
        trained = run_train(train, extra_params=params)
    ts.set_run_tags(trained.run_id, {"dc_mlops.tune_run": result.run_id,
                                     ts.TAG_STUDY: study_name,
                                     "dc_mlops.tune_trial": str(best_trial)})
    ts.set_run_tags(result.run_id, {"dc_mlops.best_train_run_id": trained.run_id,
                                    "dc_mlops.best_model_uri": trained.model_uri})
    return TuneResult(result.run_id, result.study_name, result.storage, result.best_value,
                      result.best_params, result.counts, trained.run_id, trained.model_uri,
                      result.trial_numbers)

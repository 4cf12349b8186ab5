"""Tuning: Optuna studies over the detectors (SPEC §6).

- :mod:`.spaces`: one search-space function per detector family; every ``suggest_*`` lives
  there and only valid configurations come out.
- :mod:`.objective`: data loaded once, then per trial data → model → fit → one number
  (ROC AUC on good validation LS plus the known bad LS of earlier runs), pruning from the
  per-epoch validation reconstruction loss, one nested MLflow run per trial.
- :mod:`.study`: storage, sampler, pruner, worker processes (one per GPU when TensorFlow
  sees GPUs), heartbeats so a killed worker loses at most its running trial.

Nothing here imports TensorFlow at import time: a worker pins its GPU first.
"""

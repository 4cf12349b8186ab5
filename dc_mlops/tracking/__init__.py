"""Tracking layer: the only code that talks to MLflow (runs, datasets, artifacts, registry)."""

"""Evaluation layer: metrics, the grey zone and the figures a DC expert reads (no MLflow)."""

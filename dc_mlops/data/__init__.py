"""Data layer: formats, validation, the 7-number summary, labels, splits and the simulator.

Nothing here imports MLflow or a model; every other layer builds on it.
"""

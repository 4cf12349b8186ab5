"""Steps: one function per entry point, composing data, detectors, evaluation and tracking."""

"""Failures the trainer can name, so whoever runs it (the worker, a notebook) need not guess from a
traceback what went wrong. The worker maps each onto a job error code (``workers/runner.py``).
"""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: a failure with a cause the user can act on."""


class GraderFailed(TrainingError):
    """The reward function itself raised while scoring (not a completion it could not parse: that is
    a flag with reward 0)."""


class ModelLoadFailed(TrainingError):
    """The base model (weights, config or processor) could not be loaded from where it was found."""


class ExampleRejected(TrainingError):
    """One training example the model cannot take (e.g. an image its processor refuses)."""

    def __init__(self, example_id: str, message: str):
        super().__init__(f"example {example_id}: {message}")
        self.example_id = example_id
        self.reason = message

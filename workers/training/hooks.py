"""How the trainer talks to whoever runs it (a notebook, the CLI, the Celery worker).

Subclass `Hooks` and override what you need; every method defaults to a no-op. `train()` also
accepts any object with a subset of these methods (missing ones are no-ops), so the worker can
pass a small adapter class of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STOP_REASONS = ("cancel", "pause")


class Hooks:
    def on_step(self, metrics: dict[str, Any]) -> None:
        """After every GRPO step; see grpo.py for the metric names."""

    def on_rollouts(self, step: int, rollouts: list[dict[str, Any]]) -> None:
        """A few sampled prompts per step with their completions, rewards, advantages, flags."""

    def on_checkpoint(self, path: Path, step: int, metrics: dict[str, Any]) -> None:
        """After a checkpoint folder (or the final adapter) is complete on disk."""

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        """After an evaluation on the validation data."""

    def should_stop(self) -> str | None:
        """Polled between steps: None to go on, "cancel" to stop, "pause" to checkpoint and stop."""
        return None


class _Bound:
    """Calls the user's hooks object, falling back to a no-op for methods it lacks."""

    def __init__(self, hooks: Any) -> None:
        self._hooks = hooks if hooks is not None else Hooks()

    def __getattr__(self, name: str):
        return getattr(self._hooks, name, getattr(Hooks(), name))


def bind(hooks: Any) -> Hooks:
    return _Bound(hooks)  # type: ignore[return-value]


@dataclass
class RecordingHooks(Hooks):
    """Keeps everything in lists: handy in notebooks and tests. `stop_after` emulates a stop request."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    checkpoints: list[tuple[Path, int]] = field(default_factory=list)
    evals: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    stop_after: int | None = None
    stop_reason: str = "pause"

    def on_step(self, metrics: dict[str, Any]) -> None:
        self.steps.append(metrics)

    def on_rollouts(self, step: int, rollouts: list[dict[str, Any]]) -> None:
        self.rollouts.append((step, rollouts))

    def on_checkpoint(self, path: Path, step: int, metrics: dict[str, Any]) -> None:
        self.checkpoints.append((path, step))

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self.evals.append((step, metrics))

    def should_stop(self) -> str | None:
        if self.stop_after is not None and len(self.steps) >= self.stop_after:
            return self.stop_reason
        return None

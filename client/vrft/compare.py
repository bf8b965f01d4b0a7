"""Jobs side by side: each job's evaluations (its metrics events with ``eval: true``) as comparable rows.

Pure functions over what the API returned (no I/O): ``client.jobs.compare`` fetches, these shape, and
``vrft jobs compare`` prints them. The figures kept are the evaluation's scalar ``valid_*`` values
(``valid_reward_mean``, the task metric under its own name — ``valid_accuracy``, ``valid_map``,
``valid_miou`` —, a supervised job's ``valid_loss`` and ``valid_mean_token_accuracy``); ``valid_metric``
is left out because it repeats the task metric under a generic name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vrft.types import Evaluation, FineTuningJob, JobComparison, JobEvent

# the columns' order: the grader's reward and task metrics first, then a supervised job's figures,
# then anything else alphabetically
PREFERRED = ("valid_reward_mean", "valid_accuracy", "valid_map", "valid_miou", "valid_loss",
             "valid_mean_token_accuracy")
ALIASES = frozenset({"valid_metric"})


def _figure(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def evaluation_metrics(data: dict[str, Any]) -> dict[str, float | None]:
    """The scalar ``valid_*`` figures of one evaluation event's data (None: a diverged value)."""
    return {key: (None if value is None else float(value)) for key, value in data.items()
            if key.startswith("valid_") and key not in ALIASES and _figure(value)}


def evaluations(events: Iterable[JobEvent]) -> list[Evaluation]:
    """A job's evaluations by step, from its events oldest first; one per step (the later event wins
    when a step was evaluated twice, e.g. after a resume)."""
    by_step: dict[int, Evaluation] = {}
    for event in events:
        data = event.data or {}
        step = data.get("step")
        if event.type == "metrics" and data.get("eval") and isinstance(step, int):
            by_step[step] = Evaluation(step=step, metrics=evaluation_metrics(data))
    return [by_step[step] for step in sorted(by_step)]


def comparison(job: FineTuningJob, events: Iterable[JobEvent]) -> JobComparison:
    """``job``'s row from its events, oldest first."""
    evals = evaluations(events)
    progress = job.progress
    return JobComparison(
        id=job.id, method=(job.method or {}).get("type"), model=job.model, status=job.status,
        suffix=job.user_provided_suffix, fine_tuned_model=job.fine_tuned_model,
        step=progress.step if progress else None, total_steps=progress.total_steps if progress else None,
        first=evals[0] if evals else None, final=evals[-1] if evals else None, evaluations=evals)


def metric_names(rows: Sequence[JobComparison]) -> list[str]:
    """Every metric any of the jobs' evaluations reported, in column order."""
    names = {name for row in rows for ev in row.evaluations for name in ev.metrics}
    return [n for n in PREFERRED if n in names] + sorted(names - set(PREFERRED))


def unique_ids(ids: Iterable[str]) -> list[str]:
    """The ids in the order given, each once; at least one."""
    seen = list(dict.fromkeys(str(i) for i in ids))
    if not seen:
        raise ValueError("compare needs at least one job id")
    return seen

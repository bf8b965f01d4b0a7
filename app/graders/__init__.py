"""Graders: the reward spec a job carries, validated by the API and scored by the trainer.

Pure Python (no torch, no database, no FastAPI outside ``router.py``) so both sides import it.

    validate_grader(spec, *, allow_python=False) -> dict   # normalised, or ServiceError naming the field
    score(grader, samples, items) -> ScoreResult             # rewards, sub_rewards, flags; never raises per sample
    grader_names(spec) -> list[str]                          # sub-reward names the trainer logs
    template_fields(spec) -> set[str]                        # item fields the templates read
    check_item_fields(spec, available) -> None               # ServiceError naming a template reading an absent field
    metric_task(spec) -> str | None                          # classification | detection | grounding
    read(spec, samples, items, task=None) -> list[Reading]   # parsed answer + reference, in one frame
    drawn_boxes(spec, samples, items)                        # those boxes as 0–1 lists, for pictures
"""

from app.graders.readings import Reading, drawn_boxes, metric_task, read
from app.graders.scoring import (
    FLAGS,
    ScoreResult,
    check_item_fields,
    expand_preset,
    grader_names,
    score,
    template_fields,
)
from app.graders.spec import validate_grader

__all__ = [
    "FLAGS",
    "Reading",
    "ScoreResult",
    "check_item_fields",
    "drawn_boxes",
    "expand_preset",
    "grader_names",
    "metric_task",
    "read",
    "score",
    "template_fields",
    "validate_grader",
]

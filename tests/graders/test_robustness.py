"""Whatever a model writes, scoring returns a number per sample and flags — never an exception."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.graders import FLAGS, score

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "{", "}", "[", "]", "[[", "]]", "(", ")", "'",
    '"', ":", ",", " ", "\n", "Position", "bbox_2d", "Confidence", "point_2d", "No Objects", "0",
    "1", "250", "999", "-3", ".5", "1e999", "nan", "0.9", "cat",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(max_size=60)
sizes = st.none() | st.lists(st.integers(min_value=-5, max_value=2000), min_size=0, max_size=3)

GRADERS = [
    {"type": "visual_rft", "name": "d", "task": "detection", "coords": "pixels_resized"},
    {"type": "visual_rft", "name": "c", "task": "classification"},
    {"type": "visual_rft", "name": "g", "task": "grounding", "reference_coords": "pixels"},
    {"type": "point_in_box", "name": "p"},
    {"type": "count_match", "name": "n"},
    {"type": "json_schema", "name": "j", "schema": {"type": "object"}},
    {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
     "reference": "{{item.solution}}", "evaluation_metric": "bleu"},
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output=texts, solution=texts, image_size=sizes, resized=sizes)
def test_scoring_never_raises(output, solution, image_size, resized):
    sample = {"output_text": output}
    if image_size is not None:
        sample["image_size"] = image_size
    if resized is not None:
        sample["resized_image_size"] = resized
    for grader in GRADERS:
        result = score(grader, [sample], [{"solution": solution}])
        assert len(result.rewards) == 1 and math.isfinite(result.rewards[0])
        assert set(result.flags) == set(FLAGS)

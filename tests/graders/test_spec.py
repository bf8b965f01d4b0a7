"""validate_grader: normalised output, and errors that name the field."""

import pytest

from app.errors import ErrorCode, ServiceError
from app.graders import grader_names, template_fields, validate_grader

GOOD_PYTHON = "def grade(sample, item):\n    return 1.0\n"


def error_of(spec, **kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        validate_grader(spec, **kwargs)
    return info.value


def test_defaults_filled():
    out = validate_grader({"type": "box_iou", "name": "iou"})
    assert out == {
        "name": "iou", "type": "box_iou", "input": "{{sample.output_text}}",
        "reference": "{{item.solution}}", "coords": "norm1000", "reference_coords": "norm1000",
        "extract_answer": True, "iou_threshold": 0.5,
    }


def test_preset_kept_validated_not_expanded():
    out = validate_grader({"type": "visual_rft", "name": "cls", "task": "classification",
                           "weights": {"format": 0.5}})
    assert out["type"] == "visual_rft"
    assert out["weights"] == {"accuracy": 1.0, "format": 0.5}
    assert "coords" not in out  # not relevant to classification


def test_multi_children_named_by_key():
    out = validate_grader({"type": "multi", "name": "m", "calculate_output": "a",
                           "graders": {"a": {"type": "format"}}})
    assert out["graders"]["a"]["name"] == "a"


@pytest.mark.parametrize(
    "spec, param",
    [
        ({"type": "box_iou", "name": "x", "colour": "red"}, "grader.colour"),
        ({"type": "nope", "name": "x"}, "grader.type"),
        ({"name": "x"}, "grader.type"),
        ({"type": "box_iou"}, "grader.name"),
        ({"type": "box_iou", "name": "x", "coords": "pixels_original"}, "grader.coords"),
        ({"type": "box_iou", "name": "x", "iou_threshold": 1.5}, "grader.iou_threshold"),
        ({"type": "string_check", "name": "x", "input": "{{sample.output_text}}",
          "reference": "{{item.a}}", "operation": "contains"}, "grader.operation"),
        ({"type": "string_check", "name": "x", "input": "{{sample.output_json}}",
          "reference": "a", "operation": "eq"}, "grader.input"),
        ({"type": "label_match", "name": "x", "reference": "{{answer}}"}, "grader.reference"),
        ({"type": "text_similarity", "name": "x", "input": "a", "reference": "b",
          "evaluation_metric": "cosine"}, "grader.evaluation_metric"),
        ({"type": "format", "name": "x", "pattern": "(unclosed"}, "grader.pattern"),
        ({"type": "label_match", "name": "x", "normalize": {"stem": True}}, "grader.normalize.stem"),
        ({"type": "json_schema", "name": "x", "schema": {"type": "thing"}}, "grader.schema.type"),
        ({"type": "json_schema", "name": "x", "schema": {"properties": {"a": {"$ref": "#"}}}},
         "grader.schema.properties.a.$ref"),
        ({"type": "multi", "name": "m", "calculate_output": "a + b",
          "graders": {"a": {"type": "format"}}}, "grader.calculate_output"),
        ({"type": "multi", "name": "m", "calculate_output": "a.real",
          "graders": {"a": {"type": "format"}}}, "grader.calculate_output"),
        ({"type": "multi", "name": "m", "calculate_output": "a",
          "graders": {"a": {"type": "box_iou", "coords": "px"}}}, "grader.graders.a.coords"),
        ({"type": "multi", "name": "m", "calculate_output": "1",
          "graders": {"bad key": {"type": "format"}}}, "grader.graders.bad key"),
        ({"type": "multi", "name": "m", "calculate_output": "1", "graders": {}}, "grader.graders"),
        ({"type": "visual_rft", "name": "v", "task": "segmentation"}, "grader.task"),
        ({"type": "visual_rft", "name": "v", "task": "classification", "coords": "pixels"},
         "grader.coords"),
        ({"type": "visual_rft", "name": "v", "task": "detection", "weights": {"accuracy": 1}},
         "grader.weights.accuracy"),
        ({"type": "python", "name": "p", "source": "def grade(:\n"}, "grader.source"),
        ({"type": "python", "name": "p", "source": "def other(s, i):\n    return 1\n"}, "grader.source"),
        ({"type": "python", "name": "p", "source": "# x\n" * 20000 + GOOD_PYTHON}, "grader.source"),
    ],
)
def test_errors_name_the_field(spec, param):
    err = error_of(spec, allow_python=True)
    assert err.code is ErrorCode.INVALID_GRADER
    assert err.param == param
    assert err.message


def test_unknown_field_message():
    err = error_of({"type": "format", "name": "f", "patern": "x"})
    assert "patern" in err.message


def test_python_disabled_names_the_setting():
    spec = {"type": "multi", "name": "m", "calculate_output": "p",
            "graders": {"p": {"type": "python", "source": GOOD_PYTHON}}}
    err = error_of(spec)
    assert err.code is ErrorCode.PYTHON_GRADER_DISABLED
    assert "VRFT_PYTHON_GRADER_ENABLED=true" in err.message
    assert err.param == "grader.graders.p.type"
    assert validate_grader(spec, allow_python=True)["graders"]["p"]["source"] == GOOD_PYTHON


def test_template_fields():
    assert template_fields({"type": "visual_rft", "name": "v", "task": "detection"}) == {"solution"}
    spec = {"type": "multi", "name": "m", "calculate_output": "a + b",
            "graders": {
                "a": {"type": "string_check", "input": "{{sample.output_text}}",
                      "reference": "{{item.meta.city}} {{item.country}}", "operation": "eq"},
                "b": {"type": "count_match", "reference": "{{item.count}}"},
            }}
    assert template_fields(spec) == {"meta", "country", "count"}


def test_grader_names_single_leaf():
    assert grader_names({"type": "format", "name": "fmt"}) == ["fmt"]


def test_graders_package_stays_pure():
    """The trainer imports app.graders: it must pull in no web framework, database or torch."""
    import subprocess
    import sys

    code = (
        "import sys, app.graders\n"
        "bad = [m for m in ('torch', 'fastapi', 'starlette', 'sqlalchemy', 'app.config') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_item_fields_names_the_template():
    from app.graders import check_item_fields

    spec = {"type": "multi", "name": "m", "calculate_output": "a + b",
            "graders": {"a": {"type": "format"}, "b": {"type": "label_match", "reference": "{{item.label}}"}}}
    check_item_fields(spec, {"label", "problem"})
    err = None
    try:
        check_item_fields(spec, {"solution"})
    except ServiceError as exc:
        err = exc
    assert err is not None and err.code is ErrorCode.INVALID_GRADER
    assert err.param == "grader.graders.b.reference"
    assert "item.label" in err.message
    with pytest.raises(ServiceError) as info:
        check_item_fields({"type": "visual_rft", "name": "v", "task": "detection"}, {"image", "problem"})
    assert info.value.param == "grader.reference"

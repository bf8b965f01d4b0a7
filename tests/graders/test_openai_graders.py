"""OpenAI's grader types: string_check, text_similarity, multi."""

import math

import pytest

from app.graders.text_metrics import bleu, fuzzy_match, gleu, rouge_l, rouge_n

from .helpers import run_one


@pytest.mark.parametrize(
    "operation, output, reference, expected",
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "paris", "Paris", 0.0),
        ("ne", "Lyon", "Paris", 1.0),
        ("like", "It is Paris.", "Paris", 1.0),
        ("like", "It is paris.", "Paris", 0.0),
        ("ilike", "It is PARIS.", "paris", 1.0),
    ],
)
def test_string_check(operation, output, reference, expected):
    grader = {"type": "string_check", "name": "sc", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "operation": operation}
    assert run_one(grader, output, {"answer": reference})[0] == expected


def test_string_check_nested_item_field_and_missing_field():
    grader = {"type": "string_check", "name": "sc", "input": "{{sample.output_text}}",
              "reference": "{{item.meta.city}}", "operation": "eq"}
    assert run_one(grader, "Paris", {"meta": {"city": "Paris"}})[0] == 1.0
    reward, _, flags = run_one(grader, "Paris", {"meta": {}})
    assert reward == 0.0 and flags == {"missing_item_field"}


def test_metric_literals():
    assert fuzzy_match("kitten", "sitting") == pytest.approx(2 * 4 / 13)  # LCS "ittn"
    assert fuzzy_match("", "") == 1.0
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert bleu("the cat", "the cat") == pytest.approx(1.0)  # effective order for short sentences
    assert bleu("", "the cat") == 0.0
    # brevity penalty: 4 of 6 reference tokens, all n-grams right
    assert bleu("the cat sat on", "the cat sat on the mat") == pytest.approx(math.exp(1 - 6 / 4))
    assert gleu("a b", "a b c") == pytest.approx(min(3 / 3, 3 / 6))
    assert rouge_n("The cat sat", "the cat ran", 1) == pytest.approx(2 / 3)
    assert rouge_n("The cat sat", "the cat ran", 2) == pytest.approx(0.5)
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)


def test_text_similarity_grader():
    grader = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
              "reference": "{{item.text}}", "evaluation_metric": "rouge_1"}
    assert run_one(grader, "The cat sat", {"text": "the cat ran"})[0] == pytest.approx(2 / 3)


def test_multi_formula_and_sub_rewards():
    grader = {
        "type": "multi", "name": "combo",
        "graders": {
            "exact": {"type": "string_check", "input": "{{sample.output_text}}",
                      "reference": "{{item.answer}}", "operation": "eq"},
            "close": {"type": "text_similarity", "input": "{{sample.output_text}}",
                      "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"},
        },
        "calculate_output": "0.5 * exact + max(close, 0.2) - abs(-0.1)",
    }
    reward, subs, flags = run_one(grader, "Paris", {"answer": "Paris"})
    assert subs == {"exact": 1.0, "close": 1.0}
    assert reward == pytest.approx(1.4) and not flags


def test_multi_division_by_zero_is_a_flag():
    grader = {
        "type": "multi", "name": "ratio",
        "graders": {"a": {"type": "string_check", "input": "{{sample.output_text}}",
                          "reference": "x", "operation": "eq"}},
        "calculate_output": "1 / a",
    }
    assert run_one(grader, "x", {})[0] == 1.0
    reward, subs, flags = run_one(grader, "y", {})
    assert reward == 0.0 and flags == {"invalid_formula_result"}


def test_nested_multi_with_preset_names():
    from app.graders import grader_names

    grader = {
        "type": "multi", "name": "outer",
        "graders": {
            "det": {"type": "visual_rft", "task": "detection"},
            "fmt": {"type": "format"},
        },
        "calculate_output": "det + fmt",
    }
    assert grader_names(grader) == ["det.iou", "det.confidence", "det.format", "fmt"]
    reward, subs, _ = run_one(grader, "<think>x</think><answer>No Objects</answer>", {"solution": "[]"})
    assert reward == 4.0 and subs["det.iou"] == 1.0

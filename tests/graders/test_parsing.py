import pytest

from app.graders.parsing import (
    ParseError,
    answer_text,
    parse_box_list,
    parse_count,
    parse_one_box,
    parse_point,
)


def test_answer_text_first_block_stripped():
    assert answer_text("<think>a</think><answer> cat </answer><answer>dog</answer>") == "cat"


def test_answer_text_missing_or_unterminated():
    assert answer_text("no tags") is None
    assert answer_text("<answer>[{'Position': [1, 2") is None
    assert answer_text("<answer>[{'Position': [1, 2", allow_unterminated=True) == "[{'Position': [1, 2"


def test_paper_list_single_quotes():
    boxes = parse_box_list("[{'Position': [254, 303, 291, 365], 'Confidence': 0.85}]")
    assert boxes == ((254.0, 303.0, 291.0, 365.0, 0.85),)


def test_double_quotes_key_case_and_bbox_2d():
    text = '[{"bbox_2d": [1, 2, 3, 4], "confidence": 0.5}, {"POSITION": [5, 6, 7, 8], "CONFIDENCE": 1}]'
    assert parse_box_list(text) == ((1.0, 2.0, 3.0, 4.0, 0.5), (5.0, 6.0, 7.0, 8.0, 1.0))


def test_double_brackets():
    text = "[[{'Position': [[10, 20, 30, 40]], 'Confidence': 0.7}]]"
    assert parse_box_list(text) == ((10.0, 20.0, 30.0, 40.0, 0.7),)


def test_truncated_tail_keeps_complete_elements():
    text = "[{'Position': [1, 2, 3, 4], 'Confidence': 0.9}, {'Position': [5, 6, 7, 8], 'Conf"
    assert parse_box_list(text) == ((1.0, 2.0, 3.0, 4.0, 0.9),)


def test_exact_duplicates_dropped_first_kept():
    text = "[{'Position': [1, 2, 3, 4], 'Confidence': 0.9}, {'Position': [1, 2, 3, 4], 'Confidence': 0.2}]"
    assert parse_box_list(text) == ((1.0, 2.0, 3.0, 4.0, 0.9),)


@pytest.mark.parametrize("text", ["No Objects", "'No Objects'", "no objects", "[]"])
def test_no_objects(text):
    assert parse_box_list(text) == ()


def test_bare_box_lists_have_no_confidence():
    assert parse_box_list("[[1, 2, 3, 4], [5, 6, 7, 8]]") == (
        (1.0, 2.0, 3.0, 4.0, None),
        (5.0, 6.0, 7.0, 8.0, None),
    )


@pytest.mark.parametrize(
    "text",
    [
        "I see a cat",
        "[{'Position': [1, 2, 3], 'Confidence': 0.9}]",  # wrong arity in a complete element
        "[{'Label': 'cat', 'Confidence': 0.9}]",
        "[{'Position': [1e999, 2, 3, 4]}]",
        "[{'Position': [1" + "0" * 400 + ", 2, 3, 4], 'Confidence': 1}]",
        "",
    ],
)
def test_box_list_errors(text):
    with pytest.raises(ParseError):
        parse_box_list(text)


@pytest.mark.parametrize(
    "text",
    ["(10,20),(30,40)", "[10, 20, 30, 40]", "[10,20],[30,40]", "{'bbox_2d': [10, 20, 30, 40]}",
     "[{'Position': [10, 20, 30, 40], 'Confidence': 1}]", "The box is (10, 20, 30, 40)."],
)
def test_one_box_spellings(text):
    assert parse_one_box(text) == (10.0, 20.0, 30.0, 40.0)


def test_point_and_count():
    assert parse_point("{'point_2d': [12, 34]}") == (12.0, 34.0)
    assert parse_point("(1.5, 2)") == (1.5, 2.0)
    assert parse_count(" 3 ") == 3
    assert parse_count("No Objects") == 0
    assert parse_count("[{'Position': [1, 2, 3, 4], 'Confidence': 1}]") == 1
    with pytest.raises(ParseError):
        parse_point("nowhere")


@pytest.mark.parametrize(
    "text",
    [
        "[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}, {'Position': [5, 6.5, 7, 8], 'Confidence': 1}]",
        "[{'position': [1, 2, 3, 4], 'score': 0.5}]",
        "[{'Position': [1, 2, 3, 4], 'Confidence': 0.5, 'Label': 'cat'}]",
        "[{'Position': [[1, 2, 3, 4]], 'Confidence': 0.5}]",
        "[[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}]]",
        "[{'Position': [1, 2, 3, 4]}]",
    ],
)
def test_json_fast_path_agrees_with_the_tolerant_path(text, monkeypatch):
    from app.graders import parsing

    fast = parsing._boxes_from_json(text)
    assert fast is not None
    monkeypatch.setattr(parsing, "_boxes_from_json", lambda _text: None)  # force the regex path
    assert parse_box_list.__wrapped__(text) == tuple(fast)

"""Requests: validation of bad input with the field named, and the real MMLU, GSM8K and JSONL
streams that `rar run` serves."""

from __future__ import annotations

import json

import pytest

from rar_tasks.errors import RequestError
from rar_tasks.requests import load_gsm8k, load_jsonl, load_mmlu, make_request, sample


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"text": ""}, "text", "must not be empty"),
        ({"text": "   \n\t"}, "text", "must not be empty"),
        ({}, "text", "is required"),
        ({"text": 42}, "text", "must be a string, got int"),
        ({"text": ["a", "b"]}, "text", "must be a string, got list"),
        ({"text": None}, "text", "is required"),
        ({"text": "x" * 101}, "text", "is 101 characters, over the limit of 100"),
        ({"text": "q", "prompt": "q"}, "prompt", "unknown field"),
        ({"text": "q", "namespace": "has space"}, "namespace", "1-64 characters"),
        ({"text": "q", "kind": "essay"}, "kind", "must be one of"),
        ({"text": "q", "kind": "choice"}, "choices", "required"),
        ({"text": "q", "choices": ["only one"]}, "choices", "2 to 10"),
        ({"text": "q", "choices": ["a", 2]}, "choices", "list of strings"),
        ({"text": "q", "choices": ["a", "b"], "label": 2}, "label", "below 2"),
        ({"text": "q", "choices": ["a", "b"], "label": "C"}, "label", "below 2"),
        ({"text": "q", "kind": "number", "label": "eighteen"}, "label", "must be a number"),
        ({"text": "q", "id": ""}, "id", "non-empty"),
        ({"text": "q", "id": True}, "id", "non-empty"),
        ({"text": "q", "meta": "x"}, "meta", "must be an object"),
    ],
)
def test_bad_request_names_the_field(data, field, message):
    with pytest.raises(RequestError, match=message) as info:
        make_request(data, max_chars=100)

    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_a_request_that_is_not_an_object_is_refused():
    with pytest.raises(RequestError) as info:
        make_request(["text", "hello"])

    assert info.value.field == "request"


def test_over_long_counts_the_formatted_choices():
    # 90 characters of question fit in 100, the lettered options push it over.
    with pytest.raises(RequestError, match="over the limit of 100"):
        make_request({"text": "q" * 90, "choices": ["first", "second"]}, max_chars=100)


def test_valid_request_gets_letters_label_and_stable_id():
    data = {"text": "Capital of France?", "choices": ["Rome", "Paris"], "label": 1}

    first, second = make_request(dict(data)), make_request(dict(data))

    assert first.text == "Capital of France?\nA. Rome\nB. Paris"
    assert (first.kind, first.label, first.n_choices) == ("choice", "B", 2)
    assert first.id == second.id and len(first.id) == 24
    assert make_request({**data, "namespace": "other"}).id != first.id


def test_number_labels_are_normalised():
    assert make_request({"text": "q", "kind": "number", "label": "$1,234.00"}).label == "1234"
    assert make_request({"text": "q", "kind": "number", "label": 0.5}).label == "0.5"


def test_real_mmlu_rows_become_choice_requests(data_root):
    requests = load_mmlu(data_root, ["high_school_geography", "high_school_psychology"])

    assert len(requests) == 198 + 545
    first = requests[0]
    assert first.id == "mmlu/high_school_geography/0"
    assert first.namespace == "mmlu" and first.kind == "choice" and first.n_choices == 4
    # Row 0: "... subsistence economies ... lack of", answer index 1.
    assert "subsistence economies" in first.text and "\nB. a well-connected" in first.text
    assert first.label == "B"
    assert {r.label for r in requests} == {"A", "B", "C", "D"}


def test_unknown_mmlu_subject_is_named(data_root):
    with pytest.raises(RequestError, match="'astrology'") as info:
        load_mmlu(data_root, ["astrology"])

    assert info.value.field == "subjects"


def test_real_gsm8k_rows_carry_their_final_number(data_root):
    requests = load_gsm8k(data_root)

    assert len(requests) == 1319
    assert requests[0].kind == "number" and requests[0].label == "18"  # Janet's ducks
    assert all(r.label is not None for r in requests)


def test_user_jsonl_with_a_bad_line_names_line_and_field(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n\n" + json.dumps({"text": ""}) + "\n")

    with pytest.raises(RequestError, match="must not be empty") as info:
        load_jsonl(path, max_chars=1000)

    assert info.value.field == "line 3.text"


def test_user_jsonl_with_broken_json_names_the_line(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"text": "fine"}\n{"text": \n')

    with pytest.raises(RequestError, match="not valid JSON") as info:
        load_jsonl(path, max_chars=1000)

    assert info.value.field == "line 2"


def test_user_jsonl_takes_the_default_namespace(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b", "namespace": "team-b"}\n')

    requests = load_jsonl(path, max_chars=1000, namespace="mine")

    assert [r.namespace for r in requests] == ["mine", "team-b"]


def test_sample_is_seeded(geography):
    first = [r.id for r in sample(geography, 10, seed=3)]

    assert first == [r.id for r in sample(geography, 10, seed=3)]
    assert first != [r.id for r in sample(geography, 10, seed=4)]
    assert len(set(first)) == 10


def test_user_input_that_is_a_folder_or_not_utf8_is_named(tmp_path):
    with pytest.raises(RequestError, match=r"^input: .* is not a file"):
        load_jsonl(tmp_path, max_chars=1000)

    binary = tmp_path / "requests.jsonl"
    binary.write_bytes(b"\xff\xfe{\x00}")
    with pytest.raises(RequestError, match=r"^input: .* is not UTF-8 text"):
        load_jsonl(binary, max_chars=1000)

"""How a request body's problems are named: lone surrogates found anywhere in a decoded
document, and pydantic's error locations turned into the field a caller sent."""

from __future__ import annotations

import json

import pytest

from berth.api.errors import describe_validation_error
from berth.api.middleware.strict_json import lone_surrogate_at


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param('{"a": "ok", "b": ["x", "\\ud800"]}', "b.1", id="in-a-list"),
        pytest.param('{"env": {"\\udc00": "v"}}', "env.\udc00", id="a-key"),
        pytest.param('"\\ud800"', "", id="the-document"),
        pytest.param('{"a": {"b": {"c": "x\\udfff"}}}', "a.b.c", id="nested"),
        pytest.param('{"a": "\\ud83d\\ude00"}', None, id="a-pair-is-text"),
        pytest.param('{"a": [1, 2.5, null, true]}', None, id="no-strings"),
    ],
)
def test_lone_surrogates_are_found_where_they_are(text: str, where: str | None) -> None:
    assert lone_surrogate_at(json.loads(text)) == where


def test_a_deeply_nested_document_does_not_exhaust_the_stack() -> None:
    document: object = "\ud800"
    for _ in range(5_000):
        document = [document]
    assert lone_surrogate_at(document) == ".".join(["0"] * 5_000)


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        pytest.param(("body", "command", "str"), "command", id="union-member"),
        pytest.param(("body", "command", "list[constrained-str]", 1), "command.1", id="list-item"),
        pytest.param(("body", "env", "1A", "[key]"), "env.1A", id="dict-key"),
        pytest.param(("body", "env", "A[1]"), "env.A[1]", id="a-key-with-brackets"),
        pytest.param(("query", "limit"), "limit", id="query"),
    ],
)
def test_error_locations_name_the_field_the_caller_sent(
    loc: tuple[str | int, ...], field: str
) -> None:
    message, named, malformed = describe_validation_error(
        {"loc": loc, "type": "string_type", "msg": "Input should be a valid string"}
    )
    assert (named, malformed) == (field, False)
    assert message == f"{field}: Input should be a valid string"

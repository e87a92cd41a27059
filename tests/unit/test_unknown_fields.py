"""Unknown body fields: found at any depth and removed, and named in `Warning` header
values that are always valid (ASCII, quoted, bounded in number and length)."""

from __future__ import annotations

from typing import Any

from berth.api.middleware.unknown_fields import MAX_WARNINGS, drop_unknown_fields, warning_values
from berth.schemas.request_body import StrictModel


class Rule(StrictModel):
    port: int


class Body(StrictModel):
    name: str
    rules: list[Rule] = []
    first: Rule | None = None
    by_name: dict[str, Rule] = {}


def test_unknown_fields_are_removed_at_every_depth_and_named_by_path() -> None:
    document: dict[str, Any] = {
        "name": "x",
        "extra": 1,
        "rules": [{"port": 1}, {"port": 2, "proto": "tcp"}],
        "first": {"port": 3, "note": "n"},
        "by_name": {"a": {"port": 4, "why": None}},
    }
    removed = drop_unknown_fields(Body, document)
    assert sorted(removed) == ["by_name.a.why", "extra", "first.note", "rules.1.proto"]
    assert document == {
        "name": "x",
        "rules": [{"port": 1}, {"port": 2}],
        "first": {"port": 3},
        "by_name": {"a": {"port": 4}},
    }
    Body.model_validate(document)


def test_a_body_with_nothing_unknown_is_left_alone_even_when_invalid() -> None:
    document: dict[str, Any] = {"name": 5, "rules": "none"}
    assert drop_unknown_fields(Body, document) == []
    assert document == {"name": 5, "rules": "none"}
    assert drop_unknown_fields(Body, ["not", "an", "object"]) == []


def test_warnings_are_quoted_ascii_and_bounded() -> None:
    # The field in JSON's notation (ASCII), inside an HTTP quoted-string.
    assert warning_values(['say "hi"\\', "caf\u00e9\U0001f600"]) == [
        r'299 - "unknown field \"say \\\"hi\\\"\\\\\""',
        r'299 - "unknown field \"caf\\u00e9\\ud83d\\ude00\""',
    ]
    many = warning_values([f"f{i}" for i in range(100)] + ["x" * 10_000])
    assert len(many) == MAX_WARNINGS
    assert many[-1] == f'299 - "{101 - (MAX_WARNINGS - 1)} more unknown fields"'
    assert all(value.isascii() and len(value) < 200 for value in many)
    assert max(map(len, warning_values(["x" * 10_000]))) < 200

"""A list's query string is validated as one model: the values callers send, the errors
that name the parameter, and the parameters the OpenAPI document declares."""

from __future__ import annotations

import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError

from berth.api.paging import PAGE_QUERY, PageQuery
from berth.api.routes.workloads import WORKLOAD_LIST_QUERY


def request(query: bytes) -> Request:
    return Request({"type": "http", "query_string": query, "headers": []})


def test_values_are_read_and_converted_the_last_of_a_repeated_one_winning() -> None:
    query = WORKLOAD_LIST_QUERY.parse(request(b"limit=5&limit=7&type=job&name_prefix=web&x=1"))
    assert (query.limit, query.type, query.name_prefix, query.cursor) == (7, "job", "web", None)
    assert PAGE_QUERY.parse(request(b"")) == PageQuery()
    assert hash(query) == hash(
        WORKLOAD_LIST_QUERY.parse(request(b"type=job&limit=7&name_prefix=web"))
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [(b"limit=0", "limit"), (b"limit=", "limit"), (b"limit=x", "limit"), (b"type=pod", "type")],
)
def test_a_bad_value_is_a_validation_error_at_its_parameter(query: bytes, field: str) -> None:
    with pytest.raises(RequestValidationError) as refused:
        WORKLOAD_LIST_QUERY.parse(request(query))
    assert [error["loc"] for error in refused.value.errors()] == [("query", field)]


def test_the_document_declares_each_field_as_an_optional_query_parameter() -> None:
    declared = {p["name"]: p for p in WORKLOAD_LIST_QUERY.openapi["parameters"]}
    assert list(declared) == ["limit", "cursor", "type", "status", "name_prefix"]
    assert all(p["in"] == "query" and p["required"] is False for p in declared.values())
    limit = declared["limit"]["schema"]["anyOf"][0]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 500)
    assert "default" not in declared["limit"]["schema"]

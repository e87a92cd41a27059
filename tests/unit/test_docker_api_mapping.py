"""Mapping between berth's runtime types and Docker Engine API JSON (pure logic, no engine)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from berth.runtime.base import TaskSpec, TaskStatus
from berth.runtime.docker.mapping import (
    create_body,
    engine_message,
    label_filters,
    parse_event,
    path_segment,
    split_image,
    state_from_inspect,
    state_from_list_entry,
)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
        ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2")),
        ("app@sha256:abc", ("app", "sha256:abc")),
    ],
)
def test_split_image_never_leaves_tag_empty(image: str, expected: tuple[str, str]) -> None:
    assert split_image(image) == expected


def test_label_filters_are_sorted_pairs() -> None:
    assert label_filters({"b": "2", "a": "1"}) == ["a=1", "b=2"]


def test_create_body_limits_and_ports() -> None:
    spec = TaskSpec(
        name="t",
        image="img",
        command=["sh", "-c", "true"],
        env={"A": "1"},
        labels={"berth": "x"},
        cpu=0.5,
        memory_mb=64,
        ports=(8080,),
        network="tenant-net",
        pids_limit=99,
        log_max_bytes=1000,
    )
    body = create_body(spec)
    host = body["HostConfig"]
    assert body["Cmd"] == ["sh", "-c", "true"]
    assert body["Env"] == ["A=1"]
    assert body["Labels"] == {"berth": "x"}
    assert body["ExposedPorts"] == {"8080/tcp": {}}
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024
    assert host["PidsLimit"] == 99
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False and host["Init"] is True
    assert host["CapDrop"] == ["NET_RAW"] and "CapAdd" not in host
    assert host["CgroupnsMode"] == "private"
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "1000", "max-file": "1"},
    }
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert host["RestartPolicy"] == {"Name": "no"}
    assert host["NetworkMode"] == "tenant-net"


def test_create_body_keeps_image_command_when_none() -> None:
    spec = TaskSpec(name="t", image="i", command=None, env={}, labels={}, cpu=1, memory_mb=8)
    body = create_body(spec)
    assert "Cmd" not in body
    assert "NetworkMode" not in body["HostConfig"]


def test_state_from_inspect_exited() -> None:
    data = {
        "Id": "abc",
        "Name": "/job-1",
        "Config": {"Labels": {"k": "v"}},
        "State": {
            "Status": "exited",
            "ExitCode": 137,
            "OOMKilled": True,
            "Error": "",
            "StartedAt": "2024-01-01T00:00:00.123456789Z",
            "FinishedAt": "2024-01-01T00:00:05Z",
        },
        "NetworkSettings": {"Ports": {"8080/tcp": None}},
    }
    state = state_from_inspect(data)
    assert state.task_id == "abc" and state.name == "job-1" and state.labels == {"k": "v"}
    assert state.status is TaskStatus.EXITED
    assert state.exit_code == 137 and state.oom_killed and state.error is None
    assert state.started_at == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert state.finished_at == datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert state.ports == {}


def test_state_from_inspect_running_with_ports_and_null_labels() -> None:
    data = {
        "Id": "abc",
        "Name": "/svc",
        "Config": {"Labels": None},
        "State": {
            "Status": "running",
            "ExitCode": 0,
            "StartedAt": "2024-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "NetworkSettings": {
            "Ports": {
                "8080/tcp": [
                    {"HostIp": "127.0.0.1", "HostPort": "49153"},
                    {"HostIp": "::1", "HostPort": "49153"},
                ],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            }
        },
    }
    state = state_from_inspect(data)
    assert state.status is TaskStatus.RUNNING
    assert state.exit_code is None and state.finished_at is None and state.labels == {}
    assert state.ports == {8080: ("127.0.0.1", 49153)}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("created", TaskStatus.CREATED),
        ("running", TaskStatus.RUNNING),
        ("paused", TaskStatus.RUNNING),
        ("restarting", TaskStatus.RUNNING),
        ("exited", TaskStatus.EXITED),
        ("dead", TaskStatus.EXITED),
        ("removing", TaskStatus.EXITED),
    ],
)
def test_state_from_inspect_status(status: str, expected: TaskStatus) -> None:
    state = state_from_inspect({"Id": "x", "State": {"Status": status, "Error": "boom"}})
    assert state.status is expected
    assert state.error == "boom"


def test_parse_event() -> None:
    line = json.dumps(
        {
            "Type": "container",
            "Action": "exec_start: sh -c true",
            "Actor": {"ID": "abc", "Attributes": {"k": "v", "exitCode": "3"}},
        }
    )
    event = parse_event(line, {"k": "v"})
    assert event is not None
    assert event.task_id == "abc" and event.action == "exec_start"
    assert event.labels == {"k": "v", "exitCode": "3"}
    assert parse_event(line, {"k": "other"}) is None
    assert parse_event("", {}) is None
    assert parse_event("not json", {}) is None
    assert parse_event(json.dumps({"Type": "network", "Action": "create"}), {}) is None


def test_engine_message() -> None:
    response = httpx.Response(404, json={"message": "No such image: x"})
    assert engine_message(response) == "No such image: x"
    assert engine_message(httpx.Response(500, text="plain failure\n")) == "plain failure"
    assert engine_message(httpx.Response(502)) == "HTTP 502"


def test_state_from_inspect_never_finishes_before_it_starts() -> None:
    # What Docker reports for a `true`: the exit a hair before the start call returned.
    data = {
        "Id": "x",
        "State": {
            "Status": "exited",
            "ExitCode": 3,
            "StartedAt": "2024-01-01T00:00:00.690204Z",
            "FinishedAt": "2024-01-01T00:00:00.689869Z",
        },
    }
    state = state_from_inspect(data)
    assert state.started_at == datetime(2024, 1, 1, 0, 0, 0, 689869, tzinfo=UTC)
    assert state.finished_at == datetime(2024, 1, 1, 0, 0, 0, 690204, tzinfo=UTC)
    assert state.exit_code == 3


def test_parse_event_keeps_events_whose_labels_are_not_echoed() -> None:
    line = json.dumps({"Type": "container", "Action": "die", "Actor": {"ID": "abc"}})
    event = parse_event(line, {"k": "v"})
    assert event is not None and event.action == "die" and event.labels == {}


def test_a_list_entry_gives_labels_state_and_loopback_ports_without_exit_details() -> None:
    entry = {
        "Id": "abc",
        "Names": ["/berth-x-1"],
        "Labels": {"dev.berth.run": "run_1"},
        "State": "running",
        "Ports": [
            {"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 32768, "Type": "tcp"},
            {"PrivatePort": 9090, "Type": "tcp"},
        ],
    }
    state = state_from_list_entry(entry)
    assert state.name == "berth-x-1" and state.status is TaskStatus.RUNNING
    assert state.labels == {"dev.berth.run": "run_1"}
    assert state.ports == {8080: ("127.0.0.1", 32768)}
    assert state.exit_code is None and state.started_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc123", "abc123"), ("../../images", "..%2F..%2Fimages"), ("a b?c#d", "a%20b%3Fc%23d")],
)
def test_an_id_is_one_path_segment_that_cannot_reroute_a_request(value: str, expected: str) -> None:
    assert path_segment(value) == expected


def test_parse_event_reads_when_it_happened_and_a_deaths_exit_code() -> None:
    line = json.dumps(
        {
            "Type": "container",
            "Action": "die",
            "Actor": {"ID": "abc", "Attributes": {"exitCode": "137"}},
            "time": 1700000000,
            "timeNano": 1700000000123456000,
        }
    )
    event = parse_event(line, {})
    assert event is not None and event.exit_code == 137
    assert event.at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    bare = parse_event(json.dumps({"Action": "start", "Actor": {"ID": "abc"}}), {})
    assert bare is not None and bare.at is None and bare.exit_code is None
    seconds = parse_event(json.dumps({"Action": "start", "id": "abc", "time": 1700000000}), {})
    assert seconds is not None and seconds.at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

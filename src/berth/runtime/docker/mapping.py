"""Pure mapping between berth's runtime types and Docker Engine API JSON (no I/O).

Only documented Engine API fields are read or written, so the same mapping serves Podman's
Docker-compatible API; the few Podman-only container states are mapped too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from berth.runtime.base import TaskEvent, TaskId, TaskSpec, TaskState, TaskStatus
from berth.runtime.docker.logs import parse_engine_time


def path_segment(value: str) -> str:
    """`value` quoted as one URL path segment: an id or name can never reroute a request."""
    return quote(value, safe="")


STATUS = {
    "created": TaskStatus.CREATED,
    "running": TaskStatus.RUNNING,
    "paused": TaskStatus.RUNNING,
    "restarting": TaskStatus.RUNNING,
    "exited": TaskStatus.EXITED,
    "dead": TaskStatus.EXITED,
    "removing": TaskStatus.EXITED,
    # Podman-only states.
    "configured": TaskStatus.CREATED,
    "initialized": TaskStatus.CREATED,
    "stopping": TaskStatus.RUNNING,
    "stopped": TaskStatus.EXITED,
}

Json = dict[str, Any]


def engine_message(response: httpx.Response) -> str:
    """The engine's error text from a (read) error response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = response.text.strip()
    return text[:500] or f"HTTP {response.status_code}"


def label_filters(selector: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in sorted(selector.items())]


def split_image(image: str) -> tuple[str, str]:
    """`fromImage` and `tag` for a pull: an untagged name means `latest`, never all tags."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def state_from_inspect(data: Json) -> TaskState:
    state: Json = data.get("State") or {}
    config: Json = data.get("Config") or {}
    status = STATUS.get(str(state.get("Status", "")).lower(), TaskStatus.EXITED)
    ports: dict[int, tuple[str, int]] = {}
    network_ports: Json = (data.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in network_ports.items():
        port, _, proto = key.partition("/")
        if proto not in ("", "tcp") or not bindings:
            continue
        for binding in bindings:
            host_port = str(binding.get("HostPort") or "")
            if host_port.isdigit():
                ports[int(port)] = (str(binding.get("HostIp") or "127.0.0.1"), int(host_port))
                break
    started_at = parse_engine_time(state.get("StartedAt"))
    finished_at = parse_engine_time(state.get("FinishedAt"))
    if started_at is not None and finished_at is not None and finished_at < started_at:
        # Docker stamps StartedAt once its start call returns, but FinishedAt with the exit
        # time its container runtime saw: a task that exits during the start call (`true`)
        # "finishes" a fraction of a millisecond before it "starts". Both are the engine's
        # stamps of that one short life; they are reported in order.
        started_at, finished_at = finished_at, started_at
    return TaskState(
        task_id=TaskId(str(data["Id"])),
        name=str(data.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        status=status,
        exit_code=int(state.get("ExitCode", 0)) if status is TaskStatus.EXITED else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        error=str(state.get("Error") or "") or None,
        started_at=started_at,
        finished_at=finished_at,
        ports=ports,
    )


def state_from_list_entry(entry: Json) -> TaskState:
    """A task's state from one `/containers/json` entry (no exit details: inspect for those).

    The list carries labels, state and published ports but no start time or exit code, so
    callers inspect the tasks that have exited.
    """
    ports: dict[int, tuple[str, int]] = {}
    for binding in entry.get("Ports") or []:
        if binding.get("Type", "tcp") == "tcp" and binding.get("PublicPort"):
            ports.setdefault(
                int(binding["PrivatePort"]),
                (str(binding.get("IP") or "127.0.0.1"), int(binding["PublicPort"])),
            )
    names = entry.get("Names") or [""]
    return TaskState(
        task_id=TaskId(str(entry["Id"])),
        name=str(names[0]).lstrip("/"),
        labels=dict(entry.get("Labels") or {}),
        status=STATUS.get(str(entry.get("State", "")).lower(), TaskStatus.EXITED),
        ports=ports,
    )


DROPPED_CAPABILITIES = ("NET_RAW",)
"""Removed from every task. Unprivileged ICMP (iputils `ping`) still works through the ping
sockets the engine allows in each task's network namespace; busybox `ping` needs raw sockets
and does not."""


def create_body(spec: TaskSpec) -> Json:
    memory = spec.memory_mb * 1024 * 1024
    port_keys = [f"{port}/tcp" for port in spec.ports]
    host_config: Json = {
        "NanoCpus": int(spec.cpu * 1e9),
        "Memory": memory,
        "MemorySwap": memory,
        "PidsLimit": spec.pids_limit,
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        # The engine's default capabilities minus those a workload has no use for: NET_RAW
        # (raw and packet sockets: forged frames, ARP spoofing on the task's network).
        "CapDrop": list(DROPPED_CAPABILITIES),
        # The engine's default on cgroup v1 is the host's cgroup namespace, which shows the
        # task the host's cgroup tree; a private one shows only its own (v2's default).
        "CgroupnsMode": "private",
        # A tiny init as PID 1 forwards SIGTERM to the command (a shell or server started as
        # PID 1 would ignore it, so every stop would wait out the grace period) and reaps
        # zombies; the command's exit code is passed through unchanged.
        "Init": True,
        "LogConfig": {
            "Type": "json-file",
            "Config": {"max-size": str(spec.log_max_bytes), "max-file": "1"},
        },
        "PortBindings": {key: [{"HostIp": "127.0.0.1", "HostPort": ""}] for key in port_keys},
        "RestartPolicy": {"Name": "no"},
    }
    if spec.network:
        host_config["NetworkMode"] = spec.network
    if spec.volumes:
        host_config["Mounts"] = [
            {
                "Type": "volume",
                "Source": name,
                "Target": path,
                "VolumeOptions": {"Labels": dict(spec.volume_labels)},
            }
            for name, path in spec.volumes
        ]
    body: Json = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": dict(spec.labels),
        "ExposedPorts": {key: {} for key in port_keys},
        "HostConfig": host_config,
    }
    if spec.command is not None:
        body["Cmd"] = list(spec.command)
    return body


def parse_event(line: str, selector: Mapping[str, str]) -> TaskEvent | None:
    """A `TaskEvent` from one line of the events stream, or None if it is not one of ours."""
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("Type", "container") != "container":
        return None
    actor: Json = message.get("Actor") or {}
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    # The engine filters by label already; this only guards against one that ignores the
    # filter, without dropping events from an engine that does not echo labels.
    if any(k in attributes and attributes[k] != v for k, v in selector.items()):
        return None
    task_id = actor.get("ID") or message.get("id")
    action = str(message.get("Action") or message.get("status") or "")
    if not task_id or not action:
        return None
    exit_code = attributes.get("exitCode", "")
    return TaskEvent(
        task_id=TaskId(str(task_id)),
        action=action.split(":", 1)[0].strip(),
        labels=attributes,
        at=_event_time(message),
        exit_code=int(exit_code) if exit_code.lstrip("-").isdigit() else None,
    )


def _event_time(message: Json) -> datetime | None:
    """The event's `timeNano` (or whole-second `time`) as aware UTC."""
    for key, scale in (("timeNano", 1e9), ("time", 1.0)):
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return datetime.fromtimestamp(value / scale, UTC)
    return None

"""Picks the runtime driver: the Docker driver for the configured engine address, or the
in-memory driver (for tests: it runs nothing).

This is the only module that imports a concrete driver; everything else depends on the
`Runtime` protocol from `berth.runtime.base`.
"""

from __future__ import annotations

from typing import Literal

from berth.clock import SYSTEM_CLOCK, Clock
from berth.runtime.base import Runtime
from berth.runtime.docker import DockerRuntime
from berth.runtime.memory import MemoryRuntime

Driver = Literal["docker", "memory"]


def create_runtime(
    docker_host: str, *, driver: Driver = "docker", clock: Clock = SYSTEM_CLOCK
) -> Runtime:
    """The driver for `docker_host`: `unix:///path/to.sock` (Docker or Podman) or a bare path.
    With `driver="memory"`, the in-memory driver on `clock` (the address is not used).

    Raises `ValueError` for schemes berth does not speak (tcp://, ssh://...).
    """
    if driver == "memory":
        return MemoryRuntime(clock=clock)
    if docker_host.startswith("unix://"):
        path = docker_host.removeprefix("unix://")
    elif docker_host.startswith("/"):
        path = docker_host
    else:
        raise ValueError(
            f"unsupported engine address {docker_host!r}: use unix:///path/to/docker.sock"
        )
    if not path:
        raise ValueError(f"engine address {docker_host!r} names no socket path")
    return DockerRuntime(path)

"""Picks the runtime driver for the configured engine address.

This is the only module that imports a concrete driver; everything else depends on the
`Runtime` protocol from `berth.runtime.base`.
"""

from __future__ import annotations

from berth.runtime.base import Runtime
from berth.runtime.docker import DockerRuntime


def create_runtime(docker_host: str) -> Runtime:
    """The driver for `docker_host`: `unix:///path/to.sock` (Docker or Podman) or a bare path.

    Raises `ValueError` for schemes berth does not speak (tcp://, ssh://...).
    """
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

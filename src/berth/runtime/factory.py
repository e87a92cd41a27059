"""Picks the runtime driver: the Docker driver for the configured engine address, the
Kubernetes driver for a cluster, or the in-memory driver (for tests: it runs nothing).

This is the only module that imports a concrete driver; everything else depends on the
`Runtime` protocol from `berth.runtime.base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from berth.clock import SYSTEM_CLOCK, Clock
from berth.runtime.base import Runtime
from berth.runtime.docker import DockerRuntime
from berth.runtime.kubernetes import KubernetesRuntime
from berth.runtime.memory import MemoryRuntime

Driver = Literal["docker", "kubernetes", "memory"]


def create_runtime(
    docker_host: str,
    *,
    driver: Driver = "docker",
    clock: Clock = SYSTEM_CLOCK,
    kubeconfig: str | Path | None = None,
    stop_grace_seconds: float = 10.0,
    namespace: str = "berth",
) -> Runtime:
    """The driver for `docker_host`: `unix:///path/to.sock` (Docker or Podman) or a bare path.
    With `driver="memory"`, the in-memory driver on `clock` (the address is not used). With
    `driver="kubernetes"`, the cluster of `kubeconfig` (None: the in-cluster service account,
    else `~/.kube/config`), whose pods get `stop_grace_seconds` as their grace period, with
    `namespace` for berth's own objects.

    Raises `ValueError` for schemes berth does not speak (tcp://, ssh://...), and
    `RuntimeDriverError` for a kubeconfig it cannot use.
    """
    if driver == "memory":
        return MemoryRuntime(clock=clock)
    if driver == "kubernetes":
        return KubernetesRuntime(
            kubeconfig, namespace=namespace, stop_grace_seconds=stop_grace_seconds
        )
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

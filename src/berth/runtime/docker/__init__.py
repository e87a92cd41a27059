"""The Docker driver: the runtime contract over the Docker Engine API (or Podman's).

`driver.DockerRuntime` is the `Runtime`. It reaches the engine through `client.EngineClient`
(httpx on the unix socket) and maps berth's types to the engine's JSON in `mapping` (pure, no
I/O). Commands in tasks are started in `execs` over a hand-written HTTP upgrade (`upgrade`);
terminals and attached processes are the `sessions` that follow. `logs` decodes the engine's
log and exec streams, `procfs` finds and kills an exec's processes on the engine's host, and
`netns` opens a connection from inside a task's network namespace.

Nothing outside `berth.runtime` imports this package but the factory (an import contract
says so); it imports nothing of another driver.
"""

from berth.runtime.docker.driver import DockerRuntime

__all__ = ["DockerRuntime"]

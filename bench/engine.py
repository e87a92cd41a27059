"""A minimal async Docker Engine API client (httpx over the unix socket): the baseline.

It makes the same documented calls `docker run` makes (create, start, inspect, wait), with
nothing in between, so it is the floor any platform on this engine can reach.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

API_VERSION = "v1.41"
BENCH_LABEL = "berth-bench"
"""Every container and network the baselines create carries `berth-bench=1`."""

Json = dict[str, Any]


class EngineError(RuntimeError):
    pass


class Engine:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path),
            base_url=f"http://docker/{API_VERSION}",
            timeout=httpx.Timeout(60.0, connect=5.0),
        )

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    def _check(response: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
        if response.status_code not in ok:
            raise EngineError(f"{what}: engine answered {response.status_code}: {response.text}")
        return response

    async def version(self) -> Json:
        response = self._check(await self.client.get("/version"), "version", (200,))
        data: Json = response.json()
        return data

    async def image_present(self, image: str) -> bool:
        response = await self.client.get(f"/images/{image}/json")
        return response.status_code == 200

    async def create(self, body: Json, name: str | None = None) -> str:
        params = {"name": name} if name else None
        response = await self.client.post("/containers/create", params=params, json=body)
        self._check(response, "create", (200, 201))
        return str(response.json()["Id"])

    async def start(self, container_id: str) -> None:
        response = await self.client.post(f"/containers/{container_id}/start")
        self._check(response, "start", (204, 304))

    async def inspect(self, container_id: str) -> Json:
        response = await self.client.get(f"/containers/{container_id}/json")
        self._check(response, "inspect", (200,))
        data: Json = response.json()
        return data

    async def wait(self, container_id: str) -> int:
        response = await self.client.post(
            f"/containers/{container_id}/wait",
            params={"condition": "not-running"},
            timeout=httpx.Timeout(120.0, connect=5.0),
        )
        self._check(response, "wait", (200,))
        return int(response.json()["StatusCode"])

    async def exec(self, container_id: str, command: list[str]) -> int:
        """`docker exec <id> COMMAND`: create the exec, start it attached and read its output
        to the end (the command's exit), then its exit code from the exec's inspect."""
        body = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        response = await self.client.post(f"/containers/{container_id}/exec", json=body)
        exec_id = str(self._check(response, "exec create", (201,)).json()["Id"])
        response = await self.client.post(
            f"/exec/{exec_id}/start", json={"Detach": False, "Tty": False}
        )
        self._check(response, "exec start", (200,))
        response = self._check(
            await self.client.get(f"/exec/{exec_id}/json"), "exec inspect", (200,)
        )
        return int(response.json()["ExitCode"])

    async def remove(self, container_id: str) -> None:
        response = await self.client.delete(
            f"/containers/{container_id}", params={"force": 1, "v": 1}
        )
        self._check(response, "remove", (200, 204, 404, 409))

    async def containers(self, label: str) -> list[Json]:
        """`docker ps -a --filter label=<label>` (`key=value` or just `key`)."""
        filters = json.dumps({"label": [label]})
        response = await self.client.get("/containers/json", params={"all": 1, "filters": filters})
        self._check(response, "list", (200,))
        data: list[Json] = response.json()
        return data

    async def create_network(self, name: str, labels: dict[str, str]) -> None:
        body = {"Name": name, "Driver": "bridge", "Labels": labels, "CheckDuplicate": True}
        response = await self.client.post("/networks/create", json=body)
        self._check(response, "create network", (200, 201, 409))

    async def remove_networks(self, label: str) -> None:
        filters = json.dumps({"label": [label]})
        response = await self.client.get("/networks", params={"filters": filters})
        self._check(response, "list networks", (200,))
        for network in response.json():
            await self.client.delete(f"/networks/{network['Id']}")

    async def remove_volumes(self, label: str) -> None:
        """Remove every volume carrying `label` (dev boxes' mount paths)."""
        filters = json.dumps({"label": [label]})
        response = await self.client.get("/volumes", params={"filters": filters})
        self._check(response, "list volumes", (200,))
        for volume in response.json().get("Volumes") or []:
            await self.client.delete(f"/volumes/{volume['Name']}")

    async def remove_all(self, label: str) -> int:
        """Remove every container carrying `label`; how many there were."""
        found = await self.containers(label)
        for container in found:
            await self.remove(str(container["Id"]))
        return len(found)


def published_port(inspect: Json, container_port: int) -> int | None:
    """The loopback host port the engine picked for `container_port`, from an inspect."""
    ports = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get(f"{container_port}/tcp") or []:
        host_port = str(binding.get("HostPort") or "")
        if host_port.isdigit():
            return int(host_port)
    return None


def listed_port(container: Json, container_port: int) -> int | None:
    """The same, from an entry of the container list."""
    for entry in container.get("Ports") or []:
        if entry.get("PrivatePort") == container_port and entry.get("PublicPort"):
            return int(entry["PublicPort"])
    return None


def container_body(
    image: str, command: str | None, ports: dict[int, str], host_config: Json | None = None
) -> Json:
    """What `docker create -p 127.0.0.1:HOST:PORT … IMAGE /bin/sh -c COMMAND` sends, labelled
    as the bench's: `ports` maps each container port to its host port ("": the engine picks
    one); `host_config` adds HostConfig fields (see `run_flags`). No `command`: the image's."""
    keys = {port: f"{port}/tcp" for port in ports}
    return {
        "Image": image,
        **({"Cmd": ["/bin/sh", "-c", command]} if command is not None else {}),
        "Labels": {BENCH_LABEL: "1"},
        "ExposedPorts": {key: {} for key in keys.values()},
        "HostConfig": {
            **(host_config or {}),
            "PortBindings": {
                keys[port]: [{"HostIp": "127.0.0.1", "HostPort": host}]
                for port, host in ports.items()
            },
        },
    }


def run_flags(config: Json) -> list[str]:
    """The `docker run` flags that set these HostConfig fields, as `container_body` would:
    network, init, memory, CPU and pids limits, security options, dropped capabilities,
    cgroup namespace and log driver (other fields are not translated)."""
    flags: list[str] = []
    if config.get("NetworkMode"):
        flags += ["--network", config["NetworkMode"]]
    if config.get("Init"):
        flags.append("--init")
    if config.get("Memory"):
        flags += ["--memory", str(config["Memory"])]
    if config.get("MemorySwap"):
        flags += ["--memory-swap", str(config["MemorySwap"])]
    if config.get("NanoCpus"):
        flags += ["--cpus", f"{config['NanoCpus'] / 1e9:g}"]
    if config.get("CpuQuota"):
        flags += ["--cpu-quota", str(config["CpuQuota"])]
    if config.get("CpuPeriod"):
        flags += ["--cpu-period", str(config["CpuPeriod"])]
    if config.get("PidsLimit"):
        flags += ["--pids-limit", str(config["PidsLimit"])]
    for option in config.get("SecurityOpt") or []:
        flags += ["--security-opt", option]
    for cap in config.get("CapDrop") or []:
        flags += ["--cap-drop", cap]
    if config.get("CgroupnsMode"):
        flags += ["--cgroupns", config["CgroupnsMode"]]
    log = config.get("LogConfig") or {}
    if log.get("Type"):
        flags += ["--log-driver", log["Type"]]
        for name, value in (log.get("Config") or {}).items():
            flags += ["--log-opt", f"{name}={value}"]
    return flags

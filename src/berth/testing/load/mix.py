"""One load client: a loop of valid requests mixing reads and writes on both dialects.

Each client acts for one tenant (a user, with that user's API key or session token) and
*owns* the objects it writes: its services and their secrets, its SSH keys, one ingress port
of one of the tenant's containers, the mount paths or the SSH switch of one container. No two
clients write the same object, so each client's `Ledger` knows exactly what the server must
show afterwards; `verify` (in `verify`) checks that every acknowledged write is there.
Clients of one tenant still share the user's rows (quotas, lists) and all share the store,
which is where contention lives.

The mix never churns containers quickly: services are created with no replicas and scaled or
stopped at zero, job runs go through a shared `RateGate`, and the dev boxes are made once in
the setup. Every request is one the API must accept, so any other status is a failure.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from berth.testing.load.record import LoadRecord

MAX_SERVICES_PER_CLIENT = 6
MAX_KEYS_PER_CLIENT = 2
"""With four clients per tenant and the tenant's base key, 9 keys: under the limit of 10."""
SECRET_KEYS = ("TOKEN_A", "TOKEN_B", "TOKEN_C")
INGRESS_PORTS = (80, 443)
"""The gateway's own ports: 8000-8999 would open listeners on a shared machine."""


def new_public_key(comment: str) -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + f" {comment}"


@dataclass(frozen=True)
class TenantAccess:
    user_id: str
    api_key: str
    session_token: str


@dataclass(frozen=True)
class TenantFixtures:
    """What the setup made for a tenant before the load: a job to run, two dev boxes (the
    first running, the second stopped) and the SSH key they were created with."""

    access: TenantAccess
    job_id: str
    containers: tuple[str, str]
    base_key_id: int


class RateGate:
    """A token bucket shared by clients: `take()` says whether an action may run now."""

    def __init__(self, per_second: float, burst: int = 1) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self.per_second <= 0 or self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class Ledger:
    """What this client's acknowledged writes left behind."""

    services: dict[str, dict[str, str]] = field(default_factory=dict)
    """Live service id -> its secrets (key -> value)."""
    deleted_services: set[str] = field(default_factory=set)
    job_runs: list[str] = field(default_factory=list)
    ssh_keys: dict[int, str] = field(default_factory=dict)
    """Live key id -> public key."""
    deleted_keys: dict[int, str] = field(default_factory=dict)
    """Deleted SSH keys: id -> public key. An id alone proves nothing: the store may give a
    deleted key's id to a key added later (by any client of the tenant)."""
    ingress: dict[tuple[str, int], int | None] = field(default_factory=dict)
    """(container, port) -> target port, None once removed."""
    mounts: dict[str, list[str]] = field(default_factory=dict)
    ssh_enabled: dict[str, bool] = field(default_factory=dict)


Operation = Callable[[], Awaitable[None]]

MIX: tuple[tuple[str, int, bool], ...] = (
    # (LoadClient method, weight, is a write)
    ("list_workloads", 10, False),
    ("get_workload", 10, False),
    ("list_runs", 5, False),
    ("read_logs", 4, False),
    ("list_secrets", 4, False),
    ("list_approvals", 3, False),
    ("get_policy", 3, False),
    ("list_containers", 6, False),
    ("get_container", 5, False),
    ("list_ssh_keys", 4, False),
    ("list_ingress", 4, False),
    ("get_mounts", 4, False),
    ("get_ssh", 2, False),
    ("create_service", 4, True),
    ("delete_service", 3, True),
    ("scale_service", 2, True),
    ("set_secret", 4, True),
    ("delete_secret", 3, True),
    ("run_job", 3, True),
    ("add_ssh_key", 2, True),
    ("delete_ssh_key", 2, True),
    ("set_ingress", 2, True),
    ("remove_ingress", 1, True),
    ("put_mounts", 1, True),
    ("put_ssh", 1, True),
    ("put_policy", 1, True),
)
"""About 70% reads. An operation that cannot run (nothing to delete, the job gate closed)
does a related one instead, so the real share of writes is a little lower."""


def write_share() -> float:
    """The share of writes in the mix's weights; the bare baseline sends as many."""
    return sum(w for _n, w, write in MIX if write) / sum(w for _n, w, _write in MIX)


class RecordingClient:
    """Sends requests with one credential and records each in the shared `LoadRecord`."""

    def __init__(self, *, http: httpx.AsyncClient, record: LoadRecord, credential: str) -> None:
        self.http = http
        self.record = record
        self.credential = credential
        self.writes = 0

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> Any:
        """One request; the parsed body when the status is expected, else None (recorded)."""
        started = time.monotonic()
        try:
            response = await self.http.request(
                method, path, json=json, headers={"Authorization": f"Bearer {self.credential}"}
            )
        except httpx.HTTPError as exc:
            self.record.no_answer(operation, started=started, error=exc)
            return None
        ok = response.status_code in expect
        self.record.answered(
            operation,
            started=started,
            status=response.status_code,
            expected=ok,
            detail=f"{method} {path}: {response.text}",
        )
        if not ok:
            return None
        if method != "GET":
            self.writes += 1
        return response.json()


class LoadClient(RecordingClient):
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        record: LoadRecord,
        tenant: TenantFixtures,
        index: int,
        image: str,
        job_gate: RateGate,
        seed: int,
    ) -> None:
        """`index` is the client's place among its tenant's clients (0-3): it decides the
        credential (odd: the session token of a human, even: the API key) and which
        container objects it owns."""
        access = tenant.access
        self.human = index % 2 == 1
        super().__init__(
            http=http,
            record=record,
            credential=access.session_token if self.human else access.api_key,
        )
        self.tenant = tenant
        self.index = index
        self.image = image
        self.job_gate = job_gate
        self.rng = random.Random(seed)
        self.name = f"c{seed}"
        self.ledger = Ledger()
        self._created = 0
        self._key_pool = [new_public_key(f"{self.name}-{i}@load") for i in range(3)]
        self._ingress_target = (tenant.containers[index % 2], INGRESS_PORTS[(index // 2) % 2])
        self._mounts_of = tenant.containers[index] if index < 2 else None
        self._ssh_switch_of = tenant.containers[index - 2] if index >= 2 else None
        self._operations: list[Operation] = [getattr(self, name) for name, _w, _write in MIX]
        self._weights = [weight for _name, weight, _write in MIX]

    # -- plumbing ---------------------------------------------------------------------------

    async def step(self) -> None:
        operation = self.rng.choices(self._operations, self._weights)[0]
        await operation()

    def _v1(self) -> str:
        """Both Workloads API routes: company-scoped and per-user."""
        if self.rng.random() < 0.5:
            return "/v1/compute"
        return f"/v1/users/{self.tenant.access.user_id}/compute"

    def _some_service(self) -> str | None:
        return self.rng.choice(list(self.ledger.services)) if self.ledger.services else None

    # -- Workloads API reads ------------------------------------------------------------------

    async def list_workloads(self) -> None:
        await self.call("v1 list workloads", "GET", self._v1())

    async def get_workload(self) -> None:
        target = self._some_service() or self.tenant.job_id
        await self.call("v1 get workload", "GET", f"{self._v1()}/{target}")

    async def list_runs(self) -> None:
        await self.call("v1 list runs", "GET", f"{self._v1()}/{self.tenant.job_id}/runs")

    async def read_logs(self) -> None:
        job = self.tenant.job_id
        if self.ledger.job_runs and self.rng.random() < 0.5:
            run = self.rng.choice(self.ledger.job_runs)
            await self.call("v1 run logs", "GET", f"{self._v1()}/{job}/runs/{run}/logs")
        else:
            await self.call("v1 logs", "GET", f"{self._v1()}/{job}/logs")

    async def list_secrets(self) -> None:
        service = self._some_service()
        if service is None:
            return await self.create_service()
        await self.call("v1 list secrets", "GET", f"{self._v1()}/{service}/secrets")

    async def list_approvals(self) -> None:
        await self.call("v1 list approvals", "GET", "/v1/approvals")

    async def get_policy(self) -> None:
        await self.call("v1 get policy", "GET", "/v1/approvals/policy")

    # -- Workloads API writes -----------------------------------------------------------------

    async def create_service(self) -> None:
        if len(self.ledger.services) >= MAX_SERVICES_PER_CLIENT:
            return await self.delete_service()
        self._created += 1
        body = {
            "name": f"{self.name}-svc-{self._created}",
            "type": "service",
            "image": self.image,
            "command": "exec httpd -f -p 8080",
            "port": 8080,
            "replicas": 0,
            "env": {"CREATED_BY": self.name},
        }
        created = await self.call("v1 create service", "POST", self._v1(), json=body, expect=(201,))
        if created is not None:
            self.ledger.services[created["id"]] = {}

    async def delete_service(self) -> None:
        service = self._some_service()
        if service is None:
            return await self.create_service()
        if await self.call("v1 delete service", "DELETE", f"{self._v1()}/{service}") is not None:
            del self.ledger.services[service]
            self.ledger.deleted_services.add(service)

    async def scale_service(self) -> None:
        service = self._some_service()
        if service is None:
            return await self.create_service()
        if self.rng.random() < 0.5:
            await self.call(
                "v1 scale to 0", "POST", f"{self._v1()}/{service}/scale", json={"count": 0}
            )
        else:
            await self.call("v1 stop service", "POST", f"{self._v1()}/{service}/stop")

    async def set_secret(self) -> None:
        service = self._some_service()
        if service is None:
            return await self.create_service()
        key = self.rng.choice(SECRET_KEYS)
        value = f"{self.name}-{self.rng.getrandbits(48):x}"
        body = {"key": key, "value": value}
        path = f"{self._v1()}/{service}/secrets"
        if await self.call("v1 set secret", "POST", path, json=body) is not None:
            self.ledger.services[service][key] = value

    async def delete_secret(self) -> None:
        service = self._some_service()
        secrets = self.ledger.services.get(service or "")
        if service is None or not secrets:
            return await self.set_secret()
        key = self.rng.choice(list(secrets))
        path = f"{self._v1()}/{service}/secrets/{key}"
        if await self.call("v1 delete secret", "DELETE", path) is not None:
            del secrets[key]

    async def run_job(self) -> None:
        if not self.job_gate.take():
            return await self.list_runs()
        path = f"{self._v1()}/{self.tenant.job_id}/run"
        run = await self.call("v1 run job", "POST", path, expect=(201,))
        if run is not None:
            self.ledger.job_runs.append(run["id"])

    async def put_policy(self) -> None:
        if not self.human:  # changing the policy is a human's call (keys get 403)
            return await self.get_policy()
        body = {"gated_actions": [], "ttl_seconds": 86400}
        await self.call("v1 set policy", "PUT", "/v1/approvals/policy", json=body)

    # -- Containers API -----------------------------------------------------------------------

    def _container(self) -> str:
        return self.rng.choice(self.tenant.containers)

    async def list_containers(self) -> None:
        await self.call("containers list", "GET", "/compute/containers")

    async def get_container(self) -> None:
        await self.call("containers get", "GET", f"/compute/containers/{self._container()}")

    async def list_ssh_keys(self) -> None:
        await self.call("containers list ssh keys", "GET", "/compute/ssh-keys")

    async def list_ingress(self) -> None:
        path = f"/compute/containers/{self._container()}/ingress"
        await self.call("containers list ingress", "GET", path)

    async def get_mounts(self) -> None:
        path = f"/compute/containers/{self._container()}/mounts"
        await self.call("containers get mounts", "GET", path)

    async def get_ssh(self) -> None:
        await self.call("containers get ssh", "GET", f"/compute/containers/{self._container()}/ssh")

    async def add_ssh_key(self) -> None:
        if len(self.ledger.ssh_keys) >= MAX_KEYS_PER_CLIENT:
            return await self.delete_ssh_key()
        live = set(self.ledger.ssh_keys.values())
        public_key = self.rng.choice([k for k in self._key_pool if k not in live])
        body = {"name": f"{self.name}-key", "public_key": public_key}
        added = await self.call(
            "containers add ssh key", "POST", "/compute/ssh-keys", json=body, expect=(201,)
        )
        if added is not None:
            self.ledger.ssh_keys[int(added["id"])] = public_key

    async def delete_ssh_key(self) -> None:
        if not self.ledger.ssh_keys:
            return await self.add_ssh_key()
        key_id = self.rng.choice(list(self.ledger.ssh_keys))
        path = f"/compute/ssh-keys/{key_id}"
        if await self.call("containers delete ssh key", "DELETE", path) is not None:
            self.ledger.deleted_keys[key_id] = self.ledger.ssh_keys.pop(key_id)

    async def set_ingress(self) -> None:
        container, port = self._ingress_target
        body = {"port": port, "target_port": self.rng.randint(1024, 9999)}
        path = f"/compute/containers/{container}/ingress"
        answer = await self.call("containers set ingress", "POST", path, json=body, expect=(201,))
        if answer is not None:
            self.ledger.ingress[(container, port)] = body["target_port"]

    async def remove_ingress(self) -> None:
        container, port = self._ingress_target
        if self.ledger.ingress.get((container, port)) is None:
            return await self.set_ingress()
        path = f"/compute/containers/{container}/ingress/{port}"
        if await self.call("containers remove ingress", "DELETE", path) is not None:
            self.ledger.ingress[(container, port)] = None

    async def put_mounts(self) -> None:
        """The running box (owner 0) gets its own paths again, which restarts nothing; the
        stopped one (owner 1) alternates between one and two paths."""
        container = self._mounts_of
        if container is None:
            return await self.get_mounts()
        current = self.ledger.mounts.get(container, ["/root"])
        paths = ["/root"] if self.index == 0 or len(current) > 1 else ["/root", "/data"]
        path = f"/compute/containers/{container}/mounts"
        answer = await self.call("containers set mounts", "PUT", path, json={"mount_paths": paths})
        if answer is not None:
            self.ledger.mounts[container] = list(answer["mount_paths"])

    async def put_ssh(self) -> None:
        container = self._ssh_switch_of
        if container is None:
            return await self.get_ssh()
        enabled = not self.ledger.ssh_enabled.get(container, False)
        path = f"/compute/containers/{container}/ssh"
        answer = await self.call("containers set ssh", "PUT", path, json={"ssh_enabled": enabled})
        if answer is not None:
            self.ledger.ssh_enabled[container] = enabled

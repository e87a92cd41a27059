"""Settings: read once from flags and `BERTH_*` environment variables, then passed down.

Nothing reads the environment after start-up; `create_app(settings)` and the admin commands
receive a `Settings` object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class InstanceType(BaseModel):
    """A Containers API instance type: its architecture (informational: tasks run on the
    engine's own architecture) and its vCPUs."""

    arch: str
    cpu: float


class WarmPoolSetting(BaseModel):
    """One warm pool (`BERTH_WARM_POOLS`, a JSON list of these): ready tasks that creates of
    exactly this shape take instead of starting one (docs/architecture.md, "Warm pools").

    A `devbox` pool serves Containers API creates of its image (default: the dev-box image),
    instance type, memory and mount paths (defaults: those of a create that leaves them
    out). A `service` pool serves Workloads API services with no command, no `env` and no
    scale-to-zero, of its image, cpu, memory and port.
    """

    model_config = {"extra": "forbid"}

    kind: Literal["devbox", "service"]
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    """Shown in logs and on the pool's tasks; default `<kind>-<position in the list>`."""
    size: int = Field(default=1, ge=0, le=100)
    """Ready tasks kept at all times."""
    max_size: int | None = Field(default=None, ge=0, le=100)
    """Ready tasks kept at most while demand is high (default: four times `size`)."""
    image: str | None = None
    instance_type: str = "nano"
    memory_mb: int | None = Field(default=None, ge=16)
    mount_paths: list[str] = Field(default_factory=lambda: ["/root"])
    cpu: float = Field(default=0.25, ge=0.01)
    port: int | None = Field(default=None, ge=1, le=65535)


DEFAULT_INSTANCE_TYPES = {
    "nano": InstanceType(arch="arm64", cpu=0.5),
    "micro": InstanceType(arch="arm64", cpu=1),
    "mini": InstanceType(arch="arm64", cpu=2),
    "tiny": InstanceType(arch="amd64", cpu=1),
    "small": InstanceType(arch="amd64", cpu=2),
    "medium": InstanceType(arch="amd64", cpu=4),
}


def _default_docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


class Settings(BaseSettings):
    """berth's configuration; every field can be set as `BERTH_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="BERTH_", extra="ignore")

    data_dir: Path = Path(".berth")
    host: str = "127.0.0.1"
    port: int = 7070
    database_url: str | None = None
    """SQLAlchemy async URL; default `sqlite+aiosqlite:///<data_dir>/berth.db`."""
    database_pool_size: int = Field(default=32, ge=1, le=1000)
    """PostgreSQL: connections each replica keeps open (it opens up to
    `database_pool_overflow` more while busy, closing them again as they come back)."""
    database_pool_overflow: int = Field(default=10, ge=0, le=1000)
    database_wait_seconds: float = Field(default=60.0, ge=0, le=3600)
    """PostgreSQL: how long `berth serve` waits at start for a database it cannot reach yet
    (one that refuses berth, a wrong password say, stops it at once)."""
    docker_host: str = Field(default_factory=_default_docker_host)
    runtime: Literal["docker", "kubernetes", "memory"] = "docker"
    """The runtime driver: `docker` (the engine at `docker_host`), `kubernetes` (the cluster
    of `kubeconfig`), or `memory`, an engine simulated in berth's own process that runs
    nothing (for tests, never for real work)."""
    kubeconfig: Path | None = None
    """The cluster for `runtime = "kubernetes"`; unset: the service account of the pod
    berth runs in, else `~/.kube/config` (see docs/kubernetes.md)."""
    kubernetes_namespace: str = "berth"
    """The namespace berth's own Kubernetes objects go in (image probes, tasks without a
    tenant); each user's tasks have a namespace of their own."""
    public_domain: str = "localhost"
    """Containers' hostnames are `<id>.<public domain>` (`*.localhost` resolves to loopback)."""
    ssh_host: str = "0.0.0.0"
    ssh_port: int = 2222
    """The SSH gateway's port; `ssh_command` of containers names it."""
    ssh_connections_per_second: float = Field(default=5.0, ge=0)
    """SSH connections each client address may open per second, sustained; 0 turns the
    connection limit off."""
    ssh_connection_burst: int = Field(default=30, ge=0)
    """SSH connections a client address may open at once; 0 turns the limit off."""
    ssh_failed_logins_per_second: float = Field(default=0.1, ge=0)
    """Failed SSH logins (a key offered, no login) each client address may have per second,
    sustained; past the burst its connections are turned away. 0 turns the limit off."""
    ssh_failed_login_burst: int = Field(default=10, ge=0)
    """Failed SSH logins a client address may have at once; 0 turns the limit off."""
    gateway_host: str = "0.0.0.0"
    """The HTTP gateway: public URLs of services and containers' ingress rules."""
    gateway_port: int | None = Field(default=None, ge=1, le=65535)
    """The gateway's HTTP port, which also serves ingress rules on 80. Unset: 80 when berth
    can bind it, else 9080 (`berth.gateway.http.default_ports`): never inside the rule range
    8000-8999."""
    gateway_tls_port: int | None = Field(default=None, ge=1, le=65535)
    """HTTPS, active when `tls_cert_file` and `tls_key_file` are set (a certificate for
    `*.<public domain>`); serves ingress rules on 443. Unset: 443 when berth can bind it,
    else 9443."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    gateway_wake_timeout_seconds: float = 60.0
    """How long a request to a scaled-to-zero service is held while it wakes (then 504)."""
    dev_box_idle_pause_seconds: int = Field(default=0, ge=0)
    """A running dev box nobody used for this long (no SSH login, terminal or request
    through its ingress rules) is paused: memory and processes kept, billed for memory
    alone, woken by the next use. 0 (the default) never pauses one by itself."""
    gateway_connections_per_second: float = Field(default=100.0, ge=0)
    """New connections per second each client address may open to the HTTP(S) gateway,
    sustained; past it a connection's request is answered 429. 0 turns the limit off."""
    gateway_connection_burst: int = Field(default=500, ge=0)
    """How many connections a client address may open at once before the sustained rate
    applies; 0 turns the limit off."""
    container_image: str = "berth/busybox:latest"
    """The default dev-box image of the Containers API (a create may name another)."""
    instance_types: dict[str, InstanceType] = Field(
        default_factory=lambda: dict(DEFAULT_INSTANCE_TYPES)
    )
    warm_pools: list[WarmPoolSetting] = Field(default_factory=list)
    """Warm pools (JSON), e.g. `[{"kind": "devbox", "size": 2}]`; none by default."""

    price_per_vcpu_second: float = 0.0001
    price_per_gb_second: float = 0.00005
    default_credits: float = 100.0

    default_max_cpu: float = 4.0
    default_max_memory_mb: int = 8192
    default_max_replicas: int = 10
    default_max_workloads: int = 50
    default_max_containers: int = 3
    default_max_ssh_keys: int = 10
    default_gated_actions: list[str] = ["create", "exec", "shell"]
    """Approval policy of a new company; JSON list in the environment, e.g. `[]`."""
    approval_ttl_seconds: int = 86400
    shell_connect_seconds: int = 60
    """A shell session's token must be used within this many seconds."""
    region: str = "local"
    """Reported with shell sessions."""

    reconcile_interval_seconds: float = 10.0
    meter_interval_seconds: float = 5.0
    stop_grace_seconds: float = 10.0
    crash_backoff_max_seconds: float = 60.0
    lease_seconds: float = Field(default=15.0, ge=1.0)
    """How long a replica's controller lease lasts without renewal: the longest another
    replica waits to take over the controllers of one that died (renewed every fifth of it)."""
    shared_dir: Path | None = None
    """Where the keys every replica must share live (`secret.key`, `token.key`,
    `instance.id`, `ssh_host_ed25519_key`); unset: the data directory. Replicas of one
    installation point this at one directory (docs/operations.md)."""
    token_ttl_seconds: int = 12 * 3600
    log_max_bytes: int = 20 * 1024 * 1024
    run_retention_count: int = Field(default=1000, ge=1)
    """Finished runs (with their archived logs) kept per workload; older ones are pruned."""
    run_retention_days: float = Field(default=0, ge=0)
    """Finished runs older than this many days are pruned too; 0 keeps them (count only)."""
    run_retention_interval_seconds: float = Field(default=60.0, gt=0)
    """How often the retention controller looks for runs to prune."""
    """Per task: the engine keeps at most this much output, and so does berth's archive."""
    max_request_bytes: int = Field(default=1024 * 1024, ge=1)
    """The largest HTTP request body the API reads (a larger one is answered 413), and the
    largest message a client may send on an API WebSocket."""
    max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """The largest file the files API reads from or writes into a task (10 MiB); larger is
    answered 413. A file write's body may be this large whatever `max_request_bytes` is."""
    max_request_head_bytes: int = Field(default=64 * 1024, ge=1024)
    """The largest request line plus headers the API reads; a larger head is answered 431."""
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    """Requests per second each API key, session token or (unauthenticated) client address
    may make, sustained; 0 turns rate limiting off."""
    rate_limit_burst: int = Field(default=100, ge=0)
    """How many requests such a caller may make at once before the sustained rate applies;
    0 turns rate limiting off."""

    sign_in_failures_per_second: float = Field(default=0.05, ge=0)
    """Failed password sign-ins each e-mail address may have per second, sustained (three a
    minute), once its burst is spent; 0 turns the limit off."""
    sign_in_failure_burst: int = Field(default=10, ge=0)
    """Failed password sign-ins an e-mail address may have at once; past them its sign-ins
    are answered 429 until the rate lets one more through. 0 turns the limit off."""

    def tls_configured(self) -> bool:
        """Whether a certificate is configured, and so the gateway's HTTPS listener."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def keys_dir(self) -> Path:
        """The directory of the keys replicas share (`shared_dir`, else the data dir)."""
        return self.shared_dir if self.shared_dir is not None else self.data_dir

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'berth.db').resolve()}"

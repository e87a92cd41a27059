"""What domain functions need, built once at start-up and passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from berth.clock import SYSTEM_CLOCK, Clock
from berth.domain.activity import OpenUses
from berth.domain.crypto import SecretCipher
from berth.domain.events import EventBus
from berth.domain.keyed_locks import KeyedLocks
from berth.domain.pool_shelf import PoolShelf
from berth.domain.replicas import new_replica_id
from berth.domain.tokens import TokenSigner
from berth.domain.usage import LiveUsage
from berth.runtime.base import Runtime
from berth.store.db import Store
from berth.store.logs import LogArchive
from berth.store.transcripts import TranscriptStore


@dataclass(frozen=True)
class Pricing:
    """Operator-set prices, in credits."""

    per_vcpu_second: float
    per_gb_second: float


@dataclass(frozen=True)
class KitDefaults:
    """AccountKit limits given to new users."""

    credits: float
    max_cpu: float
    max_memory_mb: int
    max_replicas: int
    max_workloads: int
    max_containers: int = 3
    max_ssh_keys: int = 10
    gated_actions: tuple[str, ...] = ("create", "exec", "shell")
    approval_ttl_seconds: int = 86400


@dataclass(frozen=True)
class ContainerDefaults:
    """What the Containers API and public URLs need from the operator's settings."""

    image: str
    instance_types: Mapping[str, tuple[str, float]]
    """name -> (architecture, vCPUs)."""
    public_domain: str
    ssh_port: int
    gateway_port: int = 80
    """The HTTP gateway's port, as public URLs name it (80 is left out of them)."""


@dataclass(frozen=True)
class Domain:
    store: Store
    bus: EventBus
    cipher: SecretCipher
    tokens: TokenSigner
    pricing: Pricing
    kit_defaults: KitDefaults
    logs: LogArchive
    transcripts: TranscriptStore
    containers: ContainerDefaults
    instance_id: str
    """This installation's id, labelled on everything it creates on the engine."""
    runtime: Runtime | None = None
    """Needed only to read live output of running tasks; admin commands run without it."""
    clock: Clock = SYSTEM_CLOCK
    """Where the domain and the controllers read the time (a test's `ManualClock`)."""
    usage: LiveUsage = field(default_factory=LiveUsage)
    """The last measured memory and storage of dev boxes, read by the Containers API."""
    replica_id: str = field(default_factory=new_replica_id)
    """This process among the replicas sharing the database (`berth.domain.replicas`)."""
    freezes: KeyedLocks = field(default_factory=KeyedLocks)
    """Serializes the pauses and resumes of one workload in this process, so the engine and
    the runs' records never disagree on whether its tasks are frozen (`domain.pausing`)."""
    uses: OpenUses = field(default_factory=OpenUses)
    """What this process holds open now (SSH logins, terminals), announced as activity so
    that no idle controller acts on it (`berth.domain.activity`)."""
    pools: PoolShelf = field(default_factory=PoolShelf)
    """The warm pools' ready tasks, which creates take (`berth.domain.warm_pools`)."""

    def data_version(self) -> int | None:
        """A number that changes with every commit to the database, by any process; None
        where the database has none (`Store.data_version`). What was read after seeing
        version v is still current while the version is v."""
        return self.store.data_version()

    async def close(self) -> None:
        """Release the database; the handle is unusable afterwards."""
        await self.store.close()

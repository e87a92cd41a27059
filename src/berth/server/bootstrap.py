"""Builds the domain handle from settings: store, keys, cipher, signer, log archive.

Shared by the server's lifespan and by the admin commands, which work on the data directory
directly without a server.
"""

from __future__ import annotations

import logging
import os
import secrets

from berth.clock import SYSTEM_CLOCK, Clock
from berth.config import Settings
from berth.domain.context import ContainerDefaults, Domain, KitDefaults, Pricing
from berth.domain.crypto import SecretCipher
from berth.domain.errors import Invalid
from berth.domain.events import EventBus
from berth.domain.mounts import validate_mount_paths
from berth.domain.pool_shelf import PoolProfile, PoolWant
from berth.domain.tokens import TokenSigner
from berth.gateway.http.default_ports import HTTP_PORTS
from berth.private_files import read_or_create_private_file
from berth.runtime.base import Runtime
from berth.schemas.containers import ContainerCreate
from berth.schemas.workloads import WorkloadCreate
from berth.store.db import Store
from berth.store.keyfiles import KeyFileError, load_or_create_key
from berth.store.logs import LogArchive
from berth.store.notify import EventChannel
from berth.store.reachable import DatabaseUnreachable as DatabaseUnreachable
from berth.store.reachable import wait_for_database
from berth.store.transcripts import TranscriptStore

log = logging.getLogger(__name__)


async def reach_database(settings: Settings, *, wait_seconds: float = 0.0) -> None:
    """Return once the settings' database answers, waiting up to `wait_seconds` for one
    that cannot be reached yet (each wait logged); raises `DatabaseUnreachable`, whose
    message says what to check (`berth.store.reachable`)."""
    await wait_for_database(
        settings.resolved_database_url(), wait_seconds=wait_seconds, on_wait=log.warning
    )


async def open_domain(
    settings: Settings, *, runtime: Runtime | None = None, clock: Clock = SYSTEM_CLOCK
) -> Domain:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    settings.keys_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store(
        settings.resolved_database_url(),
        pool_size=settings.database_pool_size,
        pool_overflow=settings.database_pool_overflow,
    )
    await store.create_schema()
    secret_key = os.environ.get("BERTH_SECRET_KEY", "").encode() or load_or_create_key(
        settings.keys_dir() / "secret.key"
    )
    return Domain(
        store=store,
        bus=EventBus(),
        cipher=SecretCipher(secret_key),
        tokens=TokenSigner(
            load_or_create_key(settings.keys_dir() / "token.key"),
            ttl_seconds=settings.token_ttl_seconds,
        ),
        pricing=Pricing(
            per_vcpu_second=settings.price_per_vcpu_second,
            per_gb_second=settings.price_per_gb_second,
        ),
        kit_defaults=KitDefaults(
            credits=settings.default_credits,
            max_cpu=settings.default_max_cpu,
            max_memory_mb=settings.default_max_memory_mb,
            max_replicas=settings.default_max_replicas,
            max_workloads=settings.default_max_workloads,
            max_containers=settings.default_max_containers,
            max_ssh_keys=settings.default_max_ssh_keys,
            gated_actions=tuple(settings.default_gated_actions),
            approval_ttl_seconds=settings.approval_ttl_seconds,
        ),
        logs=LogArchive(data_dir / "logs", max_bytes=settings.log_max_bytes),
        transcripts=TranscriptStore(data_dir / "transcripts"),
        containers=ContainerDefaults(
            image=settings.container_image,
            instance_types={
                name: (kind.arch, kind.cpu) for name, kind in settings.instance_types.items()
            },
            public_domain=settings.public_domain,
            ssh_port=settings.ssh_port,
            # Unset only where no gateway runs (admin commands, which print no URLs).
            gateway_port=HTTP_PORTS[0] if settings.gateway_port is None else settings.gateway_port,
        ),
        runtime=runtime,
        instance_id=instance_id(settings),
        clock=clock,
    )


DEVBOX_MEMORY_MB = int(ContainerCreate.model_fields["memory_mb"].default)
SERVICE_MEMORY_MB = int(WorkloadCreate.model_fields["memory_mb"].default)


async def bridge_replicas(domain: Domain) -> EventChannel | None:
    """On PostgreSQL, connect this replica's event bus to the other replicas' (LISTEN/NOTIFY,
    `store.notify`); the caller stops the channel returned. On SQLite (one process) None."""
    if not domain.store.url.startswith("postgresql"):
        return None
    channel = EventChannel(
        domain.store.url, on_message=domain.bus.receive, on_gap=domain.bus.resync
    )
    domain.bus.bridge(channel.send)
    await channel.start()
    return channel


def instance_id(settings: Settings) -> str:
    """This installation's id, labelled on its tasks; kept beside the shared keys (every
    replica of an installation adopts the same tasks). A new one is lowercase hex, so it is
    valid in every name and label value a runtime makes from it (Kubernetes refuses `_` in
    pod names, and a label value starting or ending in `_`/`-`)."""
    path = settings.keys_dir() / "instance.id"
    value = read_or_create_private_file(path, lambda: secrets.token_hex(4).encode()).strip()
    if not value:
        raise KeyFileError(f"the instance id file {path} is empty; restore it from a backup")
    return value.decode().lower()


class WarmPoolSettingError(ValueError):
    """`BERTH_WARM_POOLS` names something berth cannot serve; the message says what."""


def warm_pool_profiles(settings: Settings) -> list[PoolProfile]:
    """The configured warm pools as the shapes creates will ask for (what a create leaving
    a field out gets is what a pool leaving it out holds)."""
    if settings.warm_pools and settings.runtime == "kubernetes":
        raise WarmPoolSettingError(
            "warm_pools: warm pools need the docker runtime (a pod cannot move into its "
            "tenant's namespace); remove BERTH_WARM_POOLS or run with --runtime docker"
        )
    profiles: list[PoolProfile] = []
    for position, pool in enumerate(settings.warm_pools):
        name = pool.name or f"{pool.kind}-{position}"
        where = f"warm_pools[{position}] ({name})"
        if pool.kind == "devbox":
            kind = settings.instance_types.get(pool.instance_type)
            if kind is None:
                known = ", ".join(settings.instance_types)
                raise WarmPoolSettingError(
                    f"{where}: unknown instance_type {pool.instance_type!r}; one of {known}"
                )
            try:
                paths = validate_mount_paths(pool.mount_paths)
            except Invalid as exc:
                raise WarmPoolSettingError(f"{where}: {exc}") from exc
            want = PoolWant(
                "container",
                pool.image or settings.container_image,
                kind.cpu,
                pool.memory_mb or DEVBOX_MEMORY_MB,
                None,
                tuple(paths),
            )
        else:
            if not pool.image:
                raise WarmPoolSettingError(f"{where}: a service pool needs an image")
            want = PoolWant(
                "service", pool.image, pool.cpu, pool.memory_mb or SERVICE_MEMORY_MB, pool.port
            )
        if any(profile.name == name for profile in profiles):
            raise WarmPoolSettingError(f"{where}: two pools are named {name!r}")
        size = pool.size
        max_size = pool.max_size if pool.max_size is not None else 4 * size
        profiles.append(PoolProfile(name, want, size, max(size, max_size)))
    return profiles

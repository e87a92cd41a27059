"""What domain functions need, built once at start-up and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from berth.domain.crypto import SecretCipher
from berth.domain.events import EventBus
from berth.domain.tokens import TokenSigner
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
    gated_actions: tuple[str, ...] = ("create", "exec", "shell")
    approval_ttl_seconds: int = 86400


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
    runtime: Runtime | None = None
    """Needed only to read live output of running tasks; admin commands run without it."""

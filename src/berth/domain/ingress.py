"""Ingress rules of containers: which external port of the gateway reaches which port of the
container. Rules are stored and announced (`ingress.changed`) for the gateway; a rule on 443
turns `https_enabled` on.

A rule is stored only once the gateway listens for its port (`RuleListeners`): a port taken
by another program on the gateway's host, or one of the gateway's own ports, is refused
(409) with nothing created, rather than kept as a rule that nothing serves.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy import bindparam, select

from berth.domain.accounts import ensure_compute_actor
from berth.domain.auth import Actor
from berth.domain.containers import check_owned_container, owned_container
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Invalid, NotFound
from berth.domain.events import Event
from berth.store.models import IngressRule
from berth.store.reads import Reader


class RuleListeners(Protocol):
    """The gateway, as adding a rule sees it."""

    async def open_rule_port(self, port: int) -> None:
        """Make sure the gateway serves rules on external `port` from now on; raise
        `OSError` (its `strerror` says why) when it cannot."""


def external_port_allowed(port: int) -> bool:
    return port in (80, 443) or 8000 <= port <= 8999


async def add_rule(
    domain: Domain,
    actor: Actor,
    container_id: str,
    *,
    port: int,
    target_port: int | None,
    listeners: RuleListeners | None = None,
) -> IngressRule:
    """Add a rule; adding a port that already has one updates its target. With `listeners`
    (the server's gateway), a port the gateway cannot listen on is a `Conflict`."""
    if not external_port_allowed(port):
        raise Invalid("external port not allowed", field="port")
    target = port if target_port is None else target_port
    if not 1 <= target <= 65535:
        raise Invalid("target port out of range (1-65535)", field="target_port")
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_container(session, actor, container_id, lock=True)
        if listeners is not None:
            try:
                await listeners.open_rule_port(port)
            except OSError as exc:
                raise Conflict(
                    f"port {port}: the gateway cannot listen on it ({exc.strerror or exc})",
                    field="port",
                ) from exc
        rule = await session.scalar(
            select(IngressRule).where(
                IngressRule.workload_id == workload.id, IngressRule.port == port
            )
        )
        if rule is None:
            rule = IngressRule(
                workload_id=workload.id,
                port=port,
                target_port=target,
                created_at=domain.clock.now(),
            )
            session.add(rule)
        rule.target_port = target
    _announce(domain, actor, container_id)
    return rule


class IngressRuleRecord(NamedTuple):
    """An ingress rule as its readers see it (in `_RULES`' column order)."""

    id: int
    port: int
    target_port: int
    created_at: datetime


_RULES = (
    select(*(getattr(IngressRule, name) for name in IngressRuleRecord._fields))
    .where(IngressRule.workload_id == bindparam("container_id"))
    .order_by(IngressRule.port)
)


async def list_rules(domain: Domain, actor: Actor, container_id: str) -> list[IngressRuleRecord]:
    def read(reader: Reader) -> list[IngressRuleRecord]:
        check_owned_container(reader, actor, container_id)
        rows = reader.all(_RULES, {"container_id": container_id})
        return [IngressRuleRecord._make(row) for row in rows]

    return await domain.store.read(read, snapshot=False)


async def remove_rule(domain: Domain, actor: Actor, container_id: str, port: int) -> None:
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_container(session, actor, container_id, lock=True)
        rule = await session.scalar(
            select(IngressRule).where(
                IngressRule.workload_id == workload.id, IngressRule.port == port
            )
        )
        if rule is None:
            raise NotFound(f"no ingress rule on port {port}")
        await session.delete(rule)
    _announce(domain, actor, container_id)


def _announce(domain: Domain, actor: Actor, container_id: str) -> None:
    domain.bus.publish(Event("ingress.changed", user_id=actor.user_id, workload_id=container_id))

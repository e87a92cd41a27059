"""Cutting open SSH sessions whose access was revoked, driven by the event bus.

Every change that can revoke access publishes an event naming the container: SSH turned off
(`container.ssh`), stopped, started, deleted or re-planned (`workload.changed`,
`workload.status`), its task ended (`run.finished`), a key deleted (`ssh_key.deleted`, whose
`container_ids` are the containers that had selected it). Rather than decoding what each kind
means, the watcher re-asks the authorizer about every login into a container an event names
(one read per open login there, none for other containers), and the gateway disconnects
logins that lost their access. Events arriving while a recheck runs are batched into the
next one; if the subscription overflowed (events were lost), every login is rechecked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from berth.domain.events import Event, Subscription

logger = logging.getLogger(__name__)

RecheckLogins = Callable[[Collection[str] | None], Awaitable[None]]
"""Recheck the logins into these containers (None: all of them)."""


def containers_named(event: Event) -> set[str]:
    """The containers an event is about: its workload, and any `container_ids` it lists."""
    named = {event.workload_id} if event.workload_id else set()
    listed = event.data.get("container_ids")
    if isinstance(listed, list | tuple | set | frozenset):
        named.update(str(container_id) for container_id in listed)
    return named


async def cut_revoked_logins(subscription: Subscription, recheck: RecheckLogins) -> None:
    """Forever: wait for events, then recheck the logins into the containers they name."""
    try:
        while True:
            named = containers_named(await subscription.get())
            for event in subscription.take_waiting():
                named |= containers_named(event)
            if subscription.take_overflow():
                logger.warning("SSH gateway missed events; rechecking every login")
                await recheck(None)
            elif named:
                await recheck(named)
    finally:
        subscription.close()

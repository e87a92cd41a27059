"""The retention controller: prunes old finished runs in the background (see
`berth.domain.retention`)."""

from __future__ import annotations

import asyncio
import logging

from berth.domain.context import Domain
from berth.domain.retention import RunRetention, prune_runs

log = logging.getLogger("berth.control")


async def run_retention(domain: Domain, retention: RunRetention, interval: float) -> None:
    """Every `interval` seconds, prune batch after batch (each its own short transaction,
    so the API's writes interleave) until a batch comes back short."""
    while True:
        await asyncio.sleep(interval)
        try:
            pruned = retention.batch
            while pruned >= retention.batch:
                pruned = await prune_runs(domain, retention)
        except Exception:
            log.exception("run retention pass failed; the next pass catches up")

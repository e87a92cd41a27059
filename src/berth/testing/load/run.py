"""A whole load run against a berth server, as the benchmark and the test suite run it.

Setup (fixtures per tenant), a short idle spell to sample memory at rest, then `clients`
concurrent clients for `warmup + seconds`, with the server's RSS sampled every second
throughout; afterwards every client's acknowledged writes are read back, and the job runs
they started are waited for. Nothing is judged here: the caller decides what passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from berth.testing.load.driver import drive
from berth.testing.load.mix import LoadClient, RateGate, TenantAccess
from berth.testing.load.record import LoadRecord
from berth.testing.load.setup import prepare_tenant
from berth.testing.load.verify import Verification, verify_clients, wait_runs_finished
from berth.testing.process_memory import (
    MIB,
    MemoryGrowth,
    RssSampler,
    memory_growth,
    tree_cpu_seconds,
)

CLIENTS_PER_TENANT = 4
"""Each client of a tenant owns different container objects (see `LoadClient`)."""
IDLE_SECONDS = 3.0
"""Memory is sampled at rest this long before the load starts."""


def tenants_needed(clients: int) -> int:
    return -(-clients // CLIENTS_PER_TENANT)


@dataclass
class LoadRun:
    record: LoadRecord
    memory: MemoryGrowth
    rss_timeline_mib: list[float]
    """One sample per second from the idle spell to the end of the load."""
    writes: Verification
    runs: Verification
    acknowledged_writes: int
    wall_seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float
    replicas_cpu_seconds: float = 0.0
    """Every replica's CPU (the server's included) over the same spell."""
    database_cpu_seconds: float = 0.0
    """The database server's (every backend's), when its process was named."""

    def summary(self) -> dict[str, Any]:
        wall = self.wall_seconds
        return {
            **self.record.summary(),
            "acknowledged_writes": self.acknowledged_writes,
            "writes_checked": self.writes.checked,
            "writes_missing": self.writes.problems,
            "job_runs_checked": self.runs.checked,
            "job_runs_not_succeeded": self.runs.problems,
            "memory": self.memory.as_dict(),
            "rss_timeline_mib": [round(v, 1) for v in self.rss_timeline_mib],
            "wall_seconds": round(wall, 1),
            "server_cpu_percent": round(100 * self.server_cpu_seconds / wall, 1),
            "client_cpu_percent": round(100 * self.client_cpu_seconds / wall, 1),
            "replicas_cpu_percent": round(100 * self.replicas_cpu_seconds / wall, 1),
            "database_cpu_percent": round(100 * self.database_cpu_seconds / wall, 1),
        }


def new_http(base_url: str) -> httpx.AsyncClient:
    """One keep-alive connection per client, as a separate program would hold."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=30,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def run_berth_load(
    *,
    base_url: str,
    server_pid: int,
    tenants: list[TenantAccess],
    clients: int,
    seconds: float,
    warmup: float,
    image: str,
    job_runs_per_second: float,
    runs_within_seconds: float = 120.0,
    other_replicas: Sequence[str] = (),
    other_replica_pids: Sequence[int] = (),
    database_pid: int | None = None,
) -> LoadRun:
    """`other_replicas`: base URLs of further replicas sharing `base_url`'s database; the
    clients are spread over all of them (client n on replica n mod count). Setup and the
    read-back go through `base_url`; memory is `server_pid`'s, CPU is counted for it, for
    all replicas (`other_replica_pids` too) and for the database server (`database_pid`,
    with its children: PostgreSQL's backends), so a figure says where the machine's time
    went."""
    fixtures = await asyncio.gather(
        *(
            prepare_tenant(base_url, access, image=image, label=f"t{number}")
            for number, access in enumerate(tenants)
        )
    )
    record = LoadRecord()
    gate = RateGate(job_runs_per_second)
    urls = [base_url, *other_replicas]
    https = [new_http(urls[number % len(urls)]) for number in range(clients)]
    load_clients = [
        LoadClient(
            http=https[number],
            record=record,
            tenant=fixtures[number // CLIENTS_PER_TENANT],
            index=number % CLIENTS_PER_TENANT,
            image=image,
            job_gate=gate,
            seed=number,
        )
        for number in range(clients)
    ]
    sampler = RssSampler(server_pid)
    sampling = asyncio.create_task(sampler.run(), name="rss-sampler")
    try:
        await asyncio.sleep(IDLE_SECONDS)  # memory at rest, sampled meanwhile
        load_start = time.monotonic()
        replica_pids = [server_pid, *other_replica_pids]
        database_pids = [] if database_pid is None else [database_pid]
        server_cpu, client_cpu = tree_cpu_seconds(server_pid), time.process_time()
        replicas_cpu, database_cpu = _cpu_of(replica_pids), _cpu_of(database_pids)
        _window_start, window_end = await drive(
            load_clients, record=record, seconds=seconds, warmup=warmup
        )
        server_cpu = tree_cpu_seconds(server_pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        replicas_cpu = _cpu_of(replica_pids) - replicas_cpu
        database_cpu = _cpu_of(database_pids) - database_cpu
        load_end = time.monotonic()
        sampler.sample()
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        for http in https:
            await http.aclose()
    memory = memory_growth(
        sampler.samples,
        load_start=load_start,
        warmup_end=(load_start + min(window_end, load_end)) / 2,
        load_end=load_end,
    )
    writes = await verify_clients(base_url, load_clients)
    runs = await wait_runs_finished(base_url, load_clients, within_seconds=runs_within_seconds)
    return LoadRun(
        record=record,
        memory=memory,
        rss_timeline_mib=[v / MIB for _t, v in sampler.samples],
        writes=writes,
        runs=runs,
        acknowledged_writes=sum(c.writes for c in load_clients),
        wall_seconds=load_end - load_start,
        server_cpu_seconds=server_cpu,
        client_cpu_seconds=client_cpu,
        replicas_cpu_seconds=replicas_cpu,
        database_cpu_seconds=database_cpu,
    )


def _cpu_of(pids: Sequence[int]) -> float:
    return sum(tree_cpu_seconds(pid) for pid in pids)

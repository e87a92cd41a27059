"""berth under a bounded load: many concurrent clients mixing reads and writes on both API
dialects for LOAD_SECONDS against a real server of its own (the shared server's memory would
carry other tests' history). `python -m bench.load` runs the same harness longer, next to a
bare ASGI baseline; this test is the pass/fail part.

Memory criterion. The RSS of the server's process tree is sampled every second. The first
half of the load is the warm-up (SQLAlchemy's statement cache, pydantic's validators, the
allocator's arenas and the connection pools grow to their working size there, and RSS climbs
steeply, then ever more slowly); over the second half the server must grow by at most
RSS_GROWTH_MIB (end minus half-time, each the median of the samples within 3 s, so no single
sample decides). At this test's rate (a few dozen requests/s on a loaded two-core runner,
more on a quiet one) that catches a leak of about 10 KiB per request or more, or any cache
growing without bound at a similar rate; measured runs grow 1-3 MiB there. The slope bound
(least squares over the second half) only guards against a climb steep enough to hide
between the two medians. Slower leaks need the longer run of `python -m bench.load`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.testing.load.run import run_berth_load, tenants_needed
from berth.testing.load.tenants import create_tenants
from tests.support.server import TEST_IMAGE, BerthServer

pytestmark = pytest.mark.engine

LOAD_SECONDS = 45.0
WARMUP_SECONDS = 5.0
CLIENTS = 16
JOB_RUNS_PER_SECOND = 0.5
RSS_GROWTH_MIB = 8.0
RSS_SLOPE_MIB_PER_MINUTE = 24.0
LOG_PROBLEMS = re.compile(r"Traceback|database is locked| ERROR ")


@pytest.fixture(scope="module")
def load_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server of its own (~2 s to start); per-key rate limiting off, so the API is loaded."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("load")) / "data",
        env={"BERTH_RATE_LIMIT_PER_SECOND": "0", "BERTH_RATE_LIMIT_BURST": "0"},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.mark.timeout(300)
async def test_mixed_load_answers_no_5xx_loses_no_write_and_keeps_memory_flat(
    load_server: BerthServer,
) -> None:
    assert load_server.process is not None
    tenants = await create_tenants(
        load_server.settings(), tenants_needed(CLIENTS), label="load-test"
    )
    began = time.monotonic()
    run = await run_berth_load(
        base_url=load_server.url,
        server_pid=load_server.process.pid,
        tenants=tenants,
        clients=CLIENTS,
        seconds=LOAD_SECONDS,
        warmup=WARMUP_SECONDS,
        image=TEST_IMAGE,
        job_runs_per_second=JOB_RUNS_PER_SECOND,
        runs_within_seconds=90,
    )
    summary = run.summary()
    memory = summary["memory"]
    print(
        f"load test: {time.monotonic() - began:.0f}s wall, {summary['requests']} requests,"
        f" {summary['requests_per_second']} req/s, p50 {summary['p50_ms']} ms,"
        f" p99 {summary['p99_ms']} ms, statuses {summary['statuses']},"
        f" {summary['acknowledged_writes']} writes, memory {memory}"
    )

    failures = run.record.failures
    assert run.record.server_errors == 0, f"5xx under load: {failures}"
    assert run.record.transport_errors == 0, f"requests without an answer: {failures}"
    assert run.record.unexpected == 0, f"valid requests refused: {failures}"
    # The load really happened, writes included, and the check afterwards really looked.
    assert summary["requests"] >= 10 * LOAD_SECONDS, summary["requests"]
    assert run.acknowledged_writes >= 2 * LOAD_SECONDS, run.acknowledged_writes
    assert run.writes.checked >= CLIENTS * 3, run.writes.checked
    assert run.writes.problems == [], run.writes.problems
    assert run.runs.checked >= 3, "too few job runs to judge"
    assert run.runs.problems == [], run.runs.problems

    assert memory["growth_mib"] <= RSS_GROWTH_MIB, memory
    assert memory["slope_mib_per_minute"] <= RSS_SLOPE_MIB_PER_MINUTE, memory

    log = load_server.log_path.read_text(errors="replace")
    problems = [line for line in log.splitlines() if LOG_PROBLEMS.search(line)]
    assert problems == [], problems[:20]

"""Faults under traffic with two replicas on one PostgreSQL database: the replica holding
every lease is SIGKILLed while callers create and run jobs, and PostgreSQL itself is
restarted while callers read and write. Nothing acknowledged is lost, nothing runs twice,
billing stays exact (a balance is its ledger's sum), a database away is a 503 with
`Retry-After`, never a 500, and berth recovers without a restart."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import wait_workload
from tests.support.postgres import PostgresServer
from tests.support.replicas import (
    CONTROLLERS,
    LEASE_SECONDS,
    balance_and_ledger,
    client_of,
    finished,
    lease_holders,
    start_pair,
    tasks_created,
)
from tests.support.server import TEST_IMAGE, BerthServer

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas(tmp_path: Path, postgres: PostgresServer) -> Iterator[list[BerthServer]]:
    with start_pair(tmp_path, postgres) as pair:
        yield pair


@dataclass
class Traffic:
    """Callers in threads, each repeating `step` until stopped; what they were answered."""

    answers: list[httpx.Response] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    """Ids of the creates answered 201 (acknowledged)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def run(self, callers: int, step: Callable[[int, int], list[httpx.Response]]) -> None:
        def caller(number: int) -> None:
            for round_ in itertools.count():
                if self._stop.is_set():
                    return
                try:
                    answers = step(number, round_)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.failures.append(f"caller {number}: {exc!r}")
                    continue
                with self._lock:
                    self.answers.extend(answers)
                    self.created.extend(
                        a.json()["id"]
                        for a in answers
                        if a.request.method == "POST" and a.status_code == 201
                    )

        for number in range(callers):
            thread = threading.Thread(target=caller, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def created_at_least(self, count: int, *, allowed: set[int]) -> bool:
        """Whether `count` creates were acknowledged; fails at once on an answer outside
        `allowed` (its status and body) or a dropped connection."""
        with self._lock:
            odd = [a for a in self.answers if a.status_code not in allowed]
            assert not odd, f"{odd[0].request.method} {odd[0].request.url}: {odd[0].text}"
            assert not self.failures, self.failures
            return len(self.created) >= count

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.status_code == status)


def test_jobs_created_while_the_lease_holder_is_killed_each_run_once_and_billing_is_exact(
    replicas: list[BerthServer],
) -> None:
    """Callers create jobs through `b` while `a`, holding every lease, is SIGKILLed: each
    acknowledged job runs exactly once (one run, one engine task) once `b` has taken over,
    and the balance equals the ledger's sum."""
    a, b = replicas
    tenant = a.new_tenant()
    on_b = client_of(b, tenant)
    since = time.time()
    traffic = Traffic()

    def create_job(caller: int, round_: int) -> list[httpx.Response]:
        body = {
            "name": f"j{caller}-{round_}",
            "type": "job",
            "image": TEST_IMAGE,
            "command": "echo ran",
        }
        return [on_b.post("/v1/compute", json=body)]

    traffic.run(2, create_job)
    try:
        wait_for(
            lambda: traffic.created_at_least(4, allowed={201}),
            timeout=60,
            what="creates before the kill",
        )
        a.kill()
        at_kill = len(traffic.created)
        wait_for(
            lambda: traffic.created_at_least(at_kill + 4, allowed={201}),
            timeout=60,
            what="creates after it",
        )
    finally:
        traffic.stop()
    assert traffic.failures == []
    assert {answer.status_code for answer in traffic.answers} == {201}

    wait_for(
        lambda: lease_holders(b) == dict.fromkeys(CONTROLLERS, b),
        timeout=LEASE_SECONDS * 3,
        what="b to take every lease over",
    )
    for job_id in traffic.created:
        state = wait_workload(on_b, job_id, finished, what=f"job {job_id} to succeed")
        assert len(state["recent_runs"]) == 1, state
        assert state["recent_runs"][0]["credits"] > 0, state  # the one-second minimum
        assert tasks_created(job_id, since) == 1, job_id
    balance, ledger = balance_and_ledger(b, tenant.user_id)
    assert balance == ledger


def ready(replica: BerthServer) -> int:
    """The status of the replica's readiness check (`GET /readyz`)."""
    return httpx.get(replica.url + "/readyz", timeout=10).status_code


def test_a_postgresql_restart_under_traffic_is_503_with_retry_after_and_berth_recovers(
    replicas: list[BerthServer], postgres: PostgresServer
) -> None:
    """Callers on both replicas create schedules (that never fire) and read them while
    PostgreSQL stops and starts again: every answer is a success or a 503 with
    `Retry-After` (never a 500, never a dropped connection), every acknowledged create
    is there afterwards on both replicas, the controllers run again, billing is exact.
    Meanwhile each replica's readiness check fails, and passes again once it is back."""
    a, b = replicas
    tenant = a.new_tenant()
    clients = [client_of(a, tenant), client_of(b, tenant)]
    traffic = Traffic()

    def create_and_read(caller: int, round_: int) -> list[httpx.Response]:
        client = clients[(caller + round_) % 2]
        body = {
            "name": f"s{caller}-{round_}",
            "type": "schedule",
            "image": TEST_IMAGE,
            "schedule_expr": "0 0 1 1 *",
            "command": "true",
        }
        created = client.post("/v1/compute", json=body)
        listed = client.get("/v1/compute", params={"limit": 10})
        answers = [created, listed]
        if created.status_code == 201:
            answers.append(client.get(f"/v1/compute/{created.json()['id']}"))
        return answers

    traffic.run(4, create_and_read)
    try:
        wait_for(
            lambda: traffic.created_at_least(10, allowed={200, 201}),
            timeout=60,
            what="creates before",
        )
        postgres.halt()
        try:
            wait_for(lambda: traffic.count(503) >= 8, timeout=30, what="503s while it is down")
            # A load balancer's health check takes both replicas out meanwhile.
            for replica in replicas:
                wait_for(lambda r=replica: ready(r) == 503, timeout=10, what="not ready")
        finally:
            postgres.resume()
        at_resume = len(traffic.created)
        wait_for(
            lambda: traffic.created_at_least(at_resume + 10, allowed={200, 201, 503}),
            timeout=60,
            what="creates acknowledged again without a restart",
        )
    finally:
        traffic.stop()

    assert traffic.failures == []
    statuses = {answer.status_code for answer in traffic.answers}
    assert statuses <= {200, 201, 503}, statuses
    unavailable = [answer for answer in traffic.answers if answer.status_code == 503]
    assert unavailable and all(a.headers.get("Retry-After") for a in unavailable)
    assert {a.json()["code"] for a in unavailable} == {"database_unavailable"}

    for replica in replicas:
        wait_for(lambda r=replica: ready(r) == 200, timeout=30, what="ready again")
    for client in clients:
        for workload_id in traffic.created:
            assert client.get(f"/v1/compute/{workload_id}").status_code == 200, workload_id
    wait_for(
        lambda: set(lease_holders(a)) == CONTROLLERS,
        timeout=LEASE_SECONDS * 3,
        what="every controller to run again",
    )
    balance, ledger = balance_and_ledger(a, tenant.user_id)
    assert balance == ledger

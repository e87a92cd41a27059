"""Crash safety of changes and of billing: SIGKILL berth while scales, secret sets, runs and
shell sessions are in flight, restart it, three times over.

After each restart: a service ends at the last acknowledged replica count and on the last
acknowledged secret (or on the one write still in flight at the kill, which may or may not
have committed; never on an older one); every acknowledged run runs and keeps its result and
output; the engine holds only owned tasks; a shell cut by the kill is closed on the client
and recorded as ended; a token issued before the kill either opens a shell or is refused
with a 4xx (401 once expired), never a 500. At the end, with every task stopped, each run's
usage is consistent (its credits are its vCPU- and GB-seconds at the operator's prices;
its vCPU-seconds are no more than its allocation times the time its task ran, and not zero
if it ran) and the user's balance went down by exactly the sum of the runs' credits.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from berth.domain.billing import MINIMUM_BILLED_SECONDS
from berth.testing.waiting import wait_for
from tests.support import postgres
from tests.support.api import create, open_shell, wait_workload
from tests.support.engine import label_value
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine

ROUNDS = 3
JOB_COMMAND = "sleep 1; echo metered"
"""Long enough that some runs are running at each kill and end while berth is down."""
ROUNDING = 1e-8
"""The API rounds figures to 8 decimals."""
COST_ROUNDING = 0.5e-6 + ROUNDING
"""A run's cost is its usage priced and rounded once to a whole micro-credit."""
USAGE_TOLERANCE_SECONDS = 0.25
"""Slack on "no more than allocation x running time": timestamps are rounded in transit."""


@dataclass
class Writes:
    """One writer's sequential writes: the acknowledged ones, and the one in flight."""

    acked: list[Any] = field(default_factory=list)
    in_flight: Any = None

    def allowed_finals(self, initial: Any) -> set[Any]:
        """What the state may end on: the last acknowledged write, or the write in flight
        at the kill (it may have committed without its answer getting out)."""
        last = self.acked[-1] if self.acked else initial
        return {last} if self.in_flight is None else {last, self.in_flight}


class ChangeTraffic:
    """Scales one service, sets a secret on another, runs a job, each from its own thread
    and strictly one request at a time, so the order of writes is known."""

    def __init__(self, server: BerthServer, tenant: Tenant, ids: dict[str, str], tag: str):
        self.server, self.key, self.ids, self.tag = server, tenant.key, ids, tag
        self.scales, self.secrets, self.runs = Writes(), Writes(), Writes()
        self.stop = threading.Event()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=5
        )

    def _write(self, writes: Writes, value: Any, method: str, path: str, body: Any) -> bool:
        writes.in_flight = value
        try:
            with self.client() as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError:
            return False  # the kill: this write stays in flight
        assert response.status_code in (200, 201), response.text
        writes.acked.append(response.json()["id"] if value is None else value)
        writes.in_flight = None
        return True

    def scaler(self) -> None:
        path = f"/v1/compute/{self.ids['scaled']}/scale"
        count = 0
        while not self.stop.is_set():
            count = count % 3 + 1
            if not self._write(self.scales, count, "POST", path, {"count": count}):
                return

    def secret_setter(self) -> None:
        path = f"/v1/compute/{self.ids['secreted']}/secrets"
        n = 0
        while not self.stop.is_set():
            n += 1
            value = f"{self.tag}-{n}"
            if not self._write(self.secrets, value, "POST", path, {"key": "TOKEN", "value": value}):
                return

    def runner(self) -> None:
        path = f"/v1/compute/{self.ids['job']}/run"
        while not self.stop.is_set() and len(self.runs.acked) < 6:
            if not self._write(self.runs, None, "POST", path, None):
                return


@pytest.mark.timeout(420)
def test_sigkill_during_scales_secrets_runs_and_shells_loses_nothing_and_bills_exactly(
    crashable: BerthServer,
) -> None:
    server = crashable
    tenant = server.new_tenant(credits=10_000)
    api = tenant.client
    balance_before = server.admin("show-user", "--user", tenant.user_id)["credits"]
    small = {"type": "service", "command": "exec sleep 3600", "cpu": 0.25, "memory_mb": 64}
    ids = {
        "scaled": create(api, name="scaled", **small)["id"],
        "secreted": create(api, name="secreted", **small)["id"],
        "job": create(api, name="meter", type="job", command=JOB_COMMAND, cpu=0.5, memory_mb=128)[
            "id"
        ],
    }
    for name in ("scaled", "secreted"):
        wait_workload(api, ids[name], lambda s: s["status"] == "running", timeout=60)
    acked_runs: list[str] = []
    replicas, secret = 1, None
    chance = random.Random()
    ended_unseen = 0

    for round_number in range(ROUNDS):
        cut_session, spare_session = shell_sessions(tenant, ids["secreted"])
        with connect(cut_session["url"]) as shell:
            shell.send("echo shell-ready\n")
            read_ws_until(shell, "shell-ready")
            traffic = ChangeTraffic(server, tenant, ids, tag=f"r{round_number}")
            kill_during(server, traffic, needed=chance.randint(1, 4))
            # The open shell is cut: its client sees the connection close, not a hang.
            with pytest.raises(ConnectionClosed):
                while True:
                    shell.recv(timeout=15)
        # A run that ends while berth is down is settled at its real end (see the billing
        # checks); wait for one, bounded.
        ended_unseen += wait_for_a_task_to_exit(server, ids["job"])
        server.start()

        replicas = wait_for_scale(api, ids["scaled"], traffic.scales.allowed_finals(replicas))
        secret = wait_for_secret(api, ids["secreted"], traffic.secrets.allowed_finals(secret))
        acked_runs += traffic.runs.acked
        assert_runs_kept(api, ids["job"], acked_runs)
        assert_spare_token_works_or_is_refused(spare_session)
        cut = wait_for_session_ended(api, ids["secreted"], cut_session["id"])
        assert cut["ended_at"], cut
        assert_only_owned_tasks(server, api)

    assert_billing_exact(server, tenant, balance_before)
    print(f"rounds in which a run ended while berth was down: {ended_unseen} of {ROUNDS}")


def shell_sessions(tenant: Tenant, workload_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Two shell tokens for the service's task: one to connect now, one kept unused."""
    wait_workload(tenant.client, workload_id, lambda s: s["status"] == "running", timeout=60)
    sessions = []
    for _ in range(2):
        opened = open_shell(tenant, workload_id)["session"]
        url = f"{opened['streamUrl']}?token={opened['tokenValue']}"
        sessions.append({"id": opened["sessionId"], "url": url})
    return sessions[0], sessions[1]


def kill_during(server: BerthServer, traffic: ChangeTraffic, *, needed: int) -> None:
    """SIGKILL berth once each writer has had `needed` writes acknowledged (a different
    point of the traffic each round), while they keep writing."""
    threads = [
        threading.Thread(target=work)
        for work in (traffic.scaler, traffic.secret_setter, traffic.runner)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: (
                min(len(traffic.scales.acked), len(traffic.secrets.acked)) >= needed
                and len(traffic.runs.acked) >= 1
            ),
            timeout=60,
            what="traffic to be under way",
        )
        server.kill()
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=15)


SESSION_END_SECONDS = 2 * 15 + 10
"""On SQLite the restarted process ends the sessions of the one it replaces at start (a second
at most here). On a
shared database (PostgreSQL) the restarted process is a new replica: the killed one's sessions
end once its presence lease (15 s) has lapsed, at the next sweep (every 15 s)."""


def wait_for_session_ended(api: httpx.Client, workload_id: str, session_id: str) -> Any:
    def ended() -> Any:
        sessions = api.get(f"/v1/compute/{workload_id}/shell/sessions").json()["sessions"]
        found = next(s for s in sessions if s["id"] == session_id)
        return found if found["status"] == "ended" else None

    within = SESSION_END_SECONDS if postgres.wanted() else 1.0
    return wait_for(ended, timeout=within, interval=0.5, what="the cut session to end")


def wait_for_a_task_to_exit(server: BerthServer, job_id: str) -> bool:
    def exited() -> bool:
        return any(
            label_value(c["Labels"], "dev.berth.workload") == job_id and c["State"] == "exited"
            for c in server.containers()
        )

    try:
        return wait_for(exited, timeout=8, interval=0.2)
    except AssertionError:
        return False  # no run was under way at the kill: nothing ended unseen this round


def wait_for_scale(api: httpx.Client, workload_id: str, allowed: set[int]) -> int:
    state = wait_workload(
        api,
        workload_id,
        lambda s: s["status"] == "running" and s["running_tasks"] == s["replicas"],
        timeout=60,
        what="the scaled service to converge",
    )
    assert state["replicas"] in allowed, f"replicas {state['replicas']}, allowed {allowed}"
    replicas: int = state["replicas"]
    return replicas


def wait_for_secret(api: httpx.Client, workload_id: str, allowed: set[str | None]) -> str:
    """The service converges onto one task that sees an allowed secret value (a roll still
    under way right after the restart may show an older one until it finishes; one that
    never finishes, or ends on an older value, times out)."""
    seen: list[str] = []

    def one_task_with_an_allowed_value() -> str | None:
        runs = api.get(f"/v1/compute/{workload_id}/runs?limit=200").json()["runs"]
        live = [r for r in runs if r["status"] in ("pending", "running")]
        if len(live) != 1 or live[0]["status"] != "running":
            return None
        executed = api.post(
            f"/v1/compute/{workload_id}/exec",
            json={"command": 'echo "$TOKEN"', "task": live[0]["id"]},
        )
        if executed.status_code != 200:
            return None  # the task ended between the two calls (a roll)
        value = str(executed.json()["stdout"]).strip()
        seen[:] = [value]
        return value if value in allowed else None

    try:
        value = wait_for(one_task_with_an_allowed_value, timeout=60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"the task sees {seen}; allowed {allowed}") from None
    revealed = api.get(f"/v1/compute/{workload_id}/secrets/TOKEN/reveal")
    assert revealed.json()["value"] == value
    return value


def assert_runs_kept(api: httpx.Client, job_id: str, acked: list[str]) -> None:
    def all_finished() -> list[dict[str, Any]] | None:
        runs = api.get(f"/v1/compute/{job_id}/runs?limit=500").json()["runs"]
        done = all(r["status"] not in ("pending", "running") for r in runs)
        return runs if done else None

    runs = {r["id"]: r for r in wait_for(all_finished, timeout=90, what="every run to end")}
    for run_id in acked:
        assert run_id in runs, f"acknowledged run {run_id} was lost"
        assert (runs[run_id]["status"], runs[run_id]["exit_code"]) == ("succeeded", 0)
    logs = api.get(f"/v1/compute/{job_id}/runs/{acked[-1]}/logs").json()
    assert [e["message"] for e in logs["events"]] == ["metered"]


def assert_spare_token_works_or_is_refused(spare: dict[str, str]) -> None:
    try:
        with connect(spare["url"]) as ws:
            ws.send("echo spare-works; exit\n")
            read_ws_until(ws, "spare-works")
    except InvalidStatus as refused:
        assert 400 <= refused.response.status_code < 500, refused.response


def assert_only_owned_tasks(server: BerthServer, api: httpx.Client) -> None:
    def no_orphans() -> bool:
        live = {w["id"]: w for w in api.get("/v1/compute").json()["workloads"]}
        containers = server.containers()
        owners = [label_value(c["Labels"], "dev.berth.workload") for c in containers]
        expected = sum(w["running_tasks"] for w in live.values())
        return all(owner in live for owner in owners) and len(containers) == expected

    wait_for(no_orphans, timeout=60, what="the engine to hold only owned tasks")


def assert_billing_exact(server: BerthServer, tenant: Tenant, balance_before: float) -> None:
    api = tenant.client
    workloads = api.get("/v1/compute").json()["workloads"]
    for workload in workloads:
        if workload["type"] == "service":
            assert api.post(f"/v1/compute/{workload['id']}/stop").status_code == 200

    def every_run_ended() -> list[dict[str, Any]] | None:
        runs = [
            run
            for workload in workloads
            for run in api.get(f"/v1/compute/{workload['id']}/runs?limit=500").json()["runs"]
        ]
        return runs if all(r["finished_at"] for r in runs) else None

    runs = wait_for(every_run_ended, timeout=90, what="every task to stop")
    settings = server.settings()
    prices = (settings.price_per_vcpu_second, settings.price_per_gb_second)
    allocated = {w["id"]: w["cpu"] for w in workloads}
    for run in runs:
        assert run["credits"] == pytest.approx(
            run["vcpu_seconds"] * prices[0] + run["gb_seconds"] * prices[1], abs=COST_ROUNDING
        ), run
        if not run["started_at"]:
            assert run["vcpu_seconds"] == 0, run
            continue
        ran = (parse(run["finished_at"]) - parse(run["started_at"])).total_seconds()
        billed = max(ran, MINIMUM_BILLED_SECONDS)
        cpu = allocated[run["workload_id"]]
        # Nothing counted twice or past the task's end (or its minimum), nothing lost.
        assert run["vcpu_seconds"] <= cpu * (billed + USAGE_TOLERANCE_SECONDS), run
        assert run["vcpu_seconds"] >= cpu * (billed - USAGE_TOLERANCE_SECONDS), run
        assert run["vcpu_seconds"] > 0, f"a run that ran was billed nothing: {run}"
    charged = sum(run["credits"] for run in runs)
    balance_after = server.admin("show-user", "--user", tenant.user_id)["credits"]
    # Balances and costs are whole micro-credits, so they agree exactly but for the 8-decimal
    # rounding in transit; a lost or doubled meter tick of the smallest task here (0.25 vCPU
    # for 1 s) would be 2.5e-5 credits, far above that.
    assert balance_before - balance_after == pytest.approx(charged, abs=ROUNDING * (len(runs) + 2))
    print(
        f"\n{len(runs)} runs billed {charged:.6f} credits; "
        f"the balance went down by {balance_before - balance_after:.6f}"
    )


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)

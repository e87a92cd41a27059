"""Scale to zero: idle services stop, and a request wakes them without failing.

`IdleScaler` stops an opted-in service (`scale_to_zero`) once no request reached it for its
`idle_timeout_seconds`; activity is what the HTTP gateway reports for each routed request.
`ServiceWaker` is what the gateway calls for a request to a service without a running task:
it resumes a paused service or dev box (whose routes leave its frozen tasks out), or starts
the service (one wake shared by every request that arrives meanwhile, as Knative's
activator does), waits until a task accepts TCP connections, and hands back the route, so the
request is held and forwarded rather than answered with an error. A wake that takes longer
than the wake timeout answers 504. A dev box (a container of the Containers API) is not
woken: a request through its ingress rules is answered 503 saying why nothing serves it
(stopped, and how to start it; or not running yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from berth.domain import activity, containers, pausing, workloads
from berth.domain.context import Domain
from berth.domain.errors import NotFound, PaymentRequired
from berth.domain.events import Event
from berth.gateway.http.proxy import WakeOutcome
from berth.gateway.http.route_table import LoopbackAddress, Route, RouteTable
from berth.runtime.base import Runtime, RuntimeDriverError

log = logging.getLogger("berth.gateway")

PROBE_INTERVAL = 0.01
INSIDE_ONLY_SECONDS = 1.0
"""For this long a wake asks only inside the task whether it listens (see `_accepts`)."""
SETTLE_SECONDS = 0.05


class ServiceWaker:
    def __init__(
        self,
        domain: Domain,
        table: RouteTable,
        runtime: Runtime,
        *,
        http_port: int,
        timeout: float,
        start_now: Callable[[str], None] | None = None,
    ) -> None:
        """`start_now(run_id)` asks the controllers to start a promoted standby run at
        once, rather than on their next pass."""
        self._start_now = start_now
        self._domain = domain
        self._table = table
        self._http_port = http_port
        self._runtime = runtime
        self._timeout = timeout
        self._waking: dict[tuple[str, int], asyncio.Task[WakeOutcome]] = {}

    async def wake(self, workload_id: str, listen_port: int) -> WakeOutcome:
        key = (workload_id, listen_port)
        task = self._waking.get(key)
        if task is None:
            task = asyncio.create_task(self._wake(workload_id, listen_port))
            self._waking[key] = task
            task.add_done_callback(lambda _t: self._waking.pop(key, None))
        return await asyncio.shield(task)

    async def _wake(self, workload_id: str, listen_port: int) -> WakeOutcome:
        try:
            resumed = await pausing.wake_workload(self._domain, workload_id)
            if resumed:
                log.info("resuming paused %s for a request", workload_id)
        except RuntimeDriverError as exc:
            return WakeOutcome(None, 503, "resume_failed", f"{workload_id}: {exc}")
        try:
            if resumed:
                pass  # it was paused: a service or dev box that runs, only frozen
            elif (wake := await workloads.wake_service(self._domain, workload_id)).woken:
                log.info("waking %s for a request", workload_id)
                if wake.standby_run_id is not None and self._start_now is not None:
                    self._start_now(wake.standby_run_id)
        except NotFound:
            # Dev boxes are never woken by requests: their users stop them on purpose.
            unserved = await containers.why_unserved(self._domain, workload_id)
            if unserved is not None:
                return WakeOutcome(None, 503, unserved.code, unserved.message)
            return WakeOutcome(None, 503, "no_route", f"no service {workload_id}")
        except PaymentRequired as exc:
            return WakeOutcome(None, 503, "no_credits", f"{workload_id}: {exc.message}")
        started = time.monotonic()
        deadline = started + self._timeout
        while time.monotonic() < deadline:
            route = self._table.routes().get((workload_id, listen_port))
            patient = time.monotonic() - started > INSIDE_ONLY_SECONDS
            if route is not None and route.upstreams and await self._accepts(route, patient):
                return WakeOutcome(route)
            await self._table.wait_changed(PROBE_INTERVAL)
        return WakeOutcome(
            None,
            504,
            "wake_timeout",
            f"workload {workload_id} did not start answering within {self._timeout:g}s",
        )

    async def _accepts(self, route: Route, patient: bool) -> bool:
        """Whether a task of the route accepts a TCP connection now.

        Asked inside the task when the route knows its task (exact, on its loopback and its
        network address alike): the engine's port publisher accepts on the host port even
        before the task listens, then closes the connection when the task refuses it, and
        on a busy machine that close can come late. Only for an upstream whose task is not
        known does a connection to the published port that stays open for `SETTLE_SECONDS`
        count as accepted (after `patient` waiting).
        """
        for upstream in route.upstreams:
            inside = upstream.inside if isinstance(upstream, LoopbackAddress) else upstream
            if inside is not None:
                try:
                    (await self._runtime.open_port(inside.task_id, inside.port)).close()
                    return True
                except (OSError, RuntimeDriverError):
                    continue
            if not patient or not isinstance(upstream, LoopbackAddress):
                continue
            try:
                reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            except OSError:
                continue
            try:
                closed = await asyncio.wait_for(reader.read(1), SETTLE_SECONDS) == b""
            except TimeoutError:
                closed = False
            except OSError:
                closed = True
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if not closed:
                return True
        return False


class IdleScaler:
    """Stops idle services and pauses idle dev boxes (`box_idle_seconds`, 0: never). Use
    reaches every replica but the scaler runs on one (the `idle-scaler` lease holder), so
    each replica announces the requests it serves and the SSH logins and terminals it holds
    open (`berth.domain.activity`), and every replica's scaler follows them
    (`follow_activity`), whether it runs now or may take over later."""

    def __init__(self, domain: Domain, *, interval: float, box_idle_seconds: int = 0) -> None:
        self._domain = domain
        self._interval = interval
        self._box_idle = timedelta(seconds=box_idle_seconds)
        self._last_request: dict[str, datetime] = {}
        self._announced: dict[str, datetime] = {}

    def saw_request(self, workload_id: str) -> None:
        now = self._domain.clock.now()
        self._note(workload_id, now)
        announced = self._announced.get(workload_id)
        if announced is None or (now - announced).total_seconds() >= activity.ANNOUNCE_SECONDS:
            self._announced[workload_id] = now
            activity.announce(self._domain, workload_id, now)

    def heard(self, event: Event) -> None:
        """Note a use another replica (or this one) announced; other events are ignored."""
        at = activity.heard_at(event)
        if at is not None and event.workload_id is not None:
            self._note(event.workload_id, at)

    async def follow_activity(self) -> None:
        """Forever: announce the uses this replica holds open, and note the uses every
        replica announces."""
        subscription = self._domain.bus.subscribe()
        announcer = asyncio.create_task(activity.announce_open_uses(self._domain))
        try:
            async for event in subscription:
                self.heard(event)
        finally:
            announcer.cancel()
            subscription.close()

    def _note(self, workload_id: str, at: datetime) -> None:
        last = self._last_request.get(workload_id)
        if last is None or at > last:
            self._last_request[workload_id] = at

    async def scale_idle_services(self) -> None:
        now = self._domain.clock.now()
        for workload in await workloads.idle_candidates(self._domain):
            last = max(
                self._last_request.get(workload.id, workload.updated_at), workload.updated_at
            )
            if now - last < timedelta(seconds=workload.idle_timeout_seconds):
                continue
            if await workloads.scale_idle_service_to_zero(
                self._domain, workload.id, idle_since=last
            ):
                log.info("%s scaled to zero (idle %ss)", workload.id, workload.idle_timeout_seconds)
        if self._box_idle:
            await self.pause_idle_boxes()

    async def pause_idle_boxes(self) -> None:
        """Pause the running dev boxes nobody used for `box_idle_seconds` (use held open on
        this replica counts as now, whatever the announcements say)."""
        now = self._domain.clock.now()
        held = set(self._domain.uses.held())
        for box, since in await pausing.idle_boxes(self._domain):
            last = max(self._last_request.get(box.id, since), since)
            if box.id in held or now - last < self._box_idle:
                continue
            if await pausing.pause_idle_box(self._domain, box.id):
                log.info("dev box %s paused (unused for %s)", box.id, now - last)

    async def run_forever(self) -> None:
        """Scale idle services and pause idle dev boxes every interval (the server runs it
        while this replica holds the `idle-scaler` lease, `berth.control.leadership`)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.scale_idle_services()
            except Exception:
                log.exception("idle scaling failed; trying again")

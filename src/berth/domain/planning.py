"""Pure decisions of the reconciler: which tasks a workload should have, and its status.

Nothing here does I/O, so every rule is unit-tested one call at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berth.store.models import Run, Workload

HEALTHY_AFTER = timedelta(seconds=60)
"""A service task that ran at least this long before exiting resets the crash back-off."""


REPLICATED_TYPES = ("service", "container")
"""The types whose runs fill replica slots (`plan_service`); a job's or schedule's runs are
made by a change or a fire itself."""


@dataclass
class ServicePlan:
    create_slots: list[int] = field(default_factory=list)
    stop: list[tuple[str, str]] = field(default_factory=list)
    """(run id, reason) pairs."""
    promote: list[str] = field(default_factory=list)
    """Standby runs that now take their slot (their task is created: it only starts)."""
    create_standby: bool = False

    def changes_anything(self) -> bool:
        return bool(self.create_slots or self.stop or self.promote or self.create_standby)


def plan_service(workload: Workload, active: Sequence[Run], now: datetime) -> ServicePlan:
    """Compare a service's desired replicas with its active runs.

    Each replica slot should hold one run of the current generation. A run of an older
    generation (secrets changed) is stopped once its replacement runs, so a roll never leaves
    a slot empty while the new task starts; one that has not started yet is stopped at once.
    While the service backs off after a crash, no new run is created.

    A service that scales to zero keeps, while it sleeps, one standby run (current
    generation, slot 0) whose task the reconciler creates but does not start; waking then
    promotes it, so a wake costs a start, not a create and a start.
    """
    plan = ServicePlan()
    standby = [run for run in active if run.standby and not run.stop_requested]
    active = [run for run in active if not run.standby]
    live = [run for run in active if not run.stop_requested]
    sleeping = workload.deleted_at is not None or workload.desired_state != "running"
    wanted_standby = (
        workload.type == "service"
        and workload.scale_to_zero
        and workload.deleted_at is None
        and workload.replicas > 0
    )
    usable = [run for run in standby if run.generation == workload.generation]
    keep = usable[:1] if wanted_standby else []
    plan.stop += [(run.id, "replaced") for run in standby if run not in keep]
    backing_off = workload.backoff_until is not None and now < workload.backoff_until
    if sleeping:
        plan.stop += [(run.id, "stopped") for run in live]
        # (A standby whose task could not be created counts as a crash: backing off.)
        plan.create_standby = wanted_standby and not keep and not active and not backing_off
        return plan
    if keep and not backing_off and not any(run.slot == 0 for run in live):
        plan.promote.append(keep[0].id)
        active = [*active, keep[0]]
    elif keep:
        plan.stop.append((keep[0].id, "replaced"))  # awake without it: no longer needed
    # A container's volumes must not have two writers: its old task stops before the new
    # one starts. A service keeps serving: the new task starts first.
    surge = workload.type != "container"
    for slot in range(workload.replicas):
        in_slot = [run for run in active if run.slot == slot]
        current = [run for run in in_slot if run.generation == workload.generation]
        older = [run for run in in_slot if run.generation != workload.generation]
        live_current = [run for run in current if not run.stop_requested]
        live_older = [run for run in older if not run.stop_requested]
        if not live_current and not backing_off and (surge or not in_slot):
            plan.create_slots.append(slot)
        plan.stop += [(run.id, "replaced") for run in live_current[1:]]
        if not surge or (live_current and live_current[0].status == "running"):
            plan.stop += [(run.id, "replaced") for run in live_older]
        else:
            # An older run that never started serves nothing meanwhile: no reason to start it.
            plan.stop += [(run.id, "replaced") for run in live_older if run.status == "pending"]
    plan.stop += [(run.id, "scaled down") for run in live if run.slot >= workload.replicas]
    return plan


def crash_backoff(failures: int, *, max_seconds: float) -> timedelta:
    """1 s, 2 s, 4 s... after consecutive crashes, capped at `max_seconds`."""
    return timedelta(seconds=min(2 ** max(failures - 1, 0), max_seconds))


def ran_long_enough(run: Run, finished_at: datetime) -> bool:
    return run.started_at is not None and finished_at - run.started_at >= HEALTHY_AFTER


@dataclass(frozen=True)
class Status:
    status: str
    reason: str | None


def workload_status(
    workload: Workload, active: Sequence[Run], latest: Run | None, now: datetime
) -> Status:
    """What a reader should see, derived from desired state and runs (never guessed)."""
    if workload.deleted_at is not None:
        return Status("deleting", None)
    running = [run for run in active if run.status == "running"]
    if workload.type in ("service", "container"):
        return _service_status(workload, running, latest, now)
    if workload.type == "schedule":
        # The reason is the scheduler's (e.g. a skipped fire); it stays until the next fire.
        if running or any(run.status == "pending" for run in active):
            return Status("running", workload.status_reason)
        if workload.desired_state != "running":
            return Status("paused", None)
        return Status("scheduled", workload.status_reason)
    if latest is None:
        return Status("idle", None)
    return Status(latest.status, latest.status_reason)


def _service_status(
    workload: Workload, running: Sequence[Run], latest: Run | None, now: datetime
) -> Status:
    if workload.desired_state != "running" or workload.replicas == 0:
        if running:
            return Status("stopping", None)
        if workload.type == "container":
            return Status("stopped", stopped_dev_box_reason(workload, latest))
        return Status("stopped", "scaled to zero: a request or POST .../start wakes it")
    current = [run for run in running if run.generation == workload.generation]
    if workload.backoff_until is not None and now < workload.backoff_until and latest:
        wait = (workload.backoff_until - now).total_seconds()
        state = "failed" if latest.exit_code is None else "crash_loop"
        reason = f"{latest.status_reason or 'task exited'}; retrying in {wait:.0f}s"
        return Status(state, reason)
    if len(current) >= workload.replicas:
        if all(run.paused_at is not None for run in current):
            return Status("paused", paused_reason(workload))
        return Status("running", None)
    return Status("deploying", f"{len(current)}/{workload.replicas} tasks running")


UNTOLD_STOP_REASONS = frozenset({"stopped", "replaced", "scaled down"})
"""Stop reasons of a dev box's last run that do not say who stopped the dev box: then its
desired state does, and only the Containers API's stop (its user, or an agent with the
user's key) sets that."""


def stopped_dev_box_reason(workload: Workload, latest: Run | None) -> str:
    """Who stopped a dev box and how to start it. Unlike a service, a dev box is not woken
    by requests to its ingress rules: its user stopped it on purpose."""
    start = (
        f"POST /compute/containers/{workload.id}/start starts it; requests through its "
        "ingress rules do not"
    )
    reason = latest.stop_reason if latest is not None else None
    if reason is None or reason in UNTOLD_STOP_REASONS:
        return f"stopped by its user (POST /compute/containers/{workload.id}/stop); {start}"
    return f"stopped by berth ({reason}); {start}"


def paused_reason(workload: Workload) -> str:
    """A paused service's or dev box's status reason: what wakes it."""
    resume = (
        f"POST /compute/containers/{workload.id}/resume"
        if workload.type == "container"
        else f"POST /v1/compute/{workload.id}/resume"
    )
    return (
        f"frozen with its memory and files kept; {resume}, an exec, a shell, an SSH login or "
        "a request through the gateway resumes it"
    )

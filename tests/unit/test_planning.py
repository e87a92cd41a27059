"""The reconciler's pure decisions: replicas per slot, rolling, back-off, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from berth.domain.planning import crash_backoff, plan_service, workload_status
from berth.store.models import Run, Workload

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def service(**overrides: object) -> Workload:
    fields: dict[str, object] = {
        "id": "w1",
        "user_id": "u1",
        "type": "service",
        "replicas": 2,
        "desired_state": "running",
        "generation": 1,
        "deleted_at": None,
        "backoff_until": None,
        "status": "pending",
        "status_reason": None,
    }
    fields.update(overrides)
    return Workload(**fields)


def run(run_id: str, *, slot: int = 0, generation: int = 1, status: str = "running") -> Run:
    return Run(
        id=run_id,
        slot=slot,
        generation=generation,
        status=status,
        stop_requested=False,
        exit_code=None,
        status_reason=None,
    )


def test_a_new_service_gets_one_run_per_replica_slot() -> None:
    plan = plan_service(service(), [], NOW)
    assert plan.create_slots == [0, 1] and plan.stop == []


def test_a_slot_already_served_gets_nothing_new() -> None:
    plan = plan_service(service(), [run("a", slot=0), run("b", slot=1)], NOW)
    assert plan.create_slots == [] and plan.stop == []


def test_scaling_down_stops_the_highest_slots() -> None:
    plan = plan_service(service(replicas=1), [run("a", slot=0), run("b", slot=1)], NOW)
    assert plan.stop == [("b", "scaled down")]


def test_stopping_a_service_stops_every_run() -> None:
    plan = plan_service(service(desired_state="stopped"), [run("a"), run("b", slot=1)], NOW)
    assert sorted(plan.stop) == [("a", "stopped"), ("b", "stopped")]
    assert plan.create_slots == []


def test_a_new_generation_starts_beside_the_old_task_before_replacing_it() -> None:
    old = run("old", generation=1)
    plan = plan_service(service(replicas=1, generation=2), [old], NOW)
    assert plan.create_slots == [0] and plan.stop == []

    starting = run("new", generation=2, status="pending")
    plan = plan_service(service(replicas=1, generation=2), [old, starting], NOW)
    assert plan.create_slots == [] and plan.stop == []

    running = run("new", generation=2, status="running")
    plan = plan_service(service(replicas=1, generation=2), [old, running], NOW)
    assert plan.stop == [("old", "replaced")]


def test_an_older_run_that_never_started_is_stopped_at_once() -> None:
    # Planned before a roll (e.g. while the engine was away): it would serve nothing.
    never_started = run("old", generation=1, status="pending")
    plan = plan_service(service(replicas=1, generation=2), [never_started], NOW)
    assert plan.create_slots == [0] and plan.stop == [("old", "replaced")]


def test_no_replacement_starts_while_the_service_backs_off() -> None:
    plan = plan_service(service(replicas=1, backoff_until=NOW + timedelta(seconds=3)), [], NOW)
    assert plan.create_slots == []
    plan = plan_service(service(replicas=1, backoff_until=NOW - timedelta(seconds=1)), [], NOW)
    assert plan.create_slots == [0]


def test_back_off_doubles_up_to_its_cap() -> None:
    assert [crash_backoff(n, max_seconds=10).total_seconds() for n in range(1, 7)] == [
        1,
        2,
        4,
        8,
        10,
        10,
    ]


def test_status_comes_from_runs_not_from_guesses() -> None:
    svc = service(replicas=2)
    assert workload_status(svc, [], None, NOW).status == "deploying"
    both = [run("a"), run("b", slot=1)]
    assert workload_status(svc, both, None, NOW).status == "running"
    stopped = service(desired_state="stopped")
    assert workload_status(stopped, [], None, NOW).status == "stopped"
    crashed = run("c", status="failed")
    crashed.exit_code, crashed.status_reason = 1, "exited with code 1"
    backing_off = service(backoff_until=NOW + timedelta(seconds=4))
    status = workload_status(backing_off, [], crashed, NOW)
    assert status.status == "crash_loop" and status.reason is not None
    assert "exited with code 1" in status.reason and "retrying in 4s" in status.reason


def test_a_stopped_dev_box_says_who_stopped_it_and_how_to_start_it() -> None:
    box = service(id="box1", type="container", replicas=1, desired_state="stopped")
    last = run("a", status="stopped")
    last.stop_reason = "stopped"
    status = workload_status(box, [], last, NOW)
    assert status.status == "stopped" and status.reason is not None
    assert "stopped by its user (POST /compute/containers/box1/stop)" in status.reason
    assert "POST /compute/containers/box1/start starts it" in status.reason
    assert "requests through its ingress rules do not" in status.reason
    assert "scaled to zero" not in status.reason and "wakes" not in status.reason
    # Never started at all, or last exited on its own: still its user's stop.
    assert workload_status(box, [], None, NOW).reason == status.reason
    # A stop berth made for a reason of its own says so.
    last.stop_reason = "no_credits"
    by_berth = workload_status(box, [], last, NOW).reason
    assert by_berth is not None and by_berth.startswith("stopped by berth (no_credits); ")


def test_a_stopped_service_keeps_its_scale_to_zero_wording() -> None:
    stopped = workload_status(service(desired_state="stopped"), [], None, NOW)
    assert stopped.reason == "scaled to zero: a request or POST .../start wakes it"

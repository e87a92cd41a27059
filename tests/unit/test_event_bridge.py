"""The event bus across replicas (`EventBus.bridge`/`receive`): what one replica publishes
reaches the others' subscribers once, and never comes back twice to its own. The wire here
hands every message to every bus, the sender included, as PostgreSQL's NOTIFY does."""

from __future__ import annotations

from berth.domain.events import Event, EventBus


def bridged(count: int) -> list[EventBus]:
    buses = [EventBus() for _ in range(count)]

    def wire(message: str) -> None:
        for bus in buses:
            bus.receive(message)

    for bus in buses:
        bus.bridge(wire)
    return buses


def test_an_event_reaches_every_replica_once() -> None:
    a, b, c = bridged(3)
    subs = [bus.subscribe() for bus in (a, b, c)]
    a.publish(Event("workload.status", user_id="u1", workload_id="w1", data={"status": "x"}))
    for sub in subs:
        assert sub.take_waiting() == [
            Event("workload.status", user_id="u1", workload_id="w1", data={"status": "x"})
        ]


def test_a_bus_without_a_bridge_delivers_locally_only() -> None:
    lone = EventBus()
    sub = lone.subscribe()
    lone.publish(Event("workload.changed", workload_id="w1"))
    assert sub.take_waiting() == [Event("workload.changed", workload_id="w1")]


def test_a_malformed_message_is_ignored() -> None:
    (bus,) = bridged(1)
    sub = bus.subscribe()
    for message in ("not json", "{}", '{"origin": "x", "event": {"nope": 1}}'):
        bus.receive(message)
    assert sub.take_waiting() == []


def test_resync_tells_subscribers_events_may_be_lost_and_wakes_the_controllers() -> None:
    (bus,) = bridged(1)
    sub = bus.subscribe()
    bus.resync()
    assert sub.take_overflow()
    assert sub.take_waiting() == [Event("workload.changed")]

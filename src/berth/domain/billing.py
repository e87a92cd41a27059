"""Allocation-based metering: usage accrues for the resources a task holds while it runs.

vCPU-seconds = allocated vCPUs x running seconds; GB-seconds = allocated memory in GiB
(`memory_mb / 1024`) x running seconds; credits = the two times the operator's prices. A
paused task (frozen by the engine, its memory kept) holds its memory but no CPU: its paused
seconds accrue GB-seconds and no vCPU-seconds. Usage is
written in small increments (each meter tick, and once more when a task ends), so a crash of
berth loses at most one tick, and `metered_until` makes every increment idempotent. When a
task's end is recorded, its usage is settled to exactly its billed time, from the engine's
start to the engine's finish and at least `MINIMUM_BILLED_SECONDS`: what ticks missed is
charged, and ticks that ran past it (the task ended unseen, e.g. while berth was down, and a
tick after the restart charged the run up to then) are refunded.

Money is integer micro-credits. A run's cost is always its whole usage priced and rounded
once (`cost_micro`), and each increment charged is the difference from what was charged
before, so increments never add up rounding errors: a run costs the same however many ticks
metered it. The caller posts the returned amount to the ledger (`berth.domain.ledger`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from berth.domain.context import Pricing
from berth.domain.errors import PaymentRequired
from berth.store.models import MICRO_CREDITS_PER_CREDIT, Run, User

MINIMUM_BILLED_SECONDS = 1.0
"""A run whose task started is billed its exact running time, but at least this long: a task
that exits at once (`true`) still held its allocation while the engine started it."""


def cost_micro(vcpu_seconds: float, gb_seconds: float, pricing: Pricing) -> int:
    """The price of an amount of usage in micro-credits, rounded to the nearest (halves to
    even)."""
    credits = vcpu_seconds * pricing.per_vcpu_second + gb_seconds * pricing.per_gb_second
    return round(credits * MICRO_CREDITS_PER_CREDIT)


def _charge_to_usage(run: Run, pricing: Pricing) -> int:
    """Bring the run's cost to the price of its usage; the micro-credits newly charged."""
    cost = cost_micro(run.vcpu_seconds, run.gb_seconds, pricing)
    charged = cost - run.credits_micro
    run.credits_micro = cost
    return charged


def accrue_run_usage(run: Run, *, until: datetime, pricing: Pricing) -> int:
    """Add the usage of `run` from `metered_until` (or its start) to `until`.

    Returns the micro-credits charged, for the caller to take from the user's balance. A run
    that has not started, or is already metered past `until`, accrues nothing.
    """
    start = run.metered_until or run.started_at
    if start is None or run.started_at is None or until <= start:
        return 0
    seconds = (until - start).total_seconds()
    # vCPU time is recounted from the start, so a pause that began or ended between two
    # ticks is charged exactly, whatever the ticks saw.
    run.vcpu_seconds = run.cpu * unfrozen_seconds(run, started_at=run.started_at, until=until)
    run.gb_seconds += run.memory_mb / 1024 * seconds
    run.metered_until = until
    return _charge_to_usage(run, pricing)


def unfrozen_seconds(run: Run, *, started_at: datetime, until: datetime) -> float:
    """How long `run`'s task ran unfrozen from `started_at` to `until`.

    A pause under way ends the count at its start: while a task stays frozen, every tick
    computes the same figure from the same instants. (Running time less the pause's growing
    length is the same number on paper, but in floating point it can differ in the last
    bit from tick to tick, and a paused task's vCPU-seconds must not move.)
    """
    end = until if run.paused_at is None else min(until, run.paused_at)
    return max((end - started_at).total_seconds() - (run.paused_seconds or 0.0), 0.0)


def paused_seconds(run: Run, *, until: datetime) -> float:
    """How long `run`'s task was frozen up to `until`: its ended pauses, and the pause under
    way (if any) up to `until`."""
    seconds = run.paused_seconds or 0.0
    if run.paused_at is not None and until > run.paused_at:
        seconds += (until - run.paused_at).total_seconds()
    return seconds


def end_pause(run: Run, *, now: datetime) -> None:
    """Record that `run`'s task was unfrozen at `now`: the pause's seconds join the ended
    ones. Nothing if it was not paused."""
    if run.paused_at is None:
        return
    run.paused_seconds = paused_seconds(run, until=now)
    run.paused_at = None


def billed_seconds(started_at: datetime, finished_at: datetime) -> float:
    """A finished run's billed time: its running time, at least the minimum."""
    return max((finished_at - started_at).total_seconds(), MINIMUM_BILLED_SECONDS)


def settle_run_usage(run: Run, *, finished_at: datetime, pricing: Pricing) -> int:
    """Bring `run`'s usage to exactly `billed_seconds` from its start to `finished_at`
    (less its paused seconds for the vCPU part).

    Charges what ticks missed, or refunds what they charged past it; settling again changes
    nothing. Returns the net micro-credits charged (negative for a refund), for the caller
    to take from the user's balance. A run that never started is billed nothing.
    """
    if run.started_at is None:
        return 0
    seconds = billed_seconds(run.started_at, finished_at)
    frozen = paused_seconds(run, until=finished_at)
    run.vcpu_seconds = run.cpu * max(seconds - frozen, 0.0)
    run.gb_seconds = run.memory_mb / 1024 * seconds
    run.metered_until = run.started_at + timedelta(seconds=seconds)
    return _charge_to_usage(run, pricing)


def require_credits(user: User) -> None:
    """Refuse work that would start a task when the balance is used up."""
    if user.credits_micro <= 0:
        raise PaymentRequired(
            f"no credits left (balance {user.credits:.4f}); ask the operator to add credits"
        )

"""Allocation-based metering: usage accrues for the resources a task holds while it runs.

vCPU-seconds = allocated vCPUs x running seconds; GB-seconds = allocated memory in GiB
(`memory_mb / 1024`) x running seconds; credits = the two times the operator's prices. Usage is
written in small increments (each meter tick, and once more when a task ends), so a crash of
berth loses at most one tick, and `metered_until` makes every increment idempotent. When a
task's end is recorded, its usage is settled at the engine's finish time: ticks that ran past
it (the task ended unseen, e.g. while berth was down, and a tick after the restart charged the
run up to then) are refunded, so a run is charged exactly for the time its task ran.
"""

from __future__ import annotations

from datetime import datetime

from berth.domain.context import Pricing
from berth.domain.errors import PaymentRequired
from berth.store.models import Run, User


def accrue_run_usage(run: Run, user: User, *, until: datetime, pricing: Pricing) -> float:
    """Add the usage of `run` from `metered_until` (or its start) to `until`; debit `user`.

    Returns the credits charged. A run that has not started, or is already metered past
    `until`, accrues nothing.
    """
    start = run.metered_until or run.started_at
    if start is None or until <= start:
        return 0.0
    seconds = (until - start).total_seconds()
    vcpu_seconds = run.cpu * seconds
    gb_seconds = run.memory_mb / 1024 * seconds
    charged = vcpu_seconds * pricing.per_vcpu_second + gb_seconds * pricing.per_gb_second
    run.vcpu_seconds += vcpu_seconds
    run.gb_seconds += gb_seconds
    run.credits += charged
    run.metered_until = until
    user.credits -= charged
    return charged


def settle_run_usage(run: Run, user: User, *, finished_at: datetime, pricing: Pricing) -> float:
    """Bring `run`'s usage to exactly its start-to-`finished_at` time; adjust `user`.

    Accrues what is missing up to `finished_at`, or refunds what ticks charged past it.
    Returns the net credits charged (negative for a refund).
    """
    if run.metered_until is None or run.started_at is None or run.metered_until <= finished_at:
        return accrue_run_usage(run, user, until=finished_at, pricing=pricing)
    settle_at = max(finished_at, run.started_at)
    seconds = (run.metered_until - settle_at).total_seconds()
    vcpu_seconds = min(run.cpu * seconds, run.vcpu_seconds)
    gb_seconds = min(run.memory_mb / 1024 * seconds, run.gb_seconds)
    refund = vcpu_seconds * pricing.per_vcpu_second + gb_seconds * pricing.per_gb_second
    run.vcpu_seconds -= vcpu_seconds
    run.gb_seconds -= gb_seconds
    run.credits -= refund
    run.metered_until = settle_at
    user.credits += refund
    return -refund


def require_credits(user: User) -> None:
    """Refuse work that would start a task when the balance is used up."""
    if user.credits <= 0:
        raise PaymentRequired(
            f"no credits left (balance {user.credits:.4f}); ask the operator to add credits"
        )

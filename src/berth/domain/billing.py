"""Allocation-based metering: usage accrues for the resources a task holds while it runs.

vCPU-seconds = allocated vCPUs x running seconds; GB-seconds = allocated memory in GiB
(`memory_mb / 1024`) x running seconds; credits = the two times the operator's prices. Usage is
written in small increments (each meter tick, and once more when a task ends), so a crash of
berth loses at most one tick, and `metered_until` makes every increment idempotent.
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


def require_credits(user: User) -> None:
    """Refuse work that would start a task when the balance is used up."""
    if user.credits <= 0:
        raise PaymentRequired(
            f"no credits left (balance {user.credits:.4f}); ask the operator to add credits"
        )

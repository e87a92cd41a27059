"""Allocation-based metering: increments are exact and never counted twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from berth.domain.billing import accrue_run_usage, require_credits, settle_run_usage
from berth.domain.context import Pricing
from berth.domain.errors import PaymentRequired
from berth.store.models import Run, User

START = datetime(2026, 1, 1, tzinfo=UTC)
PRICES = Pricing(per_vcpu_second=0.001, per_gb_second=0.0005)


def fresh() -> tuple[Run, User]:
    run = Run(cpu=2.0, memory_mb=512, started_at=START, metered_until=None)
    run.vcpu_seconds = run.gb_seconds = run.credits = 0.0
    return run, User(credits=10.0)


def test_usage_is_allocated_resources_times_running_seconds() -> None:
    run, user = fresh()
    charged = accrue_run_usage(run, user, until=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == 20.0
    assert run.gb_seconds == 5.0
    assert charged == pytest.approx(20 * 0.001 + 5 * 0.0005)
    assert user.credits == pytest.approx(10.0 - charged)


def test_ticks_add_up_and_a_repeated_tick_adds_nothing() -> None:
    run, user = fresh()
    for second in (3, 7, 7, 10):
        accrue_run_usage(run, user, until=START + timedelta(seconds=second), pricing=PRICES)
    assert run.vcpu_seconds == 20.0
    assert run.metered_until == START + timedelta(seconds=10)


def test_a_run_that_never_started_accrues_nothing() -> None:
    run, user = fresh()
    run.started_at = None
    assert accrue_run_usage(run, user, until=START, pricing=PRICES) == 0.0
    assert user.credits == 10.0


def test_work_is_refused_once_the_balance_is_used_up() -> None:
    require_credits(User(credits=0.5))
    with pytest.raises(PaymentRequired, match="no credits left"):
        require_credits(User(credits=0.0))


def test_settling_at_the_finish_accrues_what_the_ticks_missed() -> None:
    run, user = fresh()
    accrue_run_usage(run, user, until=START + timedelta(seconds=4), pricing=PRICES)
    settle_run_usage(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == 20.0 and run.metered_until == START + timedelta(seconds=10)
    assert user.credits == pytest.approx(10.0 - run.credits)


def test_ticks_past_the_task_finish_are_refunded_when_it_is_settled() -> None:
    # The task ended at 10 s unseen (berth was down); a tick after the restart charged 60 s.
    run, user = fresh()
    accrue_run_usage(run, user, until=START + timedelta(seconds=60), pricing=PRICES)
    refunded = settle_run_usage(
        run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES
    )
    assert run.vcpu_seconds == pytest.approx(20.0)
    assert run.gb_seconds == pytest.approx(5.0)
    assert run.credits == pytest.approx(20 * 0.001 + 5 * 0.0005)
    assert refunded == pytest.approx(-50 * (2 * 0.001 + 0.5 * 0.0005))
    assert user.credits == pytest.approx(10.0 - run.credits)
    assert run.metered_until == START + timedelta(seconds=10)
    # Settling again changes nothing.
    assert (
        settle_run_usage(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES) == 0
    )


def test_a_run_that_started_is_billed_at_least_one_second() -> None:
    run, user = fresh()
    settle_run_usage(run, user, finished_at=START + timedelta(milliseconds=1), pricing=PRICES)
    assert (run.vcpu_seconds, run.gb_seconds) == (2.0, 0.5)
    assert run.credits == pytest.approx(2.0 * 0.001 + 0.5 * 0.0005)
    assert user.credits == pytest.approx(10.0 - run.credits)
    # A finish stamped at the start itself is billed the same minimum, once.
    again, payer = fresh()
    settle_run_usage(again, payer, finished_at=START, pricing=PRICES)
    settle_run_usage(again, payer, finished_at=START, pricing=PRICES)
    assert again.credits == pytest.approx(run.credits) and payer.credits == user.credits


def test_the_minimum_also_holds_when_ticks_charged_more_or_less() -> None:
    over, over_user = fresh()
    accrue_run_usage(over, over_user, until=START + timedelta(seconds=3), pricing=PRICES)
    settle_run_usage(over, over_user, finished_at=START + timedelta(seconds=0.2), pricing=PRICES)
    under, under_user = fresh()
    accrue_run_usage(under, under_user, until=START + timedelta(seconds=0.5), pricing=PRICES)
    settle_run_usage(under, under_user, finished_at=START + timedelta(seconds=0.7), pricing=PRICES)
    for run, user in ((over, over_user), (under, under_user)):
        assert run.vcpu_seconds == pytest.approx(2.0)
        assert run.credits == pytest.approx(2.0 * 0.001 + 0.5 * 0.0005)
        assert user.credits == pytest.approx(10.0 - run.credits)
        assert run.metered_until == START + timedelta(seconds=1)


def test_a_run_that_never_started_is_billed_nothing_when_settled() -> None:
    run, user = fresh()
    run.started_at = None
    assert settle_run_usage(run, user, finished_at=START, pricing=PRICES) == 0.0
    assert (run.credits, user.credits) == (0.0, 10.0)

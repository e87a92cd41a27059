"""Allocation-based metering: increments are exact and never counted twice."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from berth.domain.billing import (
    accrue_run_usage,
    cost_micro,
    end_pause,
    require_credits,
    settle_run_usage,
)
from berth.domain.context import Pricing
from berth.domain.errors import Invalid, PaymentRequired
from berth.domain.ledger import micro_credits
from berth.store.models import Run, User, credits_of

START = datetime(2026, 1, 1, tzinfo=UTC)
PRICES = Pricing(per_vcpu_second=0.001, per_gb_second=0.0005)


def fresh() -> tuple[Run, User]:
    run = Run(cpu=2.0, memory_mb=512, started_at=START, metered_until=None)
    run.vcpu_seconds = run.gb_seconds = 0.0
    run.credits_micro = 0
    return run, User(credits_micro=10_000_000)


def accrue(run: Run, user: User, *, until: datetime, pricing: Pricing) -> float:
    """`accrue_run_usage`, its charge taken from `user` as the meter does; the credits."""
    charged = accrue_run_usage(run, until=until, pricing=pricing)
    user.credits_micro -= charged
    return credits_of(charged)


def settle(run: Run, user: User, *, finished_at: datetime, pricing: Pricing) -> float:
    charged = settle_run_usage(run, finished_at=finished_at, pricing=pricing)
    user.credits_micro -= charged
    return credits_of(charged)


def test_usage_is_allocated_resources_times_running_seconds() -> None:
    run, user = fresh()
    charged = accrue(run, user, until=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == 20.0
    assert run.gb_seconds == 5.0
    assert charged == pytest.approx(20 * 0.001 + 5 * 0.0005)
    assert user.credits == pytest.approx(10.0 - charged)


def test_ticks_add_up_and_a_repeated_tick_adds_nothing() -> None:
    run, user = fresh()
    for second in (3, 7, 7, 10):
        accrue(run, user, until=START + timedelta(seconds=second), pricing=PRICES)
    assert run.vcpu_seconds == 20.0
    assert run.metered_until == START + timedelta(seconds=10)


def test_a_run_that_never_started_accrues_nothing() -> None:
    run, user = fresh()
    run.started_at = None
    assert accrue(run, user, until=START, pricing=PRICES) == 0.0
    assert user.credits == 10.0


def test_work_is_refused_once_the_balance_is_used_up() -> None:
    require_credits(User(credits_micro=1))
    with pytest.raises(PaymentRequired, match="no credits left"):
        require_credits(User(credits_micro=0))


def test_settling_at_the_finish_accrues_what_the_ticks_missed() -> None:
    run, user = fresh()
    accrue(run, user, until=START + timedelta(seconds=4), pricing=PRICES)
    settle(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == 20.0 and run.metered_until == START + timedelta(seconds=10)
    assert user.credits == pytest.approx(10.0 - run.credits)


def test_ticks_past_the_task_finish_are_refunded_when_it_is_settled() -> None:
    # The task ended at 10 s unseen (berth was down); a tick after the restart charged 60 s.
    run, user = fresh()
    accrue(run, user, until=START + timedelta(seconds=60), pricing=PRICES)
    refunded = settle(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == pytest.approx(20.0)
    assert run.gb_seconds == pytest.approx(5.0)
    assert run.credits == pytest.approx(20 * 0.001 + 5 * 0.0005)
    assert refunded == pytest.approx(-50 * (2 * 0.001 + 0.5 * 0.0005))
    assert user.credits == pytest.approx(10.0 - run.credits)
    assert run.metered_until == START + timedelta(seconds=10)
    # Settling again changes nothing.
    assert settle(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES) == 0


def test_a_run_that_started_is_billed_at_least_one_second() -> None:
    run, user = fresh()
    settle(run, user, finished_at=START + timedelta(milliseconds=1), pricing=PRICES)
    assert (run.vcpu_seconds, run.gb_seconds) == (2.0, 0.5)
    assert run.credits == pytest.approx(2.0 * 0.001 + 0.5 * 0.0005)
    assert user.credits == pytest.approx(10.0 - run.credits)
    # A finish stamped at the start itself is billed the same minimum, once.
    again, payer = fresh()
    settle(again, payer, finished_at=START, pricing=PRICES)
    settle(again, payer, finished_at=START, pricing=PRICES)
    assert again.credits == pytest.approx(run.credits) and payer.credits == user.credits


def test_the_minimum_also_holds_when_ticks_charged_more_or_less() -> None:
    over, over_user = fresh()
    accrue(over, over_user, until=START + timedelta(seconds=3), pricing=PRICES)
    settle(over, over_user, finished_at=START + timedelta(seconds=0.2), pricing=PRICES)
    under, under_user = fresh()
    accrue(under, under_user, until=START + timedelta(seconds=0.5), pricing=PRICES)
    settle(under, under_user, finished_at=START + timedelta(seconds=0.7), pricing=PRICES)
    for run, user in ((over, over_user), (under, under_user)):
        assert run.vcpu_seconds == pytest.approx(2.0)
        assert run.credits == pytest.approx(2.0 * 0.001 + 0.5 * 0.0005)
        assert user.credits == pytest.approx(10.0 - run.credits)
        assert run.metered_until == START + timedelta(seconds=1)


def test_a_run_that_never_started_is_billed_nothing_when_settled() -> None:
    run, user = fresh()
    run.started_at = None
    assert settle(run, user, finished_at=START, pricing=PRICES) == 0.0
    assert (run.credits, user.credits) == (0.0, 10.0)


def test_money_is_exact_however_many_ticks_metered_a_run() -> None:
    """A run's cost is its whole usage priced and rounded once: a thousand ticks of 7 ms
    charge, in integer micro-credits, exactly what one tick over the same time charges."""
    prices = Pricing(per_vcpu_second=0.0000137, per_gb_second=0.0000031)
    ticked, ticked_user = fresh()
    for tick in range(1, 1001):
        accrue(ticked, ticked_user, until=START + timedelta(milliseconds=7 * tick), pricing=prices)
    once, once_user = fresh()
    accrue(once, once_user, until=START + timedelta(milliseconds=7000), pricing=prices)
    assert ticked.credits_micro == once.credits_micro
    assert ticked.credits_micro == cost_micro(ticked.vcpu_seconds, ticked.gb_seconds, prices)
    assert ticked_user.credits_micro == once_user.credits_micro
    assert ticked_user.credits_micro + ticked.credits_micro == 10_000_000


def test_an_amount_that_is_not_a_finite_number_of_credits_is_refused_naming_the_field() -> None:
    for amount in (math.nan, math.inf, -math.inf, 1e20):
        with pytest.raises(Invalid) as refused:
            micro_credits(amount, field="add_credits")
        assert refused.value.field == "add_credits"
    assert micro_credits(1.5) == 1_500_000


def test_a_paused_task_accrues_memory_but_no_vcpu_time() -> None:
    # Runs 10 s, paused 20 s, runs 5 s: 15 s of vCPU time, 35 s of memory.
    run, user = fresh()
    accrue(run, user, until=START + timedelta(seconds=10), pricing=PRICES)
    run.paused_at = START + timedelta(seconds=10)
    paused = accrue(run, user, until=START + timedelta(seconds=30), pricing=PRICES)
    assert run.vcpu_seconds == 20.0
    assert paused == pytest.approx(20 * 0.5 * 0.0005)  # the memory part alone
    end_pause(run, now=START + timedelta(seconds=30))
    accrue(run, user, until=START + timedelta(seconds=35), pricing=PRICES)
    assert (run.vcpu_seconds, run.gb_seconds) == (30.0, 17.5)
    assert user.credits == pytest.approx(10.0 - run.credits)


def test_a_pause_between_two_ticks_is_charged_exactly() -> None:
    # The ticks at 4 s and 10 s did not see the pause from 5 s to 8 s, which ended meanwhile.
    run, user = fresh()
    accrue(run, user, until=START + timedelta(seconds=4), pricing=PRICES)
    run.paused_at = START + timedelta(seconds=5)
    end_pause(run, now=START + timedelta(seconds=8))
    accrue(run, user, until=START + timedelta(seconds=10), pricing=PRICES)
    assert run.vcpu_seconds == pytest.approx(2.0 * 7)
    assert run.gb_seconds == pytest.approx(0.5 * 10)


def test_settling_a_run_that_ends_paused_charges_no_vcpu_time_for_the_pause() -> None:
    run, user = fresh()
    run.paused_at = START + timedelta(seconds=4)
    accrue(run, user, until=START + timedelta(seconds=6), pricing=PRICES)
    settle(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES)
    assert (run.vcpu_seconds, run.gb_seconds) == (8.0, 5.0)
    assert user.credits == pytest.approx(10.0 - run.credits)
    # Settling again changes nothing.
    assert settle(run, user, finished_at=START + timedelta(seconds=10), pricing=PRICES) == 0


def test_a_paused_tasks_vcpu_seconds_stay_exactly_put_from_tick_to_tick() -> None:
    # Instants to the microsecond and half a vCPU: the figure lies on a rounding boundary of
    # the API's six decimals, where a last-bit difference between ticks would show.
    run, user = fresh()
    run.cpu = 0.5
    run.started_at = START + timedelta(microseconds=123_457)
    run.paused_at = run.started_at + timedelta(microseconds=93_543)
    seen = set()
    for tick in range(1, 8):
        until = run.paused_at + timedelta(seconds=2 * tick, microseconds=104_729 * tick)
        accrue(run, user, until=until, pricing=PRICES)
        seen.add(run.vcpu_seconds)
    assert seen == {0.5 * 0.093543}

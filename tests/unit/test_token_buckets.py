"""Token buckets with a hand-driven clock: bursts, refill, Retry-After, and bounded memory."""

from __future__ import annotations

import pytest

from berth.token_buckets import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_served_then_refused_with_whole_seconds_to_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.5, burst=3, clock=clock)
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, True]
    refused = buckets.take("a")
    assert not refused.allowed and refused.retry_after == 2  # one token per 2 s
    clock.now += 0.5
    assert buckets.take("a").retry_after == 2  # 1.5 s left, rounded up
    clock.now += 1.5
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed


def test_buckets_are_independent_and_refill_only_to_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=2, clock=clock)
    assert buckets.take("a").allowed and buckets.take("a").allowed
    assert not buckets.take("a").allowed
    assert buckets.take("b").allowed
    clock.now += 3600
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, False]


def test_peek_consumes_nothing_and_creates_no_bucket() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, clock=clock)
    assert buckets.peek("a").allowed and len(buckets) == 0
    buckets.take("a")
    assert not buckets.peek("a").allowed and buckets.peek("a").retry_after == 1
    buckets.forget("a")
    assert buckets.take("a").allowed


def test_idle_buckets_are_dropped_once_full_again() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=5, clock=clock)
    for caller in range(100):
        buckets.take(f"c{caller}")
    assert len(buckets) == 100
    clock.now += 5  # every bucket is full again
    for caller in range(60):
        buckets.take(f"new{caller}")
    assert len(buckets) == 60  # the 100 idle ones went, two per call


def test_memory_is_bounded_and_only_forgets_the_least_recently_used() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, max_buckets=3, clock=clock)
    for caller in ("a", "b", "c"):
        assert buckets.take(caller).allowed
    assert not buckets.take("a").allowed  # "a" is now the most recently used
    buckets.take("d")  # over the bound: "b", the least recently used, is forgotten
    assert len(buckets) == 3
    assert not buckets.take("a").allowed and not buckets.take("c").allowed
    assert buckets.take("b").allowed  # forgotten, so forgiven


def test_a_zero_rate_or_burst_is_not_a_bucket() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(rate=1, burst=0)

"""Token buckets per caller, in memory: O(1) per request and bounded in size.

Shared by the API's rate limit (a key per credential or client address) and the gateways'
connection limits (a key per client address), so it sits outside the layers. Each caller (a
key string) has a bucket holding up to `burst` tokens that refills at `rate` tokens per
second; a request (or new connection) takes one token or is refused with the whole seconds
until one is back. Buckets live in an insertion-ordered dict kept in least-recently-used
order. Each call drops up to two of the oldest buckets once they have been idle long enough to
be full again (a full bucket is the same as no bucket, so forgetting it changes nothing), and
the dict never holds more than `max_buckets`: past that the least recently used bucket is
dropped even if not yet full, which can only forgive a caller, never refuse one.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int
    """Whole seconds until a token is back (at least 1); 0 when allowed."""


class TokenBuckets:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._refill_seconds = burst / rate
        """An untouched bucket is full again after this long."""

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> Decision:
        """Take one token from `key`'s bucket if it has one."""
        now = self._clock()
        bucket = self._current(key, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Decision(allowed=True, retry_after=0)
        return Decision(allowed=False, retry_after=self._seconds_to_token(bucket))

    def peek(self, key: str) -> Decision:
        """Would `take` allow `key` now? Consumes nothing and creates no bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return Decision(allowed=True, retry_after=0)
        tokens = self._refilled(bucket, self._clock())
        if tokens >= 1:
            return Decision(allowed=True, retry_after=0)
        return Decision(allowed=False, retry_after=self._seconds_to_token(_Bucket(tokens, 0)))

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _current(self, key: str, now: float) -> _Bucket:
        self._evict_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = self._refilled(bucket, now)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)

    def _seconds_to_token(self, bucket: _Bucket) -> int:
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _evict_idle(self, now: float) -> None:
        for _ in range(2):
            if not self._buckets:
                return
            oldest_key, oldest = next(iter(self._buckets.items()))
            if now - oldest.updated < self._refill_seconds:
                return
            del self._buckets[oldest_key]

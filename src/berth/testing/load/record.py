"""What a load run saw: every request's latency and status, kept per operation.

A request counts as a failure when the server answered 5xx, when no answer came (a transport
error or a timeout: its outcome is unknown), or when the status was not one the operation
expects (the mix only sends valid requests, so a 4xx there is a bug too). Samples that start
outside the measuring window (the warm-up) are counted as failures if they fail, but their
latency is not kept, so figures describe the steady state.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FAILURES_KEPT = 50
"""Descriptions of the first failures are kept for the report; the rest are only counted."""


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LoadRecord:
    window_start: float = 0.0
    window_end: float = math.inf
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    transport_errors: int = 0
    unexpected: int = 0
    failures: list[str] = field(default_factory=list)
    extra_seconds: float = 0.0

    def set_window(self, start: float, seconds: float) -> None:
        """Only requests starting in [start, start + seconds) (monotonic clock) count."""
        self.window_start, self.window_end = start, start + seconds

    def _in_window(self, started: float) -> bool:
        return self.window_start <= started < self.window_end

    def answered(
        self, operation: str, *, started: float, status: int, expected: bool, detail: str = ""
    ) -> None:
        elapsed = time.monotonic() - started
        if self._in_window(started):
            self.latencies.setdefault(operation, []).append(elapsed)
            self.statuses[status] += 1
        if status >= 500:
            self.server_errors += 1
            self._failed(f"{operation}: {status} {detail[:300]}")
        elif not expected:
            self.unexpected += 1
            self._failed(f"{operation}: unexpected {status} {detail[:300]}")

    def no_answer(self, operation: str, *, started: float, error: BaseException) -> None:
        self.transport_errors += 1
        self._failed(f"{operation}: no answer after {time.monotonic() - started:.1f}s: {error!r}")

    def _failed(self, description: str) -> None:
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(description)

    def absorb(self, other: LoadRecord) -> None:
        """Add another record's requests, and its window's length to this one's (a figure
        measured in several parts, like the baseline's two halves)."""
        for operation, values in other.latencies.items():
            self.latencies.setdefault(operation, []).extend(values)
        self.statuses.update(other.statuses)
        self.server_errors += other.server_errors
        self.transport_errors += other.transport_errors
        self.unexpected += other.unexpected
        for failure in other.failures:
            self._failed(failure)
        self.extra_seconds += other.measured_seconds

    @property
    def measured_seconds(self) -> float:
        return self.window_end - self.window_start + self.extra_seconds

    @property
    def failed(self) -> int:
        return self.server_errors + self.transport_errors + self.unexpected

    def summary(self) -> dict[str, Any]:
        """Requests/s over the window, p50/p99 overall and per operation (ms)."""
        every = [v for values in self.latencies.values() for v in values]
        seconds = self.measured_seconds
        return {
            "requests": len(every),
            "seconds": round(seconds, 1),
            "requests_per_second": round(len(every) / seconds, 1) if seconds > 0 else None,
            "p50_ms": _ms(percentile(every, 50)),
            "p99_ms": _ms(percentile(every, 99)),
            "max_ms": _ms(max(every) if every else math.nan),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors_5xx": self.server_errors,
            "transport_errors": self.transport_errors,
            "unexpected_statuses": self.unexpected,
            "failures": self.failures,
            "operations": {
                name: {
                    "n": len(values),
                    "p50_ms": _ms(percentile(values, 50)),
                    "p99_ms": _ms(percentile(values, 99)),
                }
                for name, values in sorted(self.latencies.items())
            },
        }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 2)

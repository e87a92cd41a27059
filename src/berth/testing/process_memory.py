"""Memory and CPU of a server's process tree, read from /proc (Linux).

The figure that matters for "no growth over the run" is the resident set size (VmRSS) of the
server and every process it started, sampled at a fixed interval. `memory_growth` turns the
samples into the numbers a reader (or a test) judges: RSS after the warm-up, at the end, the
difference, and the slope of a least-squares line over the second half of the run, which a
leak shows as a steady climb while allocator noise (arenas, caches filling) does not.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
MIB = 2**20


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (through every thread's `children` list); gone ones skipped."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = list((PROC / str(current) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            pending.extend(int(child) for child in children if int(child) not in found)
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of one process in bytes; 0 when it is gone (or a zombie without memory)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    return sum(rss_bytes(p) for p in process_tree(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far; 0 when it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


@dataclass
class RssSampler:
    """Samples the tree's RSS every `interval` seconds while `run()` is awaited."""

    pid: int
    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, bytes)"""

    def sample(self) -> int:
        value = tree_rss_bytes(self.pid)
        self.samples.append((time.monotonic(), value))
        return value

    async def run(self) -> None:
        """Sample until cancelled, on a fixed schedule (a slow read does not shift it)."""
        next_at = time.monotonic()
        while True:
            self.sample()
            next_at += self.interval
            await asyncio.sleep(max(next_at - time.monotonic(), 0))


@dataclass(frozen=True)
class MemoryGrowth:
    start_mib: float
    """Before the load."""
    after_warmup_mib: float
    end_mib: float
    peak_mib: float
    growth_mib: float
    """`end_mib - after_warmup_mib`."""
    slope_mib_per_minute: float
    """Least-squares slope over the second half of the load."""
    samples: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in vars(self).items()}


def memory_growth(
    samples: list[tuple[float, int]], *, load_start: float, warmup_end: float, load_end: float
) -> MemoryGrowth:
    """Summarise samples of one run. RSS "after warm-up" and "at the end" are medians of the
    samples within 3 s of those moments, so one sample's noise does not decide them."""
    if not samples:
        raise ValueError("no memory samples")
    during = [(t, v / MIB) for t, v in samples if load_start <= t <= load_end + 1]
    before = [v / MIB for t, v in samples if t < load_start] or [during[0][1]]

    def around(moment: float) -> float:
        near = [v for t, v in during if abs(t - moment) <= 3] or [
            min(during, key=lambda s: abs(s[0] - moment))[1]
        ]
        return statistics.median(near)

    after_warmup = around(warmup_end + 1.5)
    end = around(load_end - 1.5)
    half = (load_start + load_end) / 2
    second_half = [(t, v) for t, v in during if t >= half]
    return MemoryGrowth(
        start_mib=before[-1],
        after_warmup_mib=after_warmup,
        end_mib=end,
        peak_mib=max(v for _t, v in during),
        growth_mib=end - after_warmup,
        slope_mib_per_minute=_slope(second_half) * 60,
        samples=len(during),
    )


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [t for t, _v in points]
    ys = [v for _t, v in points]
    return statistics.linear_regression(xs, ys).slope

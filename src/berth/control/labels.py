"""Labels berth puts on every task it launches, and reads back to know what a task is for."""

from __future__ import annotations

INSTANCE = "dev.berth.instance"
"""Which berth installation owns the task (several may share one engine)."""
WORKLOAD = "dev.berth.workload"
RUN = "dev.berth.run"
USER = "dev.berth.user"
GENERATION = "dev.berth.generation"


def instance_selector(instance_id: str) -> dict[str, str]:
    return {INSTANCE: instance_id}

"""Labels berth puts on every task it launches, and reads back to know what a task is for."""

from __future__ import annotations

INSTANCE = "dev.berth.instance"
"""Which berth installation owns the task (several may share one engine)."""
WORKLOAD = "dev.berth.workload"
RUN = "dev.berth.run"
USER = "dev.berth.user"
GENERATION = "dev.berth.generation"
POOLED = "dev.berth.pooled"
"""`1` on a task made ahead for a warm pool, for good (labels cannot change): whether it
is still a pool's or was taken is the database's to say (its workload exists or not)."""
POOL = "dev.berth.pool"
"""On a warm pool's task: the profile it was made for."""
VOLUME_PATH = "dev.berth.path"
"""On a container's volume: the mount path it holds."""


def instance_selector(instance_id: str) -> dict[str, str]:
    return {INSTANCE: instance_id}


def workload_selector(instance_id: str, workload_id: str) -> dict[str, str]:
    return {INSTANCE: instance_id, WORKLOAD: workload_id}


def pool_selector(instance_id: str) -> dict[str, str]:
    return {INSTANCE: instance_id, POOLED: "1"}


def tenant_network(instance_id: str, user_id: str) -> str:
    """Each user's tasks share a network of their own and no other user's."""
    return f"berth-{instance_id}-{user_id.removeprefix('usr_')}"


def tenant_network_labels(instance_id: str, user_id: str) -> dict[str, str]:
    return {INSTANCE: instance_id, USER: user_id}

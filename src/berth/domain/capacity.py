"""Sizes no engine could ever give: a task larger than the engine's machine.

The engine refuses a task whose CPU limit is more than its machine's CPUs ("Range of CPUs is
from 0.01 to 2.00"), and memory beyond the machine's can never be had, so a workload accepted
with such a size fails forever. Creates compare the size with what the runtime reports
(`Runtime.capacity`, cached by the driver) and refuse it at once, naming the field and the
machine's limit. The capacity is read before the creating transaction (no engine I/O under
the store's write lock); when the engine cannot be reached and was never read, the check is
skipped, since a create only writes desired state and must work while the engine is away.
"""

from __future__ import annotations

from berth.domain.context import Domain
from berth.domain.errors import Invalid
from berth.runtime.base import Capacity, RuntimeDriverError


async def engine_capacity(domain: Domain) -> Capacity | None:
    """The engine machine's CPUs and memory, or None when they cannot be known now."""
    if domain.runtime is None:
        return None
    try:
        return await domain.runtime.capacity()
    except RuntimeDriverError:
        return None


def refuse_beyond_engine(
    capacity: Capacity | None, *, cpu: float, memory_mb: int, instance_type: str | None = None
) -> None:
    """Raise `Invalid` if a task of `cpu` vCPUs and `memory_mb` MB cannot run on the engine;
    the CPU error names `instance_type` when the size came from one."""
    if capacity is None:
        return
    if capacity.cpus > 0 and cpu > capacity.cpus:
        machine = f"the engine's machine has {capacity.cpus:g} CPUs"
        if instance_type is not None:
            raise Invalid(
                f"instance_type: {instance_type} has {cpu:g} vCPUs; {machine}",
                field="instance_type",
            )
        raise Invalid(f"cpu: at most {capacity.cpus:g} vCPUs; {machine}", field="cpu")
    memory_limit_mb = capacity.memory_bytes // 2**20
    if memory_limit_mb > 0 and memory_mb > memory_limit_mb:
        raise Invalid(
            f"memory_mb: at most {memory_limit_mb} MB; the engine's machine has "
            f"{memory_limit_mb} MB of memory",
            field="memory_mb",
        )

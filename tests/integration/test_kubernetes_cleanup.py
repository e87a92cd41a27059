"""Removing a task, its volumes and its tenant's network one right after the other, as berth
does when a dev box is deleted, leaves nothing on the cluster: a pod still terminating keeps
neither its claim nor its namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from berth.testing.waiting import poll
from tests.support import cluster
from tests.support.drivers import Env, open_driver

pytestmark = [pytest.mark.engine, cluster.needs_cluster]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = open_driver("kubernetes")
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        await test_env.clean_up()
        await runtime.close()


async def test_remove_then_volumes_then_network_leaves_nothing(env: Env) -> None:
    namespace = f"berth-test-{env.run}-net"
    spec = env.spec(
        "box",
        ["sleep", "300"],
        network=namespace,
        network_labels=env.labels,
        volumes=((f"berth-test-{env.run}-data", "/data"),),
        volume_labels=env.labels,
    )
    task = await env.runtime.launch(spec)
    await env.runtime.remove(task.task_id)
    await env.runtime.remove_volumes(env.labels)
    await env.runtime.remove_networks(env.labels)

    async def gone() -> bool | None:
        left = await asyncio.to_thread(cluster.names, "/api/v1/namespaces", env.labels)
        return True if not left else None

    assert await poll(gone, 60)

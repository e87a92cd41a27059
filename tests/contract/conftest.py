"""Runtime contract tests: each runs once per driver (`drivers.DRIVERS`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.drivers import DRIVERS, Env, open_driver


@pytest.fixture(params=DRIVERS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    runtime = open_driver(request.param)
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        await test_env.clean_up()
        await runtime.close()

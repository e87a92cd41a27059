"""Integration fixtures: one real berth server per session (costs ~2 s to start), a fresh
user per test (so tests never see each other's workloads), and a crashable server of a test's
own; the same on the test cluster (`kube_server`, `kube_tenant`); for the dashboard's
browser tests, a Chromium per module, a page per test and a directory for screenshots.
Helpers for what tests do with them live in `tests/support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support import cluster
from tests.support.browser import DESKTOP, chromium
from tests.support.server import TEST_IMAGE, BerthServer, Tenant


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(Path(tmp_path_factory.mktemp("berth")) / "data")
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[BerthServer]:
    """A server of the test's own (~2 s to start), for tests that kill and restart it."""
    srv = BerthServer(tmp_path / "data", env={"BERTH_LOG_LEVEL": "info"})
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def tenant(server: BerthServer) -> Iterator[Tenant]:
    t = server.new_tenant()
    yield t
    # Dev boxes too: a rule port left open would be refused to the next server that wants it.
    for box in t.client.get("/compute/containers").json().get("containers", []):
        t.client.delete(f"/compute/containers/{box['id']}")
    for workload in t.client.get("/v1/compute").json().get("workloads", []):
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


@pytest.fixture(scope="module")
def shots(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Where a module's screenshots go (printed at the end of the module)."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    directory = Path(tmp_path_factory.mktemp(f"{name}-screenshots"))
    yield directory
    print(f"\n{name} screenshots: {directory}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """One berth server on the test cluster for every Kubernetes suite (skipped without one)."""
    srv = BerthServer(Path(tmp_path_factory.mktemp("kube")) / "data", on_cluster=True)
    assert cluster.has_image(TEST_IMAGE), (
        f"{TEST_IMAGE} is not loaded on the cluster: load it first (.ci/run does)"
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.remove_containers()


@pytest.fixture
def kube_tenant(kube_server: BerthServer) -> Iterator[Tenant]:
    tenant = kube_server.new_tenant()
    yield tenant
    for box in tenant.client.get("/compute/containers").json().get("containers", []):
        tenant.client.delete(f"/compute/containers/{box['id']}")
    for workload in tenant.client.get("/v1/compute").json().get("workloads", []):
        tenant.client.delete(f"/v1/compute/{workload['id']}")
    tenant.client.close()

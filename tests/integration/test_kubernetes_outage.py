"""The cluster's API server goes away under berth and comes back.

berth reaches the shared test cluster through a loopback proxy of the test's own
(`tests/support/tcp_proxy.py`), which is cut: to berth the API server is unreachable, while
the cluster itself (and every other test on it) carries on. As with the Docker engine's outage
(test_engine_outage.py): berth stays up and says so in `GET /v1/system`, reads answer,
desired-state changes are acknowledged and calls that need the cluster get a 503, never a
500; once the proxy is back, the service converges to the replicas set during the outage and
the job created during it runs, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from berth.testing.waiting import wait_for
from tests.support import cluster
from tests.support.api import create, wait_workload
from tests.support.server import TEST_IMAGE, BerthServer
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

DETECTION_DEADLINE = 20.0
CONVERGENCE_DEADLINE = 60.0


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    config = yaml.safe_load(Path(cluster.KUBECONFIG).read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    assert server.hostname is not None
    tcp = TcpProxy(server.hostname, server.port or 443)
    tcp.start()
    yield tcp
    tcp.cut()


@pytest.fixture
def proxied_server(proxy: TcpProxy, tmp_path: Path) -> Iterator[BerthServer]:
    """berth on the cluster through the proxy: a copy of the kubeconfig naming the proxy's
    port (the API server's certificate names the host, which stays the same)."""
    config = yaml.safe_load(Path(cluster.KUBECONFIG).read_text())
    for entry in config["clusters"]:
        server = urlsplit(entry["cluster"]["server"])
        entry["cluster"]["server"] = f"{server.scheme}://{server.hostname}:{proxy.port}"
    kubeconfig = tmp_path / "proxied.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    srv = BerthServer(
        tmp_path / "data",
        on_cluster=True,
        env={"BERTH_KUBECONFIG": str(kubeconfig), "BERTH_RECONCILE_INTERVAL_SECONDS": "30"},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()  # straight to the cluster, not through the proxy


def engine_status(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/v1/system")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["engine"]
    return status


@pytest.mark.timeout(300)
def test_an_unreachable_api_server_is_an_outage_berth_reports_and_recovers_from(
    proxy: TcpProxy, proxied_server: BerthServer
) -> None:
    api = proxied_server.new_tenant(credits=1000).client
    service = create(api, name="web", type="service", image=TEST_IMAGE, command="exec sleep 3600")
    wait_workload(api, service["id"], lambda s: s["running_tasks"] == 1, timeout=90)
    assert engine_status(api)["reachable"] is True

    proxy.cut()
    down = wait_for(
        lambda: (status := engine_status(api)) and not status["reachable"] and status,
        timeout=DETECTION_DEADLINE,
        what="berth to report the API server unreachable",
    )
    assert down["error"], down

    # Reads answer from the store; desired-state changes are acknowledged.
    assert api.get(f"/v1/compute/{service['id']}").status_code == 200
    assert api.get(f"/v1/compute/{service['id']}/runs").status_code == 200
    scaled = api.post(f"/v1/compute/{service['id']}/scale", json={"count": 2})
    assert scaled.status_code == 200, scaled.text
    job = create(api, name="during", type="job", image=TEST_IMAGE, command="echo made-during")
    # What needs the cluster is refused at once, as a 503 naming it, never a 500.
    executed = api.post(f"/v1/compute/{service['id']}/exec", json={"command": "echo hi"})
    assert executed.status_code == 503, executed.text
    assert executed.json()["code"] == "engine_unavailable"
    assert executed.headers["Retry-After"]

    proxy.restore()
    wait_for(
        lambda: engine_status(api)["reachable"],
        timeout=DETECTION_DEADLINE,
        what="berth to see the API server back",
    )
    wait_workload(
        api,
        service["id"],
        lambda s: s["status"] == "running" and s["running_tasks"] == 2,
        timeout=CONVERGENCE_DEADLINE,
        what="the service at the replicas set during the outage",
    )
    state = wait_workload(
        api,
        job["id"],
        lambda s: s["status"] == "succeeded",
        timeout=CONVERGENCE_DEADLINE,
        what="the job created during the outage to run",
    )
    runs = api.get(f"/v1/compute/{job['id']}/runs").json()["runs"]
    assert len(runs) == 1, runs
    logs = api.get(f"/v1/compute/{job['id']}/runs/{state['recent_runs'][0]['id']}/logs")
    assert [e["message"] for e in logs.json()["events"]] == ["made-during"]

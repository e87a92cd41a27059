"""The files API on Kubernetes: `berth serve --runtime kubernetes` on the test cluster, a
file written into a pod and read back byte for byte (every byte value), and listed, through
the same runtime exec the Docker driver's files use.

Needs a cluster (`BERTH_TEST_KUBECONFIG`) with the test image loaded; skipped without one.
"""

from __future__ import annotations

import time

import pytest

from tests.support import cluster
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

EVERY_BYTE = bytes(range(256)) * 256


def test_a_file_round_trips_through_a_pod(kube_server: BerthServer) -> None:
    tenant = kube_server.new_tenant()
    with tenant.client:
        svc = create(tenant.client, name="files", type="service", command="exec sleep 3600")
        try:
            wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1, timeout=120)
            url = f"/v1/compute/{svc['id']}/files"
            written = tenant.client.put(
                url, params={"path": "/tmp/k8s/every.bin"}, content=EVERY_BYTE, timeout=60
            )
            assert written.status_code == 201, written.text
            assert written.json()["size"] == len(EVERY_BYTE)
            read = tenant.client.get(url, params={"path": "/tmp/k8s/every.bin"}, timeout=60)
            assert read.status_code == 200 and read.content == EVERY_BYTE
            listing = tenant.client.get(url, params={"path": "/tmp/k8s"}).json()
            assert [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [
                ("every.bin", "file", len(EVERY_BYTE))
            ]
            big = EVERY_BYTE * 16 * 8  # 8 MiB (see docs/kubernetes.md on an exec's output)
            started = time.monotonic()
            put = tenant.client.put(url, params={"path": "/tmp/big"}, content=big, timeout=120)
            assert put.status_code == 201, put.text
            got = tenant.client.get(url, params={"path": "/tmp/big"}, timeout=120)
            assert got.status_code == 200, got.text
            assert got.content == big
            print(f"8 MiB through a pod and back in {time.monotonic() - started:.2f} s")
            missing = tenant.client.get(url, params={"path": "/tmp/k8s/none"})
            assert missing.status_code == 404 and missing.json()["field"] == "path"
        finally:
            tenant.client.delete(f"/v1/compute/{svc['id']}")

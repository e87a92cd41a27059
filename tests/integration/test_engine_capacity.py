"""A task larger than the engine's machine can never run: creates that ask for more CPUs or
memory than the engine has are refused at once, on both APIs, naming the field and the
machine's limit (instead of being accepted and failing forever)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import engine_machine
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

MEDIUM_CPUS = 4
"""The largest instance type of the default catalogue."""


@pytest.fixture
def roomy(server: BerthServer, tenant: Tenant) -> Tenant:
    """A tenant whose own limits are above any machine's, so only the engine's apply."""
    server.admin(
        "update-user", "--user", tenant.user_id, "--max-cpu", "64", "--max-memory-mb", "262144"
    )
    return tenant


@pytest.fixture
def key_id(tenant: Tenant, tmp_path: Path) -> Iterator[int]:
    response = tenant.client.post(
        "/compute/ssh-keys", json={"name": "laptop", "public_key": new_public_key(tmp_path)}
    )
    assert response.status_code == 201, response.text
    yield response.json()["id"]
    for box in tenant.client.get("/compute/containers").json()["containers"]:
        tenant.client.delete(f"/compute/containers/{box['id']}")


def test_a_dev_box_bigger_than_the_engine_is_refused_naming_the_instance_type(
    roomy: Tenant, key_id: int
) -> None:
    cpus, memory_mb = engine_machine()
    if cpus >= MEDIUM_CPUS:
        pytest.skip(f"the engine has {cpus:g} CPUs: every instance type fits")
    body = {"name": "big", "ssh_key_ids": [key_id], "instance_type": "medium"}
    response = roomy.client.post("/compute/containers", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["field"] == "instance_type"
    assert error["error"] == (
        f"instance_type: medium has 4 vCPUs; the engine's machine has {cpus:g} CPUs"
    )
    if memory_mb < 65536:  # the largest memory_mb a dev box may ask for
        body = {"name": "big", "ssh_key_ids": [key_id], "memory_mb": memory_mb + 1}
        response = roomy.client.post("/compute/containers", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "memory_mb"
        assert f"at most {memory_mb} MB" in response.json()["error"]
    assert roomy.client.get("/compute/containers").json() == {"containers": []}


def test_a_workload_bigger_than_the_engine_is_refused_naming_the_field(roomy: Tenant) -> None:
    cpus, memory_mb = engine_machine()
    schedule = {
        "name": "big",
        "type": "schedule",
        "image": TEST_IMAGE,
        "schedule_expr": "0 0 1 1 *",
    }
    for field, value, says in [
        ("cpu", cpus + 0.5, f"cpu: at most {cpus:g} vCPUs; the engine's machine has {cpus:g} CPUs"),
        ("memory_mb", memory_mb + 1, f"memory_mb: at most {memory_mb} MB"),
        ("cpu", 0.001, "cpu: Input should be greater than or equal to 0.01"),
    ]:
        response = roomy.client.post("/v1/compute", json={**schedule, field: value})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field and says in response.json()["error"], field
    assert roomy.client.get("/v1/compute").json()["workloads"] == []
    fits = roomy.client.post("/v1/compute", json={**schedule, "cpu": cpus, "memory_mb": memory_mb})
    assert fits.status_code == 201, fits.text

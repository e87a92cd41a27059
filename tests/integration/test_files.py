"""The files API on real tasks: a write read back byte for byte (every byte value, checked
inside the task with exec too), directory listings, the size limit both ways (413 naming
it), bad paths, missing files, stopped targets, other tenants, dev boxes, and a write held
for a human's approval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.schemas.files import FileListOut
from berth.sdk import BerthError, Client, NotFound
from berth.testing.waiting import wait_for
from tests.support.api import assert_refused, create, wait_workload
from tests.support.keys import public_key_only
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

LIMIT = 10 * 1024 * 1024
"""`BERTH_MAX_FILE_BYTES`' default."""
EVERY_BYTE = bytes(range(256)) * 64
APPROVAL_HEADER = "Berth-Approval-Id"


@pytest.fixture(scope="module")
def running(server: BerthServer) -> Iterator[tuple[Tenant, str]]:
    """One running service shared by the module's tests, and its owner."""
    tenant = server.new_tenant()
    svc = create(tenant.client, name="files", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    yield tenant, svc["id"]
    tenant.client.delete(f"/v1/compute/{svc['id']}")
    tenant.client.close()


def files_url(workload_id: str) -> str:
    return f"/v1/compute/{workload_id}/files"


def put(client: httpx.Client, url: str, path: str, data: bytes) -> httpx.Response:
    return client.put(url, params={"path": path}, content=data, timeout=60)


def get(client: httpx.Client, url: str, path: str) -> httpx.Response:
    return client.get(url, params={"path": path}, timeout=60)


def exec_stdout(client: httpx.Client, workload_id: str, command: str) -> str:
    response = client.post(f"/v1/compute/{workload_id}/exec", json={"command": command})
    assert response.status_code == 200 and response.json()["exit_code"] == 0, response.text
    out: str = response.json()["stdout"]
    return out


def test_a_binary_file_round_trips_byte_for_byte(running: tuple[Tenant, str]) -> None:
    tenant, workload_id = running
    written = put(tenant.client, files_url(workload_id), "/tmp/bin/every/byte.bin", EVERY_BYTE)
    assert written.status_code == 201, written.text
    assert written.json() == {"path": "/tmp/bin/every/byte.bin", "size": 16384, "created": True}
    read = get(tenant.client, files_url(workload_id), "/tmp/bin/every/byte.bin")
    assert read.status_code == 200
    assert read.headers["content-type"] == "application/octet-stream"
    assert read.content == EVERY_BYTE
    # The bytes on the task's disk are the ones sent (not only what berth reads back).
    dumped = exec_stdout(tenant.client, workload_id, "od -An -v -tx1 /tmp/bin/every/byte.bin")
    assert bytes.fromhex(dumped) == EVERY_BYTE
    again = put(tenant.client, files_url(workload_id), "/tmp/bin/every/byte.bin", b"short")
    assert (again.status_code, again.json()["created"], again.json()["size"]) == (200, False, 5)
    assert get(tenant.client, files_url(workload_id), "/tmp/bin/every/byte.bin").content == b"short"


def test_an_empty_file_and_a_file_at_the_limit(running: tuple[Tenant, str]) -> None:
    tenant, workload_id = running
    assert put(tenant.client, files_url(workload_id), "/tmp/empty", b"").json()["size"] == 0
    assert get(tenant.client, files_url(workload_id), "/tmp/empty").content == b""
    big = bytes(range(256)) * (LIMIT // 256)
    started = time.monotonic()
    assert put(tenant.client, files_url(workload_id), "/tmp/ten", big).json()["size"] == LIMIT
    assert get(tenant.client, files_url(workload_id), "/tmp/ten").content == big
    print(f"10 MiB written and read back in {time.monotonic() - started:.2f} s")


def test_a_directory_is_listed(running: tuple[Tenant, str]) -> None:
    tenant, workload_id = running
    put(tenant.client, files_url(workload_id), "/srv/listed/a.txt", b"hello")
    put(tenant.client, files_url(workload_id), "/srv/listed/.hidden", b"")
    put(tenant.client, files_url(workload_id), "/srv/listed/line\nbreak", b"x")
    exec_stdout(
        tenant.client,
        workload_id,
        "cd /srv/listed && mkdir sub && ln -s a.txt link && chmod 0751 a.txt",
    )
    response = get(tenant.client, files_url(workload_id), "/srv/listed")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    listing = response.json()
    assert listing["path"] == "/srv/listed" and listing["truncated"] is False
    entries = {entry["name"]: entry for entry in listing["entries"]}
    assert [entry["name"] for entry in listing["entries"]] == sorted(entries)
    assert {name: entry["type"] for name, entry in entries.items()} == {
        ".hidden": "file",
        "a.txt": "file",
        "line\nbreak": "file",
        "link": "link",
        "sub": "dir",
    }
    assert (entries["a.txt"]["size"], entries["a.txt"]["mode"]) == (5, "0751")
    assert entries["a.txt"]["modified_at"].endswith("Z")


def test_a_file_is_deleted_and_a_full_directory_is_not(running: tuple[Tenant, str]) -> None:
    tenant, workload_id = running
    url = files_url(workload_id)
    put(tenant.client, url, "/tmp/gone/file", b"x")
    refused = tenant.client.delete(url, params={"path": "/tmp/gone"})
    assert_refused(refused, status=409, field="path", code="directory_not_empty")
    deleted = tenant.client.delete(url, params={"path": "/tmp/gone/file"})
    assert deleted.json() == {"path": "/tmp/gone/file", "deleted": True}
    assert tenant.client.delete(url, params={"path": "/tmp/gone"}).status_code == 200
    assert_refused(get(tenant.client, url, "/tmp/gone"), status=404, field="path")


def test_over_the_limit_is_413_naming_it_both_ways(running: tuple[Tenant, str]) -> None:
    tenant, workload_id = running
    url = files_url(workload_id)
    too_big = put(tenant.client, url, "/tmp/too-big", b"x" * (LIMIT + 1))
    body = assert_refused(too_big, status=413, field=None, code="file_too_large")
    assert body["limit_bytes"] == LIMIT and str(LIMIT) in body["error"]
    assert "BERTH_MAX_FILE_BYTES" in body["error"]
    assert_refused(get(tenant.client, url, "/tmp/too-big"), status=404, field="path")
    exec_stdout(tenant.client, workload_id, f"head -c {LIMIT + 1} /dev/zero > /tmp/grown")
    refused = assert_refused(
        get(tenant.client, url, "/tmp/grown"), status=413, field="path", code="file_too_large"
    )
    assert refused["limit_bytes"] == LIMIT and str(LIMIT) in refused["error"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("", "required"),
        ("etc/hostname", "absolute"),
        ("/tmp/../etc/passwd", ".."),
        ("/tmp/a\0b", "NUL"),
        ("/" + "a" * 4096, "4096"),
    ],
)
def test_a_bad_path_is_refused_naming_the_field(
    running: tuple[Tenant, str], path: str, says: str
) -> None:
    tenant, workload_id = running
    for response in (
        get(tenant.client, files_url(workload_id), path),
        put(tenant.client, files_url(workload_id), path, b"x"),
    ):
        body = assert_refused(response, status=422, field="path")
        assert says in body["error"]


def test_a_missing_path_is_404_and_a_directory_cannot_be_written(
    running: tuple[Tenant, str],
) -> None:
    tenant, workload_id = running
    missing = get(tenant.client, files_url(workload_id), "/no/such/file")
    assert "/no/such/file" in assert_refused(missing, status=404, field="path")["error"]
    no_path = tenant.client.get(files_url(workload_id))
    assert_refused(no_path, status=422, field="path")
    for directory in ("/tmp", "/tmp/new-dir/"):
        refused = put(tenant.client, files_url(workload_id), directory, b"x")
        assert "directory" in assert_refused(refused, status=422, field="path")["error"]


def test_nothing_running_is_409_not_running(tenant: Tenant) -> None:
    svc = create(tenant.client, name="stopped", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    assert tenant.client.post(f"/v1/compute/{svc['id']}/stop").status_code == 200
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 0)
    for response in (
        get(tenant.client, files_url(svc["id"]), "/etc/hostname"),
        put(tenant.client, files_url(svc["id"]), "/tmp/x", b"x"),
    ):
        body = assert_refused(response, status=409, field=None, code="not_running")
        assert "start it first" in body["error"]


def test_another_tenants_workload_is_404(server: BerthServer, running: tuple[Tenant, str]) -> None:
    _owner, workload_id = running
    other = server.new_tenant()
    with other.client:
        for response in (
            get(other.client, files_url(workload_id), "/etc/hostname"),
            put(other.client, files_url(workload_id), "/tmp/intruder", b"x"),
            other.client.delete(files_url(workload_id), params={"path": "/etc/hostname"}),
        ):
            assert_refused(response, status=404, field=None, code="not_found")


@pytest.fixture
def dev_box(tenant: Tenant) -> str:
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "laptop", "public_key": public_key_only()}
    )
    assert key.status_code == 201, key.text
    box = tenant.client.post(
        "/compute/containers",
        json={"name": "files-box", "ssh_key_ids": [key.json()["id"]], "image": TEST_IMAGE},
    )
    assert box.status_code == 201, box.text
    box_id: str = box.json()["id"]
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box_id}").json()["status"] == "running",
        timeout=30,
        what=f"dev box {box_id} to run",
    )
    return box_id


def test_a_dev_box_reads_writes_and_lists(
    server: BerthServer, tenant: Tenant, dev_box: str
) -> None:
    url = f"/compute/containers/{dev_box}/files"
    written = put(tenant.client, url, "/root/notes/every-byte", EVERY_BYTE)
    assert written.status_code == 201, written.text
    assert get(tenant.client, url, "/root/notes/every-byte").content == EVERY_BYTE
    names = [entry["name"] for entry in get(tenant.client, url, "/root/notes").json()["entries"]]
    assert names == ["every-byte"]
    # The Containers API answers input errors with 400.
    assert_refused(get(tenant.client, url, "relative"), status=400, field="path")
    other = server.new_tenant()
    with other.client:
        assert_refused(get(other.client, url, "/root/notes"), status=404, field=None)
    assert tenant.client.post(f"/compute/containers/{dev_box}/stop").status_code == 200
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{dev_box}").json()["status"] == "stopped",
        timeout=30,
        what="the dev box to stop",
    )
    stopped = get(tenant.client, url, "/root/notes/every-byte")
    assert (
        "not running"
        in assert_refused(stopped, status=409, field=None, code="not_running")["error"]
    )


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server gating exec, as the default policy does (~2 s to start)."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("gated-files")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["exec"]'},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def test_an_agents_write_waits_for_approval_and_runs_once(gated_server: BerthServer) -> None:
    agent = gated_server.new_tenant()
    svc = create(agent.client, name="gated", type="service", command="exec sleep 3600")
    wait_workload(agent.client, svc["id"], lambda s: s["running_tasks"] == 1)
    url = files_url(svc["id"])
    # Reads change nothing and are never held.
    assert get(agent.client, url, "/etc/hostname").status_code == 200
    held = put(agent.client, url, "/tmp/approved.bin", EVERY_BYTE)
    assert held.status_code == 202 and held.json()["status"] == "pending_approval"
    approval_id = held.json()["approval_id"]
    assert_refused(get(agent.client, url, "/tmp/approved.bin"), status=404, field="path")
    token = gated_server.session_token(agent.user_id)
    with httpx.Client(base_url=gated_server.url, headers={"Authorization": f"Bearer {token}"}) as h:
        approved = h.post(f"/v1/approvals/{approval_id}/approve").json()
    assert approved["action"] == "exec" and approved["result"]["status_code"] == 201
    repeated = agent.client.put(
        url,
        params={"path": "/tmp/approved.bin"},
        content=EVERY_BYTE,
        headers={APPROVAL_HEADER: approval_id},
    )
    assert repeated.status_code == 201 and repeated.json()["size"] == len(EVERY_BYTE)
    assert get(agent.client, url, "/tmp/approved.bin").content == EVERY_BYTE
    deleted = agent.client.delete(url, params={"path": "/tmp/approved.bin"})
    assert deleted.status_code == 202
    agent.client.delete(f"/v1/compute/{svc['id']}")
    agent.client.close()


def test_the_sdk_reads_writes_and_lists_through_both_prefixes(
    server: BerthServer, running: tuple[Tenant, str]
) -> None:
    tenant, workload_id = running
    for user_id in (None, tenant.user_id):  # /v1/compute and /v1/users/{id}/compute
        with Client(server.url, tenant.key, user_id=user_id) as client:
            files = client.compute.files
            written = files.write(workload_id, "/tmp/sdk/blob", EVERY_BYTE)
            assert (written.size, written.path) == (len(EVERY_BYTE), "/tmp/sdk/blob")
            assert files.read(workload_id, "/tmp/sdk/blob") == EVERY_BYTE
            listing = files.list(workload_id, "/tmp/sdk")
            assert [entry.name for entry in listing.entries] == ["blob"]
            assert isinstance(files.get(workload_id, "/tmp/sdk"), FileListOut)
            with pytest.raises(BerthError, match="is a directory"):
                files.read(workload_id, "/tmp/sdk")
            with pytest.raises(NotFound):
                files.read(workload_id, "/tmp/sdk/none")
            assert files.delete(workload_id, "/tmp/sdk/blob").deleted is True


def test_a_named_task_is_used_and_an_unknown_one_is_404(
    server: BerthServer, running: tuple[Tenant, str]
) -> None:
    tenant, workload_id = running
    state = tenant.client.get(f"/v1/compute/{workload_id}").json()
    run_id = next(r["id"] for r in state["recent_runs"] if r["status"] == "running")
    with Client(server.url, tenant.key) as client:
        client.compute.files.write(workload_id, "/tmp/named", b"in one task", task=run_id)
        assert client.compute.files.read(workload_id, "/tmp/named", task=run_id) == b"in one task"
    unknown = tenant.client.get(
        files_url(workload_id), params={"path": "/tmp/named", "task": "run_0000000000000000"}
    )
    assert "run_0000000000000000" in assert_refused(unknown, status=404, field=None)["error"]

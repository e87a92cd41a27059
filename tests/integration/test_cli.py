"""The `berth` client commands and the SDK against a real server and the real engine.

The CLI runs as a subprocess, the way a user runs it, with the server and key in
`BERTH_URL`/`BERTH_API_KEY` (or the config file `berth login` writes) and a private
`XDG_CONFIG_HOME`, so no user configuration leaks in.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from berth.sdk import AsyncClient, BadRequest, Client, NotFound
from tests.support.cli import clean_env, ok, run_berth
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine


@pytest.fixture
def cli_env(server: BerthServer, tenant: Tenant, tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "config", BERTH_URL=server.url, BERTH_API_KEY=tenant.key)


def test_a_job_from_create_wait_to_delete(cli_env: dict[str, str]) -> None:
    created = run_berth(
        "compute",
        "create",
        "--name",
        "hello",
        "--type",
        "job",
        "--image",
        TEST_IMAGE,
        "--command",
        "echo hi",
        "--env",
        "GREETING=hi",
        "--memory-mb",
        "64",
        "--wait",
        env=cli_env,
    )
    out = ok(created)
    assert "status:" in out and "succeeded" in out, out
    # Not a terminal: plain dots, the label once.
    assert "waiting for hello:" in created.stderr and "." in created.stderr
    assert "\x1b[" not in created.stderr

    listing = ok(run_berth("compute", "list", env=cli_env))
    header, *rows = listing.splitlines()
    assert header.split() == ["ID", "NAME", "TYPE", "STATUS", "TASKS", "IMAGE", "AGE"]
    assert len(rows) == 1 and rows[0].split()[1:4] == ["hello", "job", "succeeded"]
    workload_id = rows[0].split()[0]

    state = json.loads(ok(run_berth("compute", "get", workload_id, "--json", env=cli_env)))
    assert state["name"] == "hello" and state["env"] == {"GREETING": "hi"}
    assert state["memory_mb"] == 64 and state["status"] == "succeeded"
    run_id = state["recent_runs"][0]["id"]

    runs = ok(run_berth("compute", "runs", workload_id, env=cli_env))
    assert run_id in runs and "succeeded" in runs and "create" in runs
    runs_json = json.loads(ok(run_berth("compute", "runs", workload_id, "--json", env=cli_env)))
    assert [r["id"] for r in runs_json["runs"]] == [run_id]

    assert ok(run_berth("compute", "logs", workload_id, env=cli_env)) == "hi\n"
    assert ok(run_berth("compute", "logs", workload_id, "--run", run_id, env=cli_env)) == "hi\n"
    assert ok(run_berth("compute", "logs", workload_id, "-f", env=cli_env)) == "hi\n"

    ok(run_berth("compute", "secrets", "set", workload_id, "API_TOKEN", "s3cret", env=cli_env))
    ok(run_berth("compute", "secrets", "set", workload_id, "FROM_STDIN", env=cli_env, stdin="v\n"))
    secrets = ok(run_berth("compute", "secrets", "list", workload_id, env=cli_env))
    assert secrets.splitlines()[0].split() == ["KEY", "CREATED", "UPDATED"]
    assert {line.split()[0] for line in secrets.splitlines()[1:]} == {"API_TOKEN", "FROM_STDIN"}
    assert "s3cret" not in secrets
    reveal = ("compute", "secrets", "reveal", workload_id)
    assert ok(run_berth(*reveal, "API_TOKEN", env=cli_env)) == "s3cret\n"
    assert ok(run_berth(*reveal, "FROM_STDIN", env=cli_env)) == "v\n"
    ok(run_berth("compute", "secrets", "delete", workload_id, "FROM_STDIN", env=cli_env))

    assert (
        ok(run_berth("compute", "delete", workload_id, env=cli_env)) == f"deleted {workload_id}\n"
    )
    gone = run_berth("compute", "get", workload_id, env=cli_env)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith("error: ") and workload_id in gone.stderr
    assert "Traceback" not in gone.stderr


def test_scaling_a_service_and_the_refusal_to_scale_a_job(
    cli_env: dict[str, str], server: BerthServer, tenant: Tenant
) -> None:
    created = run_berth(
        "compute",
        "create",
        "--name",
        "web",
        "--type",
        "service",
        "--image",
        TEST_IMAGE,
        "--command",
        "exec sleep 3600",
        "--memory-mb",
        "32",
        "--cpu",
        "0.1",
        "--json",
        env=cli_env,
    )
    service_id = json.loads(ok(created))["id"]
    scaled = json.loads(ok(run_berth("compute", "scale", service_id, "2", "--json", env=cli_env)))
    assert scaled["replicas"] == 2
    with Client(server.url, tenant.key) as client:
        running = client.compute.wait_for(
            service_id, "running", predicate=lambda w: w.running_tasks == 2, timeout=60
        )
    assert running.replicas == 2

    stopped = ok(run_berth("compute", "scale", service_id, "0", env=cli_env))
    assert any(line.split() == ["replicas:", "0"] for line in stopped.splitlines()), stopped

    job = json.loads(
        ok(
            run_berth(
                "compute",
                "create",
                "--name",
                "batch",
                "--type",
                "job",
                "--image",
                TEST_IMAGE,
                "--command",
                "true",
                "--json",
                env=cli_env,
            )
        )
    )
    refused = run_berth("compute", "scale", job["id"], "2", env=cli_env)
    message = tenant.client.post(f"/v1/compute/{job['id']}/scale", json={"count": 2}).json()
    assert refused.returncode == 1
    assert refused.stderr == f"error: {message['error']}\n"


def test_create_sets_scale_to_zero_and_the_idle_timeout(cli_env: dict[str, str]) -> None:
    created = run_berth(
        "compute",
        "create",
        "--name",
        "sleepy",
        "--type",
        "service",
        "--image",
        TEST_IMAGE,
        "--command",
        "exec httpd -f -p 8080",
        "--port",
        "8080",
        "--scale-to-zero",
        "--idle-timeout",
        "120",
        "--json",
        env=cli_env,
    )
    workload = json.loads(ok(created))
    assert (workload["scale_to_zero"], workload["idle_timeout_seconds"]) == (True, 120)
    shown = ok(run_berth("compute", "get", workload["id"], env=cli_env))
    assert "scale_to_zero" in shown or "scale to zero" in shown, shown
    plain = json.loads(
        ok(
            run_berth(
                "compute",
                "create",
                "--name",
                "awake",
                "--type",
                "service",
                "--image",
                TEST_IMAGE,
                "--command",
                "exec sleep 3600",
                "--json",
                env=cli_env,
            )
        )
    )
    assert plain["scale_to_zero"] is False


def test_usage_errors_exit_2_and_server_refusals_name_the_field(cli_env: dict[str, str]) -> None:
    missing = run_berth("compute", "create", "--type", "job", "--image", TEST_IMAGE, env=cli_env)
    assert missing.returncode == 2 and "--name" in missing.stderr
    bad_env = run_berth(
        "compute", "create", "--name", "x", "--type", "job", "--image", TEST_IMAGE,
        "--env", "NOEQUALS", env=cli_env,
    )  # fmt: skip
    assert (
        bad_env.returncode == 2
        and bad_env.stderr == "error: --env 'NOEQUALS': expected KEY=VALUE\n"
    )
    invalid = run_berth(
        "compute", "create", "--name", "Not_Valid", "--type", "job", "--image", TEST_IMAGE,
        env=cli_env,
    )  # fmt: skip
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error: name") and "Traceback" not in invalid.stderr


def test_login_writes_a_private_config_that_later_commands_use(
    server: BerthServer, tenant: Tenant, tmp_path: Path
) -> None:
    home = tmp_path / "xdg"
    env = clean_env(home)
    out = ok(run_berth("login", "--url", server.url, "--key", tenant.key, env=env))
    path = home / "berth" / "config.json"
    assert str(path) in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": server.url, "api_key": tenant.key}

    listing = ok(run_berth("compute", "list", env=env))
    assert listing.split() == ["ID", "NAME", "TYPE", "STATUS", "TASKS", "IMAGE", "AGE"]

    # A flag beats the file: a wrong key given on the command line is used, and refused.
    refused = run_berth("compute", "list", "--key", "nv_sk_wrong", env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")


def test_a_bad_key_prints_the_servers_message_and_exits_1(
    server: BerthServer, tmp_path: Path
) -> None:
    bad = "nv_sk_not_a_real_key"
    expected = httpx.get(
        server.url + "/v1/compute", headers={"Authorization": f"Bearer {bad}"}
    ).json()["error"]
    env = clean_env(tmp_path, BERTH_URL=server.url, BERTH_API_KEY=bad)
    result = run_berth("compute", "list", env=env)
    assert result.returncode == 1
    assert result.stderr == f"error: {expected}\n" and result.stdout == ""

    login = run_berth("login", "--url", server.url, "--key", bad, env=clean_env(tmp_path))
    assert login.returncode == 1 and login.stderr == f"error: {expected}\n"
    assert not (tmp_path / "berth" / "config.json").exists()


def test_no_configuration_at_all_is_a_usage_error(tmp_path: Path) -> None:
    result = run_berth("compute", "list", env=clean_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr == "error: no server URL: pass --url, set BERTH_URL or run `berth login`\n"


def test_the_sync_sdk_lists_creates_gets_follows_and_raises_not_found(
    server: BerthServer, tenant: Tenant
) -> None:
    with Client(server.url, tenant.key) as client:
        assert client.compute.list() == []
        job = client.compute.create(
            name="sdk-job", type="job", image=TEST_IMAGE, command="echo hi", memory_mb=64
        )
        assert job.status == "pending" and job.type == "job"
        assert [w.id for w in client.compute.list()] == [job.id]
        assert list(client.compute.logs(job.id, follow=True)) == ["hi"]
        done = client.compute.wait_for(job.id, "succeeded", timeout=60)
        assert done.recent_runs[0].exit_code == 0
        logs = client.compute.run_logs(job.id, done.recent_runs[0].id)
        assert [e.message for e in logs.events] == ["hi"]

        expected = tenant.client.get("/v1/compute/nope").json()
        with pytest.raises(NotFound) as raised:
            client.compute.get("nope")
        assert (raised.value.message, raised.value.code, raised.value.status) == (
            expected["error"],
            expected["code"],
            404,
        )
        with pytest.raises(BadRequest) as invalid:
            client.compute.create(name="x", type="job", image=TEST_IMAGE, cpu=-1)
        assert invalid.value.field == "cpu" and invalid.value.status == 422


async def test_the_async_sdk_lists_creates_gets_and_raises_not_found(
    server: BerthServer, tenant: Tenant
) -> None:
    async with AsyncClient(server.url, tenant.key, user_id=tenant.user_id) as client:
        assert await client.compute.list() == []
        created = await client.compute.create(
            name="async-sched", type="schedule", image=TEST_IMAGE, schedule_expr="0 0 1 1 *"
        )
        assert created.status == "scheduled" and created.user_id == tenant.user_id
        fetched = await client.compute.get(created.id)
        assert fetched.schedule_expr == "0 0 1 1 *" and fetched.next_run_at is not None
        assert [w.name for w in await client.compute.list()] == ["async-sched"]
        with pytest.raises(NotFound) as raised:
            await client.compute.get("nope")
        assert raised.value.message and raised.value.code == "not_found"
        deleted = await client.compute.delete(created.id)
        assert deleted.deleted and deleted.id == created.id

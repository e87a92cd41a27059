"""One `berth serve` per SQLite database (`berth.store.sqlite_owner`): a second process on
the same file stops at once with one line naming the first, the admin commands still work
beside the server, and the lock goes with the process that held it, even when it is killed.
On PostgreSQL (several replicas share a database) there is nothing to test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from berth.testing.server import BERTH, BerthServer, free_port
from tests.support.postgres import PostgresServer


def test_a_second_server_on_one_sqlite_database_is_refused_until_the_first_is_gone(
    tmp_path: Path, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is not None:
        pytest.skip("SQLite only (the PostgreSQL run's servers use PostgreSQL)")
    data = tmp_path / "data"
    first = BerthServer(data)
    first.start()
    try:
        assert first.process is not None
        second = subprocess.run(
            [*BERTH, "serve", "--data-dir", str(data), "--port", str(free_port())],
            env=BerthServer(data).env,  # its own gateway and SSH ports
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith(f"berth: another berth serve (pid {first.process.pid}) is serving")
        assert str((data / "berth.db").resolve()) in last and "PostgreSQL" in last

        # The admin commands write beside the serving process, as before.
        key = first.new_key()
        answer = httpx.get(
            first.url + "/v1/compute", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text

        first.kill()  # SIGKILL: no shutdown code releases anything
        again = BerthServer(data)
        try:
            again.start()
        finally:
            again.stop()
    finally:
        first.stop()

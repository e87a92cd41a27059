"""`berth serve` and a PostgreSQL it cannot reach at start (`berth.store.reachable`): it waits
for a server that is down, saying so in its log, and serves once the server is up; it stops
with one line (no traceback, the password hidden) when the time is up, and at once when the
server refuses it. Each test has a PostgreSQL cluster of its own, so stopping it disturbs no
other test."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.store.reachable import ATTEMPT_SECONDS
from berth.testing.postgres import PostgresServer
from berth.testing.server import BERTH, BerthServer, free_port
from berth.testing.waiting import wait_for


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def serve_until_exit(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `berth serve` expecting it to stop by itself; its output."""
    return subprocess.run(
        [*BERTH, "serve", "--data-dir", str(data_dir), "--port", str(free_port())],
        env={**BerthServer(data_dir).env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("through", ["tcp", "unix socket"])
def test_serve_waits_for_a_database_that_is_down_and_serves_once_it_is_up(
    tmp_path: Path, own_postgres: PostgresServer, through: str
) -> None:
    own_postgres.create("late")
    # Through the unix socket, while the server is down there is no socket file at all.
    url = own_postgres.url("late") if through == "tcp" else own_postgres.socket_url("late")
    own_postgres.halt()
    server = BerthServer(
        tmp_path / "data",
        env={"BERTH_DATABASE_URL": url, "BERTH_DATABASE_WAIT_SECONDS": "120"},
    )
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            server.start(timeout=120)
            started.append(None)
        except BaseException as exc:  # handed to the test's thread below
            started.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    try:
        wait_for(
            lambda: "waiting for the database" in server.log_tail(),
            timeout=30,
            what="berth saying it waits for the database",
        )
        assert server.process is not None and server.process.poll() is None
        own_postgres.resume()
        starter.join(timeout=120)
        assert started == [None], server.log_tail()
        key = server.new_key()
        answer = httpx.get(
            server.url + "/v1/compute", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["workloads"] == []
    finally:
        starter.join(timeout=120)
        server.stop()


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("berth:s3cret@127.0.0.1:{port}/berth", "berth:***@127.0.0.1:{port}/berth"),
        (
            "berth@127.0.0.1:{port}/berth?password=s3cret",
            "berth@127.0.0.1:{port}/berth?password=hidden",
        ),
    ],
)
def test_serve_stops_with_one_line_when_the_database_stays_away(
    tmp_path: Path, address: str, shown: str
) -> None:
    nobody = free_port()  # nothing listens there
    result = serve_until_exit(
        tmp_path / "data",
        {
            "BERTH_DATABASE_URL": "postgresql+asyncpg://" + address.format(port=nobody),
            "BERTH_DATABASE_WAIT_SECONDS": "1",
        },
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "berth: the database at postgresql+asyncpg://" + shown.format(port=nobody)
    )
    assert re.search(r"could not be reached in \d+ s \(ConnectionRefusedError", last)
    assert "BERTH_DATABASE_URL" in last
    assert "waiting for the database" in result.stderr  # it did try again first


def test_an_attempt_on_a_silent_server_is_cut_short(tmp_path: Path) -> None:
    """A listener that never answers (a host dropping packets, a wedged server) holds one
    attempt for `ATTEMPT_SECONDS`, not for the driver's minute."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", free_port()))
        silent.listen()  # the kernel completes connections; nothing ever answers them
        port = silent.getsockname()[1]
        result = serve_until_exit(
            tmp_path / "data",
            {
                "BERTH_DATABASE_URL": f"postgresql+asyncpg://berth@127.0.0.1:{port}/berth",
                "BERTH_DATABASE_WAIT_SECONDS": "1",
            },
        )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"(TimeoutError: no answer in {ATTEMPT_SECONDS:g} s)" in last, result.stderr


@pytest.mark.parametrize("missing", ["database", "role"])
def test_serve_stops_at_once_when_the_database_refuses_it(
    tmp_path: Path, own_postgres: PostgresServer, missing: str
) -> None:
    own_postgres.create("present")
    if missing == "database":
        url = own_postgres.url("no_such_database")  # SQLSTATE 3D000
    else:
        url = f"postgresql+asyncpg://no_such_role@127.0.0.1:{own_postgres.port}/present"  # 28000
    result = serve_until_exit(
        tmp_path / "data",
        {"BERTH_DATABASE_URL": url, "BERTH_DATABASE_WAIT_SECONDS": "600"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "waiting for the database" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "refused berth" in last and f"no_such_{missing}" in last
    assert "check the user, password and database name" in last


def test_admin_says_why_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    nobody = free_port()
    data_dir = str(tmp_path / "data")
    result = subprocess.run(
        [*BERTH, "admin", "create-user", "--email", "a@example.com", "--data-dir", data_dir],
        env={
            **BerthServer(tmp_path / "data").env,
            "BERTH_DATABASE_URL": f"postgresql+asyncpg://berth:s3cret@127.0.0.1:{nobody}/berth",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert result.stderr.startswith("error: the database at postgresql+asyncpg://berth:***@")
    assert "could not be reached (ConnectionRefusedError" in result.stderr


def test_serve_says_when_the_url_cannot_be_used(tmp_path: Path) -> None:
    result = serve_until_exit(
        tmp_path / "data",
        {"BERTH_DATABASE_URL": "postgresql+asyncpg://berth:s3cret@127.0.0.1:notaport/berth"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("berth: BERTH_DATABASE_URL cannot be used (")
    assert "percent-encoded" in last


def test_sigterm_ends_the_wait(tmp_path: Path) -> None:
    """An orchestrator stopping a replica whose database never came is obeyed at once."""
    nobody = free_port()
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*BERTH, "serve", "--data-dir", str(data), "--port", str(free_port())],
            env={
                **BerthServer(data).env,
                "BERTH_DATABASE_URL": f"postgresql+asyncpg://berth@127.0.0.1:{nobody}/berth",
                "BERTH_DATABASE_WAIT_SECONDS": "600",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "waiting for the database" in log.read_text(),
            timeout=30,
            what="berth waiting for the database",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        text = log.read_text()
        assert "Traceback" not in text
        assert text.strip().splitlines()[-1] == "berth: stopped while waiting for the database"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""A real berth server in a subprocess, as the test suite and the benchmarks start it.

`berth serve` with its own data directory (so its own instance id: servers sharing one engine
never see each other's tasks), its API, SSH gateway and HTTP gateway on free loopback ports.
The server's environment is the launcher's without any `BERTH_*` variable, plus those ports,
plus what the caller passes: a server runs with exactly the settings its launcher names. The
benchmarks pass none beyond their own, so their figures describe what a user gets; the tests
add their fast controller intervals (`tests/support/server.py`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from berth.testing.waiting import wait_for

BERTH = [sys.executable, "-m", "berth.cli.main"]
"""The `berth` command (server and admin commands alike): the one place naming its module."""


def _listen_ports() -> range:
    """From 10000 to below the kernel's ephemeral range (from which every outgoing
    connection takes its source port; 32768 and up by default) and below Kubernetes'
    NodePorts (30000-32767). A kernel whose ephemeral range starts lower leaves no port
    safe from that race: then 10000-29999 all the same."""
    try:
        ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        first_ephemeral = int(ephemeral[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    end = min(30000, first_ephemeral)
    return range(10000, end if end > 11000 else 30000)


LISTEN_PORTS = _listen_ports()
"""Where `free_port` picks (see `_listen_ports`)."""

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, never handed out before by this process.

    Not the kernel's pick (binding port 0): that comes from the ephemeral range, so between
    the pick and the server's bind any outgoing connection (to the database, the engine, a
    task) may take it as its source port, and the server then fails with "address already in
    use". A port outside that range can only be taken by another listener.
    """
    for _ in range(1000):
        port = random.choice(LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {LISTEN_PORTS}")


class BerthServer:
    """One `berth serve` process. `start` returns once it answers `/healthz`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """`command`: what runs `berth serve ...` (default `BERTH`), e.g. a benchmark's
        wrapper that turns on one logger first; `admin` always runs `BERTH`."""
        self.data_dir = data_dir
        self.command = command or BERTH
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        self.env = {
            **inherited,
            "BERTH_SSH_HOST": "127.0.0.1",
            "BERTH_SSH_PORT": str(free_port()),
            "BERTH_GATEWAY_HOST": "127.0.0.1",
            "BERTH_GATEWAY_PORT": str(free_port()),
            **(env or {}),
        }
        self.ssh_port = int(self.env["BERTH_SSH_PORT"])
        self.gateway_port = int(self.env["BERTH_GATEWAY_PORT"])
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._healthy, timeout=timeout, what=f"berth on {self.url}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"berth exited at start:\n{self.log_tail()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).text == "ok"
        except httpx.HTTPError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log (stdout and stderr), for a failure message."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 20 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def instance_id(self) -> str:
        keys_dir = Path(self.env.get("BERTH_SHARED_DIR") or self.data_dir)
        return (keys_dir / "instance.id").read_text().strip().lower()

    def admin(self, *args: str) -> dict[str, Any]:
        """Run `berth admin ARGS` on the server's data directory; its JSON output."""
        out = subprocess.run(
            [*BERTH, "admin", *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def new_key(self) -> str:
        """A new user's API key, made with `berth admin` as an operator would."""
        user = self.admin("create-user", "--email", f"user-{time.monotonic_ns()}@example.com")
        key: str = self.admin("create-key", "--user", user["id"])["key"]
        return key

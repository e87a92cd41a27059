"""A real berth server in a subprocess, with the default controller settings.

The integration tests have their own launcher (`tests/integration/server.py`), but it always
applies the fast controller intervals the tests need, and tests/ changes with the tests; this
one starts berth exactly as `berth serve` would with no `BERTH_*` variables set (unless the
caller passes some), so the figures describe what a user gets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BERTH = [sys.executable, "-m", "berth.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BerthServer:
    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        self.overrides = dict(env or {})
        self.env = {**base, **self.overrides}
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*BERTH, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"berth exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"berth did not answer on {self.url} in {timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def instance_id(self) -> str:
        return (self.data_dir / "instance.id").read_text().strip().lower()

    def admin(self, *args: str) -> dict[str, Any]:
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
        user = self.admin("create-user", "--email", f"bench-{time.monotonic_ns()}@example.com")
        key: str = self.admin("create-key", "--user", user["id"])["key"]
        return key

"""Idle dev boxes pause by themselves on the Docker engine: with
`BERTH_DEV_BOX_IDLE_PAUSE_SECONDS` at 3 s, an SSH session or a terminal held open longer
than that keeps the box running (its commands finish on time), the box pauses once nobody
uses it, and the next SSH login wakes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.boxes import engine_paused, run_in, running_box, terminal, wait_box
from tests.support.server import BerthServer
from tests.support.ssh import ssh

pytestmark = pytest.mark.engine

IDLE_SECONDS = 3
HELD_SECONDS = 8
"""Longer than the idle time plus the idle scaler's interval (2 s here)."""


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("idle")) / "data",
        env={"BERTH_DEV_BOX_IDLE_PAUSE_SECONDS": str(IDLE_SECONDS)},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def test_a_box_in_use_keeps_running_and_pauses_once_nobody_uses_it(
    idle_server: BerthServer, tmp_path: Path
) -> None:
    tenant = idle_server.new_tenant()
    box = running_box(tenant, tmp_path, ssh_enabled=True)
    known = tmp_path / "known_hosts"

    # An SSH session longer than the idle time: were the box frozen under it, its command
    # would not end until something resumed it.
    started = time.monotonic()
    held = ssh(idle_server, tmp_path / "k", box["id"], f"sleep {HELD_SECONDS}; echo held",
               known_hosts=known)  # fmt: skip
    assert (held.returncode, held.stdout) == (0, "held\n"), held.stderr
    assert time.monotonic() - started < HELD_SECONDS + 10
    assert not engine_paused(idle_server, box["id"])

    # A terminal held open as long: the same.
    with terminal(idle_server, tenant, box["id"]) as ws:
        out = run_in(ws, f"sleep {HELD_SECONDS}; echo still-$((1+1))", "t")
        assert "still-2" in out
        assert not engine_paused(idle_server, box["id"])

    # Nobody uses it: it pauses (memory and processes kept), then an SSH login wakes it.
    paused = wait_box(tenant, box["id"], "paused")
    assert "resume" in (paused["status_reason"] or ""), paused
    assert engine_paused(idle_server, box["id"])
    woken = ssh(idle_server, tmp_path / "k", box["id"], "echo awake-$((6*7))", known_hosts=known)
    assert (woken.returncode, woken.stdout) == (0, "awake-42\n"), woken.stderr
    assert wait_box(tenant, box["id"], "running") and not engine_paused(idle_server, box["id"])
    tenant.client.delete(f"/compute/containers/{box['id']}")

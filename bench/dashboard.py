"""How long the dashboard's pages take with many workloads: `python -m bench.dashboard`.

Starts a berth server of its own (default settings, rate limit off), makes one human with a
password and `--workloads` schedules (which start no task, so the engine does no work),
some pending approvals from an agent key, and `--users` colleagues (the human is the
company's operator, so the Users pages are timed too), signs in through the sign-in form,
and times each
page `--rounds` times over loopback HTTP. Prints the median and the 95th percentile in ms
per page; loopback adds well under a millisecond, so the figures are the server's time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from berth.testing.server import BERTH, BerthServer

PAGES = ("/approvals", "/workloads", "/boxes", "/keys", "/usage", "/workloads/new")
PASSWORD = "a long benchmark passphrase"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--approvals", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = BerthServer(
            Path(tmp) / "data",
            env={"BERTH_RATE_LIMIT_PER_SECOND": "0", "BERTH_LOG_LEVEL": "warning"},
        )
        server.start()
        try:
            run(server, args.workloads, args.approvals, args.users, args.rounds)
        finally:
            server.stop()


def run(server: BerthServer, workloads: int, approvals: int, users: int, rounds: int) -> None:
    user = server.admin("create-user", "--email", "bench@example.com", "--credits", "1000")
    server.admin(
        "update-user",
        *("--user", user["id"], "--max-workloads", str(workloads + 10), "--operator", "on"),
    )
    for n in range(users):
        server.admin("create-user", "--email", f"colleague-{n}@example.com")
    subprocess.run(
        [*BERTH, "admin", "set-password", "--user", user["id"], "--data-dir", str(server.data_dir)],
        env=server.env,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    key = server.admin("create-key", "--user", user["id"], "--name", "bench-agent")["key"]
    server.admin("set-approval-policy", "--gate", "create")
    token = server.admin("token", "--user", user["id"])["token"]
    with httpx.Client(base_url=server.url, timeout=60) as api:
        for n in range(workloads):
            body = {
                "name": f"nightly-{n}",
                "type": "schedule",
                "image": "berth/busybox:latest",
                "command": "true",
                "schedule_expr": "0 3 1 1 *",
            }
            made = api.post("/v1/compute", json=body, headers={"Authorization": f"Bearer {token}"})
            made.raise_for_status()
        for n in range(approvals):
            body = {"name": f"asked-{n}", "type": "job", "image": "berth/busybox:latest"}
            asked = api.post("/v1/compute", json=body, headers={"Authorization": f"Bearer {key}"})
            assert asked.status_code == 202, asked.text
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        form = browser.get("/sign-in").text
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert match is not None
        done = browser.post(
            "/sign-in",
            data={"csrf": match.group(1), "email": "bench@example.com", "password": PASSWORD},
        )
        assert done.status_code == 303, done.text
        print(f"{workloads} workloads, {approvals} approvals, {users} users, {rounds} rounds")
        print(f"{'page':<24}{'median ms':>10}{'p95 ms':>10}")
        for path in (*PAGES, "/operator/users", f"/operator/users/{user['id']}"):
            browser.get(path).raise_for_status()  # warm
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                browser.get(path).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            samples.sort()
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            shown = path.replace(user["id"], "{id}")
            print(f"{shown:<24}{statistics.median(samples):>10.1f}{p95:>10.1f}")


if __name__ == "__main__":
    main()

"""A private Docker engine for tests that stop, kill and restart the engine under berth.

The machine's main engine is shared with other test runs, so it is never stopped; instead a
second `dockerd` runs with everything of its own: its API socket, data root, exec root (and so
its own managed containerd), pid file, cgroup parent and default bridge, an interface of its
own made before it starts (with `--bridge=none` dockerd would delete the host's `docker0` at
start-up, under the main engine's feet). `--iptables=false --ip6tables=false
--ip-masq=false` keep it out of the firewall rules, and its address pool (a 10.x range the
main engine's default pools never use) keeps berth's per-user bridge networks from
overlapping the main engine's. User-defined bridge networks still work without iptables,
and published ports go through the userland proxy on loopback, which is all berth needs.

The test image is built into it from the host's static busybox, as `scripts/setup.sh` builds
it for the main engine. `cleanup()` kills the engine, its containerd and its tasks' shims, and
removes its directories; it is safe to call after any failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from berth.testing.waiting import wait_for

BUSYBOX = Path("/bin/busybox")
HOST_BRIDGE = "docker0"
ADDRESS_POOL = "base=10.213.0.0/16,size=24"
START_TIMEOUT = 60.0


class PrivateEngine:
    def __init__(self, root: Path | None = None) -> None:
        # Unix socket paths are limited to ~100 bytes: pytest's tmp paths can be longer.
        self.root = root or Path(tempfile.mkdtemp(prefix="berth-engine-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.pidfile = self.root / "docker.pid"
        self.log_path = self.root / "dockerd.log"
        self.cgroup_parent = f"berth-test-engine-{self.root.name.rsplit('-', 1)[-1]}"
        self.process: subprocess.Popen[bytes] | None = None
        self._bridges: set[str] = set()
        suffix = "".join(ch for ch in self.root.name.rsplit("-", 1)[-1] if ch.isalnum())
        self.default_bridge = f"brt{suffix[:10]}"
        self._bridges.add(self.default_bridge)
        """Bridge interfaces of this engine's networks, as last seen: removed at cleanup if
        the engine could not remove them itself."""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start dockerd (again, on the same data root after a kill) and wait for its API."""
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if self._containerd_pid() is None:
            # dockerd reuses a containerd its pid file names if that pid exists, and a dead
            # containerd nobody reaped (this machine's init may not) still exists as a zombie.
            (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        self._make_default_bridge()
        host_bridge = _interface_addresses(HOST_BRIDGE)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                f"--host={self.host}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.pidfile}",
                f"--bridge={self.default_bridge}",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                f"--cgroup-parent={self.cgroup_parent}",
                f"--default-address-pool={ADDRESS_POOL}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self._answers, timeout=START_TIMEOUT, interval=0.2, what="the private dockerd")
        if host_bridge and not _interface_addresses(HOST_BRIDGE):
            # Started again after a kill, dockerd drops the default bridge network it finds
            # in its store, and deletes it by the default name: the main engine's docker0.
            # Put it back as it was (the main engine's network still refers to it by name).
            _restore_bridge(HOST_BRIDGE, host_bridge)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"dockerd exited: {self.log_tail()}")
        return self.ping()

    def log_tail(self, lines: int = 25) -> str:
        """The end of dockerd's log without its gRPC chatter."""
        kept = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if "module=grpc" not in line
        ]
        return "\n".join(kept[-lines:])

    def ping(self) -> bool:
        try:
            with self.client(timeout=2) as client:
                return client.get("/_ping").text == "OK"
        except httpx.HTTPError:
            return False

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Take the engine down with `sig` and wait until its socket no longer answers.

        With SIGKILL its containerd is killed too, as when a whole engine crashes (or its
        service manager kills the service's processes): a containerd orphaned by a killed
        dockerd dies on its next log line (its output pipe is gone), which would race the
        restart. Tasks keep running in their shims until the restarted engine deals with them.
        """
        assert self.process is not None
        self._note_bridges()
        self.process.send_signal(sig)
        self.process.wait(timeout=60)
        containerd = self._containerd_pid()
        if containerd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGKILL)
            wait_for(
                lambda: not is_running(containerd),
                timeout=10,
                what="the engine's containerd to exit",
            )
        wait_for(lambda: not self.ping(), timeout=10, what="the engine socket to go quiet")

    def _containerd_pid(self) -> int | None:
        """The pid of this engine's containerd while it runs (not a zombie), else None."""
        try:
            pid = int((self.root / "exec" / "containerd" / "containerd.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid in self._leftover_pids() and is_running(pid) else None

    def _make_default_bridge(self) -> None:
        """The engine's default bridge interface, with an address from its own range."""
        if Path(f"/sys/class/net/{self.default_bridge}").exists():
            return
        subnet = int.from_bytes(os.urandom(1), "big")
        for argv in (
            ["ip", "link", "add", self.default_bridge, "type", "bridge"],
            ["ip", "addr", "add", f"10.214.{subnet}.1/24", "dev", self.default_bridge],
            ["ip", "link", "set", self.default_bridge, "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def cleanup(self) -> None:
        """Leave nothing behind, whatever state a failed test left the engine in.

        With the engine up (started again if a test left it down), its containers and
        networks are removed through its API and it is stopped with SIGTERM, which takes its
        containerd along; then whatever survived (processes naming this engine's root, task
        processes in its cgroups, mounts under its root) is killed or unmounted, and the root
        is removed.
        """
        try:
            if not self.ping():
                self.start()
            self._note_bridges()
            self._remove_everything()
        except (AssertionError, OSError, httpx.HTTPError, subprocess.SubprocessError):
            pass  # the forceful steps below still run
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        for pid in self._leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Container rootfs mounts under the data root must go before the files can.
        for mount in reversed(self._mounts_under_root()):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        for cgroup in sorted(self._cgroups(), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        for bridge in self._bridges:
            if Path(f"/sys/class/net/{bridge}").exists():
                subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _note_bridges(self) -> None:
        """Remember the bridge interface of each of the engine's bridge networks."""
        with contextlib.suppress(httpx.HTTPError), self.client(timeout=10) as client:
            for network in client.get("/networks").json():
                if network["Driver"] == "bridge":
                    name = network.get("Options", {}).get("com.docker.network.bridge.name")
                    self._bridges.add(name or f"br-{network['Id'][:12]}")

    def _remove_everything(self) -> None:
        with self.client(timeout=60) as client:
            for container in client.get("/containers/json", params={"all": "1"}).json():
                client.delete(f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
            for network in client.get("/networks").json():
                if network["Name"] not in ("host", "none", "bridge"):
                    client.delete(f"/networks/{network['Id']}")

    def _cgroups(self) -> list[Path]:
        """This engine's cgroup directories (its `--cgroup-parent` under every hierarchy);
        any process still in one is killed first."""
        found = []
        for hierarchy in Path("/sys/fs/cgroup").glob("*"):
            parent = hierarchy / self.cgroup_parent
            if not parent.is_dir():
                continue
            for procs in parent.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs.read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
            found += [parent, *(p for p in parent.rglob("*") if p.is_dir())]
        return found

    def _leftover_pids(self) -> list[int]:
        """Processes whose command line names this engine's root: dockerd, containerd, shims."""
        marker = str(self.root).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(entry.name))
        return pids

    def _mounts_under_root(self) -> list[str]:
        prefix = str(self.root) + "/"
        mounts = []
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1]
            if target.startswith(prefix):
                mounts.append(target)
        return mounts

    # -- the Engine API ------------------------------------------------------------------

    def client(self, *, timeout: float = 30) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://engine/v1.41",
            timeout=timeout,
        )

    def import_busybox(self, repo: str, tag: str = "latest") -> None:
        """Build `repo:tag` from the host's static busybox (an image with /bin/sh)."""
        changes = ["ENV PATH=/bin", "WORKDIR /root"]
        params: list[tuple[str, str]] = [("fromSrc", "-"), ("repo", repo), ("tag", tag)]
        params += [("changes", change) for change in changes]
        with self.client(timeout=120) as client:
            response = client.post(
                "/images/create",
                params=params,
                content=busybox_rootfs(),
                headers={"Content-Type": "application/x-tar"},
            )
            assert response.status_code == 200, response.text
            assert client.get(f"/images/{repo}:{tag}/json").status_code == 200

    def containers(self, label: str) -> list[dict[str, Any]]:
        """Every container (running or not) carrying `label` (`key=value`)."""
        with self.client() as client:
            response = client.get(
                "/containers/json", params={"all": "1", "filters": f'{{"label": ["{label}"]}}'}
            )
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()
            return found


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def busybox_rootfs() -> bytes:
    """A tar of a root filesystem holding busybox and a link per applet."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "root", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mtime = tarfile.DIRTYPE, int(time.time())
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _interface_addresses(name: str) -> list[str]:
    """The IPv4 addresses (CIDR) of a network interface; empty if it does not exist."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", name], capture_output=True, text=True
    )
    if out.returncode != 0:
        return []
    return [line.split()[3] for line in out.stdout.splitlines() if len(line.split()) > 3] or [""]


def _restore_bridge(name: str, addresses: list[str]) -> None:
    commands = [["ip", "link", "add", name, "type", "bridge"]]
    commands += [["ip", "addr", "add", address, "dev", name] for address in addresses if address]
    commands.append(["ip", "link", "set", name, "up"])
    for argv in commands:
        subprocess.run(argv, check=False, capture_output=True)

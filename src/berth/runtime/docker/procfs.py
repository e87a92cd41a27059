"""Process control on the engine's host through /proc and pidfds, for the Docker driver.

The Engine API can signal a whole container but not one exec, and `open_port` must enter a
task's network namespace; both need the process ids the engine reports (`Pid` of an exec or
of a task's main process). Those are real process ids only when berth runs as root on the
engine's host, in the host's PID namespace. So nothing here acts on a process unless /proc
shows it in the container's own cgroup (`in_container`), and a signal goes through a pidfd
opened before that check, so a pid reused in between is never hit.
"""

from __future__ import annotations

import os
import signal


def _open_pidfd(pid: int) -> int | None:
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def in_container(pid: int, container_id: str) -> bool:
    """Whether process `pid` (as this host sees it) lives in the container's cgroup."""
    if len(container_id) < 12:
        return False
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as cgroups:
            return container_id in cgroups.read()
    except OSError:
        return False


def _session_of(pid: int) -> int | None:
    """The session id of live process `pid`, from /proc (None if gone, a zombie, unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()  # After "pid (comm)".
        return None if fields[0] in ("Z", "X") else int(fields[3])  # state ppid pgrp session
    except (OSError, ValueError, IndexError):
        return None


def _session_members(session: int) -> list[int]:
    """Every other live process (on this host) in session `session`."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    return [
        int(entry)
        for entry in entries
        if entry.isdigit() and int(entry) != session and _session_of(int(entry)) == session
    ]


def _kill(pid: int, container_id: str, *, session: int | None = None) -> bool:
    """SIGKILL `pid` if it lives in the container (and, given `session`, in that session)."""
    pidfd = _open_pidfd(pid)
    try:
        if not in_container(pid, container_id):
            return False
        if session is not None and _session_of(pid) != session:
            return False
        if pidfd is None:
            os.kill(pid, signal.SIGKILL)
        else:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill_exec_process(pid: int, container_id: str) -> bool:
    """SIGKILL an exec's process and what it started; False when that cannot be done here.

    The Engine API can signal a whole container but not one exec, and a timed-out command
    must die without taking its task down. berth runs as root on the engine's host, in the
    host's PID namespace, where the `Pid` that exec inspect reports is a real process id that
    we may signal. Elsewhere (an engine inside a VM like Docker Desktop, a rootless engine,
    berth itself in a container) that number means nothing here or, worse, names an unrelated
    process. So a process is only signalled if /proc shows it in the task's own cgroup, and
    through a pidfd opened before that check, so a pid reused in between is never hit. When
    it cannot be killed (PermissionError, no such process, not our host) the caller just
    detaches and the command keeps running in the task until it ends by itself.

    runc makes every exec's process a session leader, so the processes it started (a
    script's children, which would otherwise outlive it and keep its output open) are found
    by their session id and killed too; only those that left the session (`setsid`) remain.
    """
    leads_session = _session_of(pid) == pid
    if not _kill(pid, container_id):
        return False
    if leads_session:
        for _ in range(3):  # Again, for anything forked while the first pass ran.
            members = _session_members(pid)
            if not members:
                break
            for member in members:
                _kill(member, container_id, session=pid)
    return True

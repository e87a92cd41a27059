"""Idle upstream connections of the HTTP gateway, kept per upstream for reuse."""

from __future__ import annotations

from typing import TYPE_CHECKING

from berth.gateway.http.route_table import Upstream

if TYPE_CHECKING:
    from berth.gateway.http.upstream_connection import UpstreamConnection


class UpstreamPool:
    """Idle upstream connections, per upstream, most recently used last. A connection
    records when it went idle (`idle_since`) before it is put here."""

    def __init__(self, max_idle: int) -> None:
        self._max_idle = max_idle
        self._idle: dict[Upstream, list[UpstreamConnection]] = {}

    def take(self, upstream: Upstream) -> UpstreamConnection | None:
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        idle = self._idle.setdefault(conn.upstream, [])
        if len(idle) >= self._max_idle or conn.closed:
            conn.close()
            return
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.upstream)
        if idle and conn in idle:
            idle.remove(conn)

    def expire(self, older_than: float) -> None:
        for upstream, idle in list(self._idle.items()):
            for conn in [c for c in idle if c.idle_since < older_than or c.closed]:
                idle.remove(conn)
                conn.close()
            if not idle:
                del self._idle[upstream]

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

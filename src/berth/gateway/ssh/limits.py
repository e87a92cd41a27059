"""Per-client-address limits of the SSH gateway: connection attempts and failed logins.

Each client address has two token buckets (`berth.token_buckets`): one charged for every
connection, one for every failed login (a connection that offered at least one key and ended
without logging in). A connection is turned away while either bucket is empty: disconnected
as soon as it asks to authenticate, before any key is looked up, with why and for how long
(`Received disconnect ...: berth: too many ...`). Addresses are counted apart, so one noisy
client never locks out another; clients behind one NAT share a budget. A rate or burst of 0
turns that limit off. The key exchange of a turned-away connection is still done (that is
what lets the client read the reason): the limits bound lookups and login attempts, not the
cost of a flood of handshakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.token_buckets import TokenBuckets


@dataclass(frozen=True)
class SshLimits:
    """Sustained rates (per second) and bursts per client address; 0 turns a limit off."""

    connections_per_second: float = 5.0
    connection_burst: int = 30
    failed_logins_per_second: float = 0.1
    failed_login_burst: int = 10


def _buckets(rate: float, burst: int) -> TokenBuckets | None:
    return TokenBuckets(rate=rate, burst=burst) if rate > 0 and burst > 0 else None


class AddressLimits:
    """The buckets of every client address (bounded in memory like the API's)."""

    def __init__(self, limits: SshLimits) -> None:
        self._connections = _buckets(limits.connections_per_second, limits.connection_burst)
        self._failures = _buckets(limits.failed_logins_per_second, limits.failed_login_burst)

    def admit(self, address: str) -> str | None:
        """Charge a connection from `address`: None to serve it, or why it is turned away."""
        if self._connections is not None:
            decision = self._connections.take(address)
            if not decision.allowed:
                return (
                    f"berth: too many SSH connections from {address}; "
                    f"try again in {decision.retry_after} s"
                )
        if self._failures is not None:
            decision = self._failures.peek(address)
            if not decision.allowed:
                return (
                    f"berth: too many failed SSH logins from {address}; "
                    f"try again in {decision.retry_after} s"
                )
        return None

    def failed_login(self, address: str) -> None:
        """Charge a failed login to `address`."""
        if self._failures is not None:
            self._failures.take(address)

"""Which berth process is which: replica ids and their presence in the database.

Several replicas share one database. Each process names itself once (`new_replica_id`) and,
while it runs, keeps a presence lease (`presence_name`) renewed beside its controllers'
leases (`berth.control.leadership`). What a process owns outside the database (a shell
session's WebSocket, say) is recorded with its id; once its presence lease has lapsed the
process is gone (stopped, crashed or cut off), and what it owned is released by whichever
replica notices (`berth.domain.shells.end_orphaned_sessions`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

PRESENCE_PREFIX = "replica:"


def new_replica_id() -> str:
    """This process's name as a lease holder: host, pid and a random part (a restarted
    process never continues an earlier process's lease or sessions)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def presence_name(replica_id: str) -> str:
    """The lease a running replica renews to show it is alive (a lease name is at most 64
    characters, a replica id up to 100, so the name carries a digest of the id)."""
    return PRESENCE_PREFIX + hashlib.sha256(replica_id.encode()).hexdigest()[:32]

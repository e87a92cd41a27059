"""Rules for a container's mount paths (pure): absolute, distinct, not nested in one another,
and never shadowing `/` or the system directories a dev box needs to run."""

from __future__ import annotations

import posixpath

from berth.domain.errors import Invalid

SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
)
"""Nothing at or under these may be mounted over."""
SYSTEM_DIRS = ("/", "/var", "/var/lib", "/var/run", "/home")
"""These exact directories may not be mounted over (their subdirectories may)."""
MAX_MOUNTS = 20


def validate_mount_paths(paths: list[str]) -> list[str]:
    """The paths, normalised; raise `Invalid` naming `mount_paths` and the rule broken."""
    if len(paths) > MAX_MOUNTS:
        raise _invalid(f"at most {MAX_MOUNTS} mount paths")
    normalised: list[str] = []
    for raw in paths:
        if not raw.startswith("/"):
            raise _invalid(f"{raw!r} is not an absolute path")
        if any(part == ".." for part in raw.split("/")):
            raise _invalid(f"{raw!r} must not contain '..'")
        if any(ord(ch) < 32 for ch in raw) or ":" in raw or "," in raw:
            raise _invalid(f"{raw!r} contains a character not allowed in a mount path")
        path = posixpath.normpath(raw)
        path = "/" if path == "//" else path
        if path in SYSTEM_DIRS or any(
            path == tree or path.startswith(tree + "/") for tree in SYSTEM_TREES
        ):
            raise _invalid(f"{path!r} would shadow a system directory")
        if path in normalised:
            raise _invalid(f"{path!r} is listed twice")
        for other in normalised:
            if path.startswith(other + "/") or other.startswith(path + "/"):
                raise _invalid(f"{path!r} and {other!r} overlap (one is inside the other)")
        normalised.append(path)
    return normalised


def _invalid(rule: str) -> Invalid:
    return Invalid(f"mount_paths: {rule}", field="mount_paths")

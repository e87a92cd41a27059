"""Where the Kubernetes API server is and how to authenticate to it: a kubeconfig file, or
the service account of the pod berth runs in.

Only what a kubeconfig can say without running programs is supported: the server's address
and CA (file or inline data, or `insecure-skip-tls-verify`), a client certificate and key
(file or inline data), a bearer token or token file. `exec` and `auth-provider` users (cloud
plugins) are refused with a clear message: they run programs berth does not ship.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from berth.runtime.base import RuntimeDriverError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's service-account token, CA and namespace."""


class KubeconfigError(RuntimeDriverError):
    """The kubeconfig cannot be read or names something berth cannot use."""


@dataclass(frozen=True)
class ClusterConfig:
    """An API server and the credentials for it."""

    server: str
    """`https://host:port` (no trailing slash)."""
    ssl_context: ssl.SSLContext
    token: str | None = None
    token_file: Path | None = None
    """Read on every connection (a projected service-account token is rotated)."""
    source: str = ""
    """Where this came from, for messages."""

    def bearer(self) -> str | None:
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise KubeconfigError(
                    f"cannot read the token file {self.token_file}: {exc}"
                ) from None
        return self.token


def load_config(path: str | Path | None) -> ClusterConfig:
    """The cluster named by the kubeconfig at `path`; without one, the in-cluster service
    account when berth runs in a pod, else `$KUBECONFIG` (its first file), else
    `~/.kube/config`."""
    if path is not None:
        return _from_kubeconfig(Path(path).expanduser())
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
        return _in_cluster()
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return _from_kubeconfig(Path(env or "~/.kube/config").expanduser())


def _in_cluster() -> ClusterConfig:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ssl_context=context,
        token_file=SERVICE_ACCOUNT_DIR / "token",
        source="the pod's service account",
    )


def _named(entries: Any, name: str, kind: str, path: Path) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(kind)
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"kubeconfig {path} has no {kind} named '{name}'")


def _from_kubeconfig(path: Path) -> ClusterConfig:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read the kubeconfig {path}: {exc}") from None
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    context_name = document.get("current-context")
    if not context_name:
        raise KubeconfigError(f"kubeconfig {path} sets no current-context")
    context = _named(document.get("contexts"), context_name, "context", path)
    cluster = _named(document.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(document.get("users"), str(context.get("user")), "user", path)
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(
            f"kubeconfig {path}: user '{context.get('user')}' authenticates through a plugin "
            "(exec or auth-provider), which berth does not run; give it a client certificate "
            "or a token (e.g. a ServiceAccount's)"
        )
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith("https://"):
        raise KubeconfigError(f"kubeconfig {path}: cluster server {server!r} is not https://")
    base = path.parent
    ssl_context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        ssl_context = ssl.create_default_context(cadata=ca)
    elif cluster.get("certificate-authority"):
        ssl_context = ssl.create_default_context(
            cafile=str(_relative(base, cluster["certificate-authority"]))
        )
    _load_client_certificate(ssl_context, user, base, path)
    token_file = user.get("tokenFile")
    return ClusterConfig(
        server=server,
        ssl_context=ssl_context,
        token=str(user["token"]) if user.get("token") else None,
        token_file=_relative(base, token_file) if token_file else None,
        source=f"kubeconfig {path}",
    )


def _relative(base: Path, name: str) -> Path:
    """A kubeconfig's file names are relative to the kubeconfig's own folder."""
    candidate = Path(name).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _load_client_certificate(
    context: ssl.SSLContext, user: dict[str, Any], base: Path, path: Path
) -> None:
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    try:
        if cert and key:
            # The ssl module loads a certificate chain only from files: a private folder
            # holds them for the time of the call.
            with tempfile.TemporaryDirectory(prefix="berth-kube-") as folder:
                cert_path, key_path = Path(folder, "client.crt"), Path(folder, "client.key")
                cert_path.write_bytes(base64.b64decode(cert))
                key_path.write_bytes(base64.b64decode(key))
                context.load_cert_chain(cert_path, key_path)
        elif user.get("client-certificate") and user.get("client-key"):
            context.load_cert_chain(
                _relative(base, user["client-certificate"]), _relative(base, user["client-key"])
            )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise KubeconfigError(
            f"kubeconfig {path}: cannot load the client certificate: {exc}"
        ) from None

"""The Kubernetes cluster tests may run on, named by `BERTH_TEST_KUBECONFIG`, and what its
API server says about berth's objects (read with the driver's own client, as kubectl would).

Without the variable, tests that need a cluster are skipped with `NO_CLUSTER` as the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from berth.domain import labels
from berth.runtime.kubernetes.client import ApiClient, Json, selector_param
from berth.runtime.kubernetes.config import load_config
from berth.runtime.kubernetes.mapping import image_names

KUBECONFIG = os.environ.get("BERTH_TEST_KUBECONFIG", "")
"""A cluster for the Kubernetes driver (tests/README or docs/kubernetes.md says how)."""
NO_CLUSTER = "no cluster: set BERTH_TEST_KUBECONFIG"
MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "berth.yaml"
"""berth's own deployment on a cluster: its ClusterRole is what the driver is granted."""
needs_cluster = pytest.mark.skipif(not KUBECONFIG, reason=NO_CLUSTER)


def new_namespace() -> str:
    """A namespace name of a test's own, for a driver's objects outside any tenant's."""
    return f"berth-test-{secrets.token_hex(4)}"


def server_env(namespace: str) -> dict[str, str]:
    """The settings of a `berth serve` on the cluster, its own objects in `namespace`."""
    return {
        "BERTH_RUNTIME": "kubernetes",
        "BERTH_KUBECONFIG": KUBECONFIG,
        "BERTH_KUBERNETES_NAMESPACE": namespace,
    }


def request(
    method: str,
    path: str,
    *,
    body: Json | None = None,
    selector: Mapping[str, str] | None = None,
    kubeconfig: str | Path = KUBECONFIG,
) -> tuple[int, Json]:
    """One call on the cluster's API server as `kubeconfig`'s user: (status, JSON body)."""

    async def call() -> tuple[int, Json]:
        api = ApiClient(load_config(kubeconfig))
        try:
            params = {"labelSelector": selector_param(selector)} if selector else None
            response = await api.request(method, path, params=params, body=body)
            answer: Json = response.json() if response.content else {}
            return response.status_code, answer
        finally:
            await api.close()

    return asyncio.run(call())


def items(path: str, selector: Mapping[str, str]) -> list[Json]:
    """The objects listed at `path` (e.g. `/api/v1/pods`, all namespaces) carrying `selector`."""
    status, listed = request("GET", path, selector=selector)
    assert status == 200, listed
    found: list[Json] = listed.get("items") or []
    return found


def names(path: str, selector: Mapping[str, str]) -> list[str]:
    return [str(item["metadata"]["name"]) for item in items(path, selector)]


def has_image(image: str) -> bool:
    """Whether a node of the cluster lists `image` (loaded there: the cluster pulls nothing)."""
    wanted = image_names(image)
    for node in items("/api/v1/nodes", {}):
        for entry in (node.get("status") or {}).get("images") or []:
            if wanted & set(entry.get("names") or []):
                return True
    return False


def remove_instance(instance_id: str, namespace: str) -> None:
    """Delete every namespace of a berth instance's users, and its own `namespace`, with all
    they hold (the API server finishes the deletion in the background)."""
    tenants = names("/api/v1/namespaces", labels.instance_selector(instance_id))
    for name in [*tenants, namespace]:
        delete(f"/api/v1/namespaces/{name}")


def delete(path: str) -> None:
    """Delete the object at `path` (gone already is fine)."""
    status, answer = request("DELETE", path)
    assert status in (200, 202, 404), answer


COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{namespace}/secrets",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "ResourceQuota": "/api/v1/namespaces/{namespace}/resourcequotas",
}
"""Where the kinds tests make live."""


def create(manifest: Json) -> str:
    """Create `manifest` (one of `COLLECTIONS`' kinds); the path to delete it by."""
    metadata = manifest["metadata"]
    collection = COLLECTIONS[manifest["kind"]].format(namespace=metadata.get("namespace"))
    status, answer = request("POST", collection, body=manifest)
    assert status == 201, answer
    return f"{collection}/{metadata['name']}"


def deployed(kind: str) -> Json:
    """The one object of `kind` in deploy/kubernetes/berth.yaml."""
    (found,) = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d["kind"] == kind]
    return dict(found)


@contextlib.contextmanager
def berth_service_account() -> Iterator[tuple[str, str]]:
    """(namespace, account): a ServiceAccount of a new namespace bound to a copy of the
    deployed ClusterRole and to nothing else; all of it deleted afterwards."""
    suffix = secrets.token_hex(4)
    namespace, account, role = f"berth-role-{suffix}", "berth", f"berth-test-{suffix}"
    cluster_role = deployed("ClusterRole")
    cluster_role["metadata"] = {"name": role}
    binding = deployed("ClusterRoleBinding")
    binding["metadata"] = {"name": role}
    binding["roleRef"] = {**binding["roleRef"], "name": role}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    made: list[str] = []
    try:
        made.append(create({"kind": "Namespace", "metadata": {"name": namespace}}))
        made.append(
            create(
                {"kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}}
            )
        )
        made.append(create({"apiVersion": "rbac.authorization.k8s.io/v1", **cluster_role}))
        made.append(create({"apiVersion": "rbac.authorization.k8s.io/v1", **binding}))
        yield namespace, account
    finally:
        for path in reversed(made):
            delete(path)


def service_account_token(namespace: str, account: str, *, bound_secret: str = "") -> str:
    """A token of the ServiceAccount `namespace/account` (a TokenRequest, valid an hour), as
    a pod holds; bound to the Secret `bound_secret` of that namespace when given, so
    deleting that Secret invalidates it (as a rotated pod token is retired)."""
    spec: Json = {"expirationSeconds": 3600}
    if bound_secret:
        status, secret = request("GET", f"/api/v1/namespaces/{namespace}/secrets/{bound_secret}")
        assert status == 200, secret
        spec["boundObjectRef"] = {
            "kind": "Secret",
            "apiVersion": "v1",
            "name": bound_secret,
            "uid": secret["metadata"]["uid"],
        }
    status, answer = request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    assert status == 201, answer
    return str(answer["status"]["token"])


def service_account_kubeconfig(
    path: Path, namespace: str, account: str, *, token_file: Path | None = None
) -> Path:
    """A kubeconfig at `path` for the cluster of `KUBECONFIG` as the ServiceAccount
    `namespace/account`: its token inline, or (`token_file`) named by `tokenFile`, which the
    caller writes (and rewrites, as a kubelet rotates a projected token)."""
    admin = yaml.safe_load(Path(KUBECONFIG).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    cluster_entry = dict(server["cluster"])
    authority = cluster_entry.get("certificate-authority")
    if authority:  # relative to the kubeconfig it came from
        cluster_entry["certificate-authority"] = str(Path(KUBECONFIG).parent / authority)
    user = (
        {"tokenFile": str(token_file)}
        if token_file is not None
        else {"token": service_account_token(namespace, account)}
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster_entry}],
        "users": [{"name": account, "user": user}],
        "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path

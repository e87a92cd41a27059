"""Pure mapping from berth's `TaskSpec` to Kubernetes objects (no I/O).

What an operator sees with kubectl: each tenant network (berth makes one per user) is a
namespace of that name, labelled with the network's labels and holding a NetworkPolicy that
isolates it from other tenants; each task is a Pod named after `TaskSpec.name` with the
task's labels; its environment is a Secret the Pod's env refers to; each volume is a
PersistentVolumeClaim labelled with the volume's labels.

A task id is `<namespace>/<pod name>`: everything the driver needs to find the pod again.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from berth.runtime.base import InvalidTaskSpec, TaskId, TaskSpec

Json = dict[str, Any]

CONTAINER = "task"
"""The name of the one container in every task's pod."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "berth"}
"""On the namespaces, secrets and claims the driver makes (pods carry only the task's own
labels, so a task reads back exactly the labels it was launched with)."""
START_GATE = "dev.berth/start"
"""A scheduling gate on a pod that `create` made and `start` has not started yet."""
PORTS_ANNOTATION = "dev.berth/ports"
"""The task's ports to publish on loopback, comma-separated."""
NETWORK_POLICY = "berth-tenant-isolation"
MIN_MEMORY_MB = 6
"""Below this a container cannot even start (the same floor as Docker's)."""
DROPPED_CAPABILITIES = ("NET_RAW",)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def dns_label(name: str) -> str:
    """`name` as a DNS label (a namespace or claim name): lowercase, at most 63 characters,
    a digest of the whole replacing the tail when it must be shortened."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "x"
    if cleaned == name and len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{cleaned[:52].rstrip('-')}-{digest}"


def task_id(namespace: str, pod: str) -> TaskId:
    return TaskId(f"{namespace}/{pod}")


def split_task_id(value: str) -> tuple[str, str] | None:
    """(namespace, pod name) of a task id, or None when it cannot name a pod of ours."""
    namespace, slash, pod = value.partition("/")
    if not slash or not _DNS_LABEL.match(namespace) or not _DNS_SUBDOMAIN.match(pod):
        return None
    return namespace, pod


def namespace_of(spec: TaskSpec, default: str) -> str:
    """A tenant's tasks live in the namespace named after its network; others in `default`."""
    return dns_label(spec.network) if spec.network else default


def secret_name(pod: str) -> str:
    return f"{pod[:240]}-env"


def claim_name(volume: str) -> str:
    return dns_label(volume)


def cpu_quantity(cpu: float) -> str:
    return f"{max(1, math.ceil(cpu * 1000))}m"


def validate(spec: TaskSpec) -> None:
    """Refuse what the cluster would accept but never run, or what has no Kubernetes name."""
    if not _DNS_SUBDOMAIN.match(spec.name) or len(spec.name) > 253:
        raise InvalidTaskSpec(
            f"task name '{spec.name}' is not a valid pod name (lowercase letters, digits, "
            "'-' and '.', at most 253 characters)"
        )
    if spec.memory_mb < MIN_MEMORY_MB:
        raise InvalidTaskSpec(
            f"memory_mb must be at least {MIN_MEMORY_MB} (got {spec.memory_mb}): a container "
            "cannot start with less"
        )
    if spec.cpu <= 0:
        raise InvalidTaskSpec(f"cpu must be positive (got {spec.cpu})")
    for port in spec.ports:
        if not 1 <= port <= 65535:
            raise InvalidTaskSpec(f"port {port} is not a TCP port (1-65535)")


def namespace_manifest(name: str, labels: Mapping[str, str]) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**labels, **MANAGED_BY}},
    }


def network_policy_manifest(namespace: str, labels: Mapping[str, str]) -> Json:
    """Pods of the namespace accept connections from each other and from namespaces that are
    no tenant's (where berth and its gateways run), never from another tenant's pods."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NETWORK_POLICY,
            "namespace": namespace,
            "labels": {**labels, **MANAGED_BY},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": key, "operator": "DoesNotExist"}
                                    for key in sorted(labels)
                                ]
                                or [
                                    {
                                        "key": "app.kubernetes.io/managed-by",
                                        "operator": "NotIn",
                                        "values": ["berth"],
                                    }
                                ]
                            }
                        },
                    ]
                }
            ],
        },
    }


def secret_manifest(spec: TaskSpec, namespace: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(spec.name),
            "namespace": namespace,
            "labels": {**spec.labels, **MANAGED_BY},
        },
        "stringData": dict(spec.env),
    }


def claim_manifest(volume: str, namespace: str, labels: Mapping[str, str], size_gb: float) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(volume),
            "namespace": namespace,
            "labels": {**labels, **MANAGED_BY},
            "annotations": {"dev.berth/volume": volume},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{max(1, math.ceil(size_gb * 1024))}Mi"}},
        },
    }


def pod_manifest(spec: TaskSpec, namespace: str, *, grace_seconds: int, gated: bool) -> Json:
    """The pod of a task: one container, never restarted by the kubelet (berth decides),
    confined as on Docker (no privilege escalation, NET_RAW dropped, seccomp RuntimeDefault),
    its environment from the task's Secret, no service-account token mounted."""
    resources = {"cpu": cpu_quantity(spec.cpu), "memory": f"{spec.memory_mb}Mi"}
    container: Json = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": list(DROPPED_CAPABILITIES)},
        },
        "ports": [{"containerPort": port, "protocol": "TCP"} for port in spec.ports],
        "env": [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": secret_name(spec.name), "key": key}},
            }
            for key in spec.env
        ],
        "volumeMounts": [
            {"name": f"volume-{index}", "mountPath": path}
            for index, (_, path) in enumerate(spec.volumes)
        ],
    }
    if spec.command is not None:
        # Like Docker's `Cmd`: the image's entrypoint (if any) is kept, its command replaced.
        container["args"] = list(spec.command)
    pod_spec: Json = {
        "restartPolicy": "Never",
        # The pause process is PID 1 (it reaps zombies), so the command gets SIGTERM on stop.
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {
                "name": f"volume-{index}",
                "persistentVolumeClaim": {"claimName": claim_name(volume)},
            }
            for index, (volume, _) in enumerate(spec.volumes)
        ],
    }
    if gated:
        pod_spec["schedulingGates"] = [{"name": START_GATE}]
    metadata: Json = {"name": spec.name, "namespace": namespace, "labels": dict(spec.labels)}
    if spec.ports:
        metadata["annotations"] = {PORTS_ANNOTATION: ",".join(str(p) for p in spec.ports)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity (`2`, `1500m`, `24632884Ki`, `1e3`) as a number."""
    text = text.strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            try:
                return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None


def image_names(image: str) -> set[str]:
    """The names a node may list `image` under (`busybox` is `docker.io/library/busybox:latest`)."""
    name = image
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        full = f"docker.io/library/{name}"
    elif "." in first or ":" in first or first == "localhost":
        full = name
    else:
        full = f"docker.io/{name}"
    return {image, name, full}

"""The Kubernetes driver's pure mapping: TaskSpec -> Pod and the objects around it, Pod ->
TaskState and task events (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from berth.runtime.base import InvalidTaskSpec, TaskSpec, TaskStatus
from berth.runtime.kubernetes.mapping import (
    START_GATE,
    claim_manifest,
    dns_label,
    image_names,
    namespace_of,
    network_policy_manifest,
    parse_quantity,
    pod_manifest,
    secret_manifest,
    split_task_id,
    validate,
)
from berth.runtime.kubernetes.status import events_between, seen_of, task_state

LABELS = {"dev.berth.instance": "i1", "dev.berth.user": "u1", "dev.berth.run": "r1"}


def spec(**overrides: Any) -> TaskSpec:
    fields: dict[str, Any] = {
        "name": "berth-i1-r1",
        "image": "berth/busybox:latest",
        "command": ["sh", "-c", "echo hi"],
        "env": {"TOKEN": "s3cret"},
        "labels": LABELS,
        "cpu": 0.5,
        "memory_mb": 64,
        "ports": (8080,),
        "network": "berth-i1-u1",
        "network_labels": {"dev.berth.instance": "i1", "dev.berth.user": "u1"},
        "volumes": (("berth-i1-w1-abc", "/data"),),
        "volume_labels": {"dev.berth.workload": "w1"},
    }
    fields.update(overrides)
    return TaskSpec(**fields)


def test_the_pod_is_confined_limited_and_named_after_the_task() -> None:
    pod = pod_manifest(spec(), "berth-i1-u1", grace_seconds=3, gated=False)
    assert pod["metadata"]["name"] == "berth-i1-r1"
    assert pod["metadata"]["namespace"] == "berth-i1-u1"
    assert pod["metadata"]["labels"] == LABELS
    body = pod["spec"]
    assert body["restartPolicy"] == "Never"
    assert body["shareProcessNamespace"] is True
    assert body["terminationGracePeriodSeconds"] == 3
    assert body["automountServiceAccountToken"] is False
    assert body["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "schedulingGates" not in body
    (container,) = body["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["sh", "-c", "echo hi"] and "command" not in container
    limits = {"cpu": "500m", "memory": "64Mi"}
    assert container["resources"] == {"requests": limits, "limits": limits}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["NET_RAW"]}
    assert container["volumeMounts"] == [{"name": "volume-0", "mountPath": "/data"}]
    assert body["volumes"][0]["persistentVolumeClaim"] == {"claimName": "berth-i1-w1-abc"}


def test_environment_values_stay_out_of_the_pod() -> None:
    pod = pod_manifest(spec(), "ns", grace_seconds=1, gated=False)
    assert "s3cret" not in repr(pod)
    (variable,) = pod["spec"]["containers"][0]["env"]
    assert variable == {
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "berth-i1-r1-env", "key": "TOKEN"}},
    }
    secret = secret_manifest(spec(), "ns")
    assert secret["metadata"]["name"] == "berth-i1-r1-env"
    assert secret["stringData"] == {"TOKEN": "s3cret"}


def test_a_created_task_waits_behind_berths_scheduling_gate() -> None:
    pod = pod_manifest(spec(command=None), "ns", grace_seconds=1, gated=True)
    assert pod["spec"]["schedulingGates"] == [{"name": START_GATE}]
    assert "args" not in pod["spec"]["containers"][0]  # the image's own command
    pod["status"] = {"phase": "Pending"}
    assert task_state(pod).status is TaskStatus.CREATED


def test_tenants_get_the_namespace_of_their_network_and_an_isolating_policy() -> None:
    assert namespace_of(spec(), "default-ns") == "berth-i1-u1"
    assert namespace_of(spec(network=None), "default-ns") == "default-ns"
    policy = network_policy_manifest("berth-i1-u1", {"dev.berth.user": "u1"})
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources  # the tenant's own pods
    other = sources[1]["namespaceSelector"]["matchExpressions"]
    assert other == [{"key": "dev.berth.user", "operator": "DoesNotExist"}]


def test_claims_are_labelled_and_sized() -> None:
    claim = claim_manifest("Vol_One", "ns", {"dev.berth.workload": "w1"}, 2)
    assert claim["metadata"]["name"].startswith("vol-one-")
    assert claim["metadata"]["labels"]["dev.berth.workload"] == "w1"
    assert claim["metadata"]["annotations"] == {"dev.berth/volume": "Vol_One"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "2048Mi"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"name": "Not_A_Pod"}, "not a valid pod name"),
        ({"memory_mb": 1}, "memory_mb must be at least 6"),
        ({"cpu": 0}, "cpu must be positive"),
        ({"ports": (70000,)}, "not a TCP port"),
    ],
)
def test_specs_the_cluster_could_not_run_are_refused(overrides: dict[str, Any], rule: str) -> None:
    with pytest.raises(InvalidTaskSpec, match=rule):
        validate(spec(**overrides))


def test_names_and_ids() -> None:
    assert dns_label("berth-i1-u1") == "berth-i1-u1"
    long = dns_label("x" * 100)
    assert len(long) <= 63 and long == dns_label("x" * 100) != dns_label("x" * 101)
    assert split_task_id("ns/pod-1") == ("ns", "pod-1")
    assert split_task_id("just-a-name") is None
    assert split_task_id("ns/../../nodes") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2.0), ("1500m", 1.5), ("24632884Ki", 24632884 * 1024), ("1Gi", 2**30), ("1e3", 1e3)],
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value


def test_image_names_as_a_node_lists_them() -> None:
    assert "docker.io/berth/busybox:latest" in image_names("berth/busybox")
    assert "docker.io/library/busybox:1.36" in image_names("busybox:1.36")
    assert "registry:5000/app:latest" in image_names("registry:5000/app")


# -- pods read back ---------------------------------------------------------------------------


def pod(state: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    container = {"name": "task", "state": state} if state is not None else None
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "1"}},
        "spec": {},
        "status": {**status, "containerStatuses": [container] if container else []},
    }


def test_a_running_pod() -> None:
    state = task_state(pod({"running": {"startedAt": "2026-01-02T03:04:05Z"}}, phase="Running"))
    assert state.task_id == "ns/p" and state.name == "p" and state.labels == {"a": "1"}
    assert state.status is TaskStatus.RUNNING
    assert state.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_an_ended_container_gives_its_code_and_times() -> None:
    ended = {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "2026-01-02T03:04:05Z",
            "finishedAt": "2026-01-02T03:04:06Z",
        }
    }
    state = task_state(pod(ended, phase="Failed"))
    assert (state.status, state.exit_code, state.oom_killed) == (TaskStatus.EXITED, 3, False)
    assert state.finished_at is not None and state.started_at is not None
    assert state.finished_at >= state.started_at
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    assert task_state(pod(oom)).oom_killed


def test_a_missing_program_exits_127_with_the_runtimes_reason() -> None:
    message = 'exec: "/bin/nope": stat /bin/nope: no such file or directory: unknown'
    ended = {
        "terminated": {
            "exitCode": 128,
            "reason": "StartError",
            "message": message,
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": "2026-01-02T03:04:06Z",
        }
    }
    state = task_state(pod(ended, phase="Failed"))
    assert (state.exit_code, state.error, state.started_at) == (127, message, None)


def test_a_pod_that_cannot_pull_its_image_is_not_left_pending() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
    state = task_state(pod(waiting, phase="Pending"))
    assert state.status is TaskStatus.EXITED and state.exit_code == 128
    assert state.error == "ImagePullBackOff: no such image"


def test_events_of_a_short_life_seen_only_at_its_end() -> None:
    ended = pod(
        {
            "terminated": {
                "exitCode": 7,
                "startedAt": "2026-01-02T03:04:05Z",
                "finishedAt": "2026-01-02T03:04:05Z",
            }
        }
    )
    seen = events_between(None, ended, deleted=False)
    assert [e.action for e in seen] == ["create", "start", "die"]
    assert seen[-1].labels["exitCode"] == "7" and seen[-1].exit_code == 7
    assert seen[-1].labels["a"] == "1"
    assert events_between(seen_of(ended), ended, deleted=False) == []
    assert [e.action for e in events_between(seen_of(ended), ended, deleted=True)] == ["destroy"]


def test_oom_comes_before_die() -> None:
    before = seen_of(pod({"running": {"startedAt": "2026-01-02T03:04:05Z"}}))
    ended = pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    assert [e.action for e in events_between(before, ended, deleted=False)] == ["oom", "die"]

"""Domain read models to wire models, of the Workloads API and of the Containers API."""

from __future__ import annotations

from berth.domain.containers import ContainerView
from berth.domain.ingress import IngressRuleRecord
from berth.domain.records import IngressRule, Run, Secret, SshKey
from berth.domain.secrets import SecretKeyRecord
from berth.domain.ssh_keys import SshKeyRecord
from berth.domain.views import RunRecord, WorkloadView
from berth.runtime.base import LogLine
from berth.schemas.containers import ContainerOut, IngressRuleOut, SshKeyOut
from berth.schemas.workloads import LogEvent, RunOut, SecretKeyOut, WorkloadOut


def run_out(run: Run | RunRecord) -> RunOut:
    duration = None
    if run.started_at is not None and run.finished_at is not None:
        duration = (run.finished_at - run.started_at).total_seconds()
    return RunOut(
        id=run.id,
        workload_id=run.workload_id,
        trigger=run.trigger,
        slot=run.slot,
        status=run.status,
        status_reason=run.status_reason,
        exit_code=run.exit_code,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_seconds=duration,
        vcpu_seconds=round(run.vcpu_seconds, 6),
        gb_seconds=round(run.gb_seconds, 6),
        credits=round(run.credits, 8),
    )


def workload_out(view: WorkloadView) -> WorkloadOut:
    w = view.workload
    command: str | list[str] | None = w.command_text
    if command is None and w.command is not None:
        command = [str(part) for part in w.command]
    return WorkloadOut(
        id=w.id,
        user_id=w.user_id,
        name=w.name,
        type=w.type,
        status=w.status,
        status_reason=w.status_reason,
        image=w.image,
        command=command,
        env={str(k): str(v) for k, v in w.env.items()},
        port=w.port,
        url=view.url,
        cpu=w.cpu,
        memory_mb=w.memory_mb,
        replicas=w.replicas,
        running_tasks=view.running_tasks,
        schedule_expr=w.schedule_expr,
        next_run_at=w.next_run_at,
        timeout_seconds=w.timeout_seconds,
        scale_to_zero=w.scale_to_zero,
        idle_timeout_seconds=w.idle_timeout_seconds,
        generation=w.generation,
        secret_keys=view.secret_keys,
        recent_runs=[run_out(run) for run in view.recent_runs],
        created_at=w.created_at,
        updated_at=w.updated_at,
    )


def secret_key_out(secret: Secret | SecretKeyRecord) -> SecretKeyOut:
    return SecretKeyOut(key=secret.key, created_at=secret.created_at, updated_at=secret.updated_at)


def log_event(line: LogLine) -> LogEvent:
    return LogEvent(timestamp=line.timestamp, stream=line.stream, message=line.message)


def container_out(view: ContainerView) -> ContainerOut:
    w = view.workload
    return ContainerOut(
        id=w.id,
        name=w.name,
        status=view.status,
        status_reason=w.status_reason,
        hostname=view.hostname,
        ssh_command=view.ssh_command,
        memory_mb=w.memory_mb,
        memory_used_mb=view.memory_used_mb,
        storage_gb=w.storage_gb or 0,
        storage_used_gb=view.storage_used_gb,
        instance_type=w.instance_type or "",
        created_at=w.created_at,
        ssh_enabled=w.ssh_enabled,
        https_enabled=view.https_enabled,
    )


def ssh_key_out(key: SshKey | SshKeyRecord) -> SshKeyOut:
    return SshKeyOut(
        id=key.id,
        name=key.name,
        public_key=key.public_key,
        fingerprint=key.fingerprint,
        created_at=key.created_at,
    )


def rule_out(rule: IngressRule | IngressRuleRecord) -> IngressRuleOut:
    return IngressRuleOut(
        id=rule.id,
        port=rule.port,
        target_port=rule.target_port,
        created_at=int(rule.created_at.timestamp()),
    )

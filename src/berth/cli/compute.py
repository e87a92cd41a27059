"""`berth compute ...`: the Workloads API from the command line, on the SDK."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from berth.cli.context import EXIT_TIMED_OUT, Context, Handler, UsageError, exit_status, gated
from berth.cli.output import (
    key_values,
    model_pairs,
    print_json,
    run_rows,
    session_rows,
    table,
    value_text,
    workload_details,
    workload_rows,
)
from berth.cli.paging import add_page_arguments, note_next_page, one_page
from berth.cli.progress import Progress
from berth.cli.terminal import run_shell, terminal_size
from berth.schemas.workloads import WorkloadOut
from berth.sdk import ExecEvent, ExecExit

JOB_ACTIVE = frozenset({"pending", "running"})
SERVICE_SETTLED = frozenset({"running", "stopped", "crash_loop", "failed"})
SCHEDULE_SETTLED = frozenset({"scheduled", "paused", "running"})
FAILED = frozenset({"failed", "crash_loop", "timed_out"})
SHELL_CHARACTERS = frozenset(" \t\n;|&$<>()*?'\"`\\~")


def add_compute_parser(subparsers: Any, common: Sequence[argparse.ArgumentParser]) -> None:
    compute = subparsers.add_parser("compute", help="services, jobs and schedules")
    commands = compute.add_subparsers(dest="compute_command", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, parents=list(common)
        )
        parser.set_defaults(client_handler=handler)
        return parser

    listing = command("list", _list, "list workloads, newest first")
    listing.add_argument("--type", dest="workload_type", choices=["service", "job", "schedule"])
    listing.add_argument("--status", help="only workloads in this status (e.g. running)")
    listing.add_argument("--name-prefix", help="only workloads whose name starts so")
    add_page_arguments(listing)

    create = command("create", _create, "create a workload")
    create.add_argument("--name", required=True)
    create.add_argument("--type", required=True, choices=["service", "job", "schedule"])
    create.add_argument("--image", required=True)
    create.add_argument(
        "--command", dest="run_command", help="run by /bin/sh -c (default: the image's command)"
    )
    create.add_argument("--env", action="append", default=[], metavar="K=V", help="repeatable")
    create.add_argument("--port", type=int)
    create.add_argument("--cpu", type=float)
    create.add_argument("--memory-mb", type=int)
    create.add_argument("--replicas", type=int)
    create.add_argument("--schedule", help="cron, cron(...) or rate(...) expression")
    create.add_argument("--timeout", type=int, help="seconds a job or scheduled run may take")
    create.add_argument(
        "--scale-to-zero",
        action="store_true",
        default=None,
        help="services: sleep after --idle-timeout without requests; a request wakes it",
    )
    create.add_argument(
        "--idle-timeout", type=int, metavar="SECONDS", help="services: idle time before sleeping"
    )
    _gate_args(create, "also wait until the workload runs (services) or finishes (jobs)")
    create.add_argument("--wait-timeout", type=float, default=600, metavar="SECONDS")

    for name, handler, help_text in (
        ("get", _get, "show a workload and its recent runs"),
        ("delete", _delete, "delete a workload"),
        ("start", _start, "start a service again, or resume a schedule"),
        ("stop", _stop, "scale a service to zero, or pause a schedule"),
        ("pause", _pause, "freeze a service's tasks, memory kept (Docker only)"),
        ("resume", _resume, "thaw a paused service"),
        ("run", _run, "start a run of a job or schedule now"),
        ("sessions", _sessions, "list shell sessions"),
    ):
        command(name, handler, help_text).add_argument("id")

    scale = command("scale", _scale, "set a service's replica count")
    scale.add_argument("id")
    scale.add_argument("count", type=int)

    runs = command("runs", _runs, "list runs, newest first")
    runs.add_argument("id")
    add_page_arguments(runs)

    logs = command("logs", _logs, "print a run's output")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until the task ends")
    logs.add_argument("--run", help="a run id (default: the live task or the latest run)")

    secrets = commands.add_parser("secrets", help="encrypted environment variables")
    secret_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    for name, handler, help_text, args in (
        ("list", _secrets_list, "list secret keys", ("id",)),
        ("set", _secrets_set, "set a secret (value from stdin if omitted)", ("id", "name")),
        ("delete", _secrets_delete, "delete a secret", ("id", "name")),
        ("reveal", _secrets_reveal, "print a secret's value", ("id", "name")),
    ):
        parser = secret_commands.add_parser(name, help=help_text, parents=list(common))
        parser.set_defaults(client_handler=handler)
        for arg in args:
            # The secret's name is not `key`: that is the credential (`--key`).
            parser.add_argument(arg, metavar="KEY" if arg == "name" else arg.upper())
        if name == "set":
            parser.add_argument("value", nargs="?")

    exec_ = command("exec", _exec, "run a command in a running task: exec ID -- CMD...")
    exec_.add_argument("id")
    exec_.add_argument(
        "cmd",
        nargs="*",
        metavar="CMD",
        help="argv; one argument with shell syntax (spaces, ;, |, $...) runs by /bin/sh -c",
    )
    exec_.add_argument("--timeout", type=int, help="seconds before the command is killed")
    exec_.add_argument("--task", help="run id of the task (default: a running one)")
    exec_.add_argument("-i", "--stdin", action="store_true", help="send local stdin to it")
    _gate_args(exec_, "wait for a human's approval when the call is gated")

    ssh = command("ssh", _ssh, "open an interactive shell in a running task")
    ssh.add_argument("id")
    ssh.add_argument("--task", help="run id of the task (default: a running one)")
    _gate_args(ssh, "wait for a human's approval when the call is gated")


def _gate_args(parser: argparse.ArgumentParser, wait_help: str) -> None:
    parser.add_argument("--wait", action="store_true", help=wait_help)
    parser.add_argument(
        "--approval-id", help="repeat a gated call that a human approved, by its approval id"
    )


def _show_workload(ctx: Context, workload: WorkloadOut) -> None:
    if ctx.json:
        print_json(ctx.out, workload)
    else:
        ctx.out.write(workload_details(workload))


def _list(ctx: Context, args: argparse.Namespace) -> int:
    keep = {"type": args.workload_type, "status": args.status, "name_prefix": args.name_prefix}
    next_cursor = None
    if one_page(args):
        page = ctx.client.compute.page(limit=args.limit, cursor=args.cursor, **keep)
        workloads, next_cursor = page.workloads, page.next_cursor
    else:
        workloads = ctx.client.compute.list(**keep)
    if ctx.json:
        print_json(ctx.out, {"workloads": workloads, "next_cursor": next_cursor})
    else:
        ctx.out.write(workload_rows(workloads))
        note_next_page(ctx, next_cursor)
    return 0


def _create_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": args.name, "type": args.type, "image": args.image}
    env: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    if env:
        fields["env"] = env
    optional = {
        "command": args.run_command,
        "port": args.port,
        "cpu": args.cpu,
        "memory_mb": args.memory_mb,
        "replicas": args.replicas,
        "schedule_expr": args.schedule,
        "timeout_seconds": args.timeout,
        "scale_to_zero": args.scale_to_zero,
        "idle_timeout_seconds": args.idle_timeout,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})
    return fields


def settled(workload: WorkloadOut) -> bool:
    """Done waiting: a job's first run finished, a service runs (or failed), a schedule waits."""
    if workload.type == "job":
        runs = workload.recent_runs
        return bool(runs) and runs[0].status not in JOB_ACTIVE
    if workload.type == "service":
        return workload.status in SERVICE_SETTLED
    return workload.status in SCHEDULE_SETTLED


def _create(ctx: Context, args: argparse.Namespace) -> int:
    fields = _create_fields(args)
    workload = gated(
        ctx,
        lambda approval: ctx.client.compute.create(approval_id=approval, **fields),
        wait=args.wait,
        approval_id=args.approval_id,
    )
    if args.wait:
        with Progress(ctx.err, f"waiting for {workload.name}") as progress:
            workload = ctx.client.compute.wait_for(
                workload.id,
                predicate=settled,
                timeout=args.wait_timeout,
                interval=0.25,
                on_poll=lambda w: progress.update(w.status),
            )
    _show_workload(ctx, workload)
    if args.wait and workload.status in FAILED:
        reason = f": {workload.status_reason}" if workload.status_reason else ""
        ctx.err.write(f"error: {workload.name} is {workload.status}{reason}\n")
        return 1
    return 0


def _get(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.get(args.id))
    return 0


def _delete(ctx: Context, args: argparse.Namespace) -> int:
    deleted = ctx.client.compute.delete(args.id)
    if ctx.json:
        print_json(ctx.out, deleted)
    else:
        ctx.out.write(f"deleted {deleted.id}\n")
    return 0


def _start(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.start(args.id))
    return 0


def _stop(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.stop(args.id))
    return 0


def _pause(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.pause(args.id))
    return 0


def _resume(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.resume(args.id))
    return 0


def _scale(ctx: Context, args: argparse.Namespace) -> int:
    _show_workload(ctx, ctx.client.compute.scale(args.id, args.count))
    return 0


def _run(ctx: Context, args: argparse.Namespace) -> int:
    run = ctx.client.compute.run(args.id)
    if ctx.json:
        print_json(ctx.out, run)
    else:
        ctx.out.write(key_values(model_pairs(run)))
    return 0


def _runs(ctx: Context, args: argparse.Namespace) -> int:
    next_cursor = None
    if one_page(args):
        page = ctx.client.compute.runs_page(args.id, limit=args.limit, cursor=args.cursor)
        runs, next_cursor = page.runs, page.next_cursor
    else:
        runs = list(ctx.client.compute.iter_runs(args.id))
    if ctx.json:
        print_json(ctx.out, {"runs": runs, "next_cursor": next_cursor})
    else:
        ctx.out.write(run_rows(runs))
        note_next_page(ctx, next_cursor)
    return 0


def _logs(ctx: Context, args: argparse.Namespace) -> int:
    if args.follow:
        for line in ctx.client.compute.logs(args.id, run_id=args.run, follow=True):
            ctx.out.write(line + "\n")
            ctx.out.flush()
        return 0
    logs = ctx.client.compute.logs(args.id, run_id=args.run)
    if ctx.json:
        print_json(ctx.out, logs)
    else:
        ctx.out.writelines(event.message + "\n" for event in logs.events)
    return 0


def _secrets_list(ctx: Context, args: argparse.Namespace) -> int:
    secrets = ctx.client.compute.secrets.list(args.id)
    if ctx.json:
        print_json(ctx.out, {"secrets": secrets})
    else:
        rows = [(s.key, value_text(s.created_at), value_text(s.updated_at)) for s in secrets]
        ctx.out.write(table(("KEY", "CREATED", "UPDATED"), rows))
    return 0


def _secrets_set(ctx: Context, args: argparse.Namespace) -> int:
    value: str = args.value if args.value is not None else sys.stdin.read().removesuffix("\n")
    secret = ctx.client.compute.secrets.set(args.id, args.name, value)
    if ctx.json:
        print_json(ctx.out, secret)
    else:
        ctx.out.write(f"set {secret.key}\n")
    return 0


def _secrets_delete(ctx: Context, args: argparse.Namespace) -> int:
    deleted = ctx.client.compute.secrets.delete(args.id, args.name)
    if ctx.json:
        print_json(ctx.out, deleted)
    else:
        ctx.out.write(f"deleted {deleted.id}\n")
    return 0


def _secrets_reveal(ctx: Context, args: argparse.Namespace) -> int:
    secret = ctx.client.compute.secrets.reveal(args.id, args.name)
    if ctx.json:
        print_json(ctx.out, secret)
    else:
        ctx.out.write(secret.value + "\n")
    return 0


def remote_command(argv: list[str]) -> str | list[str]:
    """One argument with shell syntax is a `/bin/sh -c` string; otherwise an argv list."""
    if len(argv) == 1 and SHELL_CHARACTERS & set(argv[0]):
        return argv[0]
    return argv


def _exec(ctx: Context, args: argparse.Namespace) -> int:
    if not args.cmd:
        raise UsageError("exec needs a command: berth compute exec ID -- CMD...")
    command = remote_command(args.cmd)
    stdin = sys.stdin.read() if args.stdin else None
    options: dict[str, Any] = {"stdin": stdin, "timeout_seconds": args.timeout, "task": args.task}
    compute = ctx.client.compute
    if ctx.json:
        result = gated(
            ctx,
            lambda approval: compute.exec(args.id, command, approval_id=approval, **options),
            wait=args.wait,
            approval_id=args.approval_id,
        )
        print_json(ctx.out, result)
        return exit_status(result.exit_code, timed_out=result.timed_out)
    events = gated(
        ctx,
        lambda approval: _started(
            compute.exec_stream(args.id, command, approval_id=approval, **options)
        ),
        wait=args.wait,
        approval_id=args.approval_id,
    )
    return _print_exec(ctx, events, args.timeout)


def _started(events: Iterator[ExecEvent]) -> Iterator[ExecEvent]:
    """Send the request now (so that gating is raised here), keeping every event."""
    first = next(events, None)
    return events if first is None else itertools.chain([first], events)


def _print_exec(ctx: Context, events: Iterator[ExecEvent], timeout: int | None) -> int:
    end: ExecExit | None = None
    for event in events:
        if isinstance(event, ExecExit):
            end = event
            continue
        stream = ctx.out if event.stream == "stdout" else ctx.err
        stream.write(event.data)
        stream.flush()
    if end is None:
        ctx.err.write("error: the exec stream ended without an exit status\n")
        return 1
    for name, cut in (("stdout", end.stdout_truncated), ("stderr", end.stderr_truncated)):
        if cut:
            ctx.err.write(f"berth: the command's {name} was truncated\n")
    if end.timed_out:
        limit = f" after {timeout}s" if timeout else ""
        ctx.err.write(f"error: the command timed out{limit} and was killed\n")
        return EXIT_TIMED_OUT
    return exit_status(end.exit_code, timed_out=False)


def _ssh(ctx: Context, args: argparse.Namespace) -> int:
    cols, rows = terminal_size()
    session = gated(
        ctx,
        lambda approval: ctx.client.compute.shell(
            args.id, task=args.task, cols=cols, rows=rows, approval_id=approval
        ),
        wait=args.wait,
        approval_id=args.approval_id,
    )
    return run_shell(session)


def _sessions(ctx: Context, args: argparse.Namespace) -> int:
    sessions = ctx.client.compute.shell_sessions(args.id)
    if ctx.json:
        print_json(ctx.out, {"sessions": sessions})
    else:
        ctx.out.write(session_rows(sessions))
    return 0

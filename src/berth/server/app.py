"""The application factory: `create_app(settings)` builds everything in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

import berth
from berth.api.deps import company_actor, path_user_actor
from berth.api.errors import install_error_handlers
from berth.api.gate import install_gate_handlers
from berth.api.middleware.json_body import AssumeJsonBody
from berth.api.middleware.limits import install_request_limits
from berth.api.middleware.unknown_fields import UnknownFieldWarnings
from berth.api.openapi import install_openapi
from berth.api.readiness import Readiness
from berth.api.routes import (
    approvals,
    containers,
    containers_ws,
    shell_stream,
    sign_in,
    system,
    usage,
)
from berth.api.routes.execution import build_execution_router
from berth.api.routes.files import build_files_router
from berth.api.routes.workloads import build_workloads_router
from berth.clock import SYSTEM_CLOCK, Clock
from berth.config import Settings
from berth.control.supervisor import Controllers
from berth.control.warm_pools import WarmPools
from berth.dashboard.app import install_dashboard
from berth.domain.retention import RunRetention
from berth.domain.shells import end_orphaned_sessions
from berth.domain.sign_in import SignInFailures
from berth.gateway.http.default_ports import resolve_gateway_ports
from berth.gateway.http.public_gateway import PublicGateway
from berth.gateway.ssh.authorizer import DomainSshAuthorizer
from berth.gateway.ssh.gateway import SshGateway
from berth.gateway.ssh.limits import SshLimits
from berth.runtime.base import Runtime
from berth.runtime.factory import create_runtime
from berth.server.bootstrap import (
    bridge_replicas,
    instance_id,
    open_domain,
    warm_pool_profiles,
)
from berth.server.mcp_endpoint import install_mcp_endpoint


def _operation_id(route: APIRoute) -> str:
    scope = "user" if "{user_id}" in route.path_format else "company"
    return f"{route.name}_{scope}"


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, clock: Clock = SYSTEM_CLOCK
) -> FastAPI:
    """The application; `runtime` and `clock` replace the configured driver and the real
    time (an in-process test builds berth on a `MemoryRuntime` and a `ManualClock`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Public URLs name the gateway's port, so it is decided before the domain is built.
        resolved = resolve_gateway_ports(settings)
        driver = runtime or create_runtime(
            settings.docker_host,
            driver=settings.runtime,
            clock=clock,
            kubeconfig=settings.kubeconfig,
            stop_grace_seconds=settings.stop_grace_seconds,
            namespace=settings.kubernetes_namespace,
        )
        profiles = warm_pool_profiles(settings)
        domain = await open_domain(resolved, runtime=driver, clock=clock)
        domain.pools.configure(profiles)
        replicas = await bridge_replicas(domain)
        controllers = Controllers(
            domain,
            driver,
            instance_id=instance_id(settings),
            reconcile_interval=settings.reconcile_interval_seconds,
            meter_interval=settings.meter_interval_seconds,
            stop_grace=settings.stop_grace_seconds,
            backoff_max=settings.crash_backoff_max_seconds,
            log_max_bytes=settings.log_max_bytes,
            retention=RunRetention.of(settings.run_retention_count, settings.run_retention_days),
            retention_interval=settings.run_retention_interval_seconds,
            lease_seconds=settings.lease_seconds,
        )
        app.state.domain = domain
        app.state.readiness = Readiness(domain)
        app.state.settings = resolved
        app.state.replay_secret = secrets.token_urlsafe(32)
        app.state.controllers = controllers
        await end_orphaned_sessions(domain, starting=True)
        ssh = SshGateway(
            host=settings.ssh_host,
            port=settings.ssh_port,
            host_key_path=settings.keys_dir() / "ssh_host_ed25519_key",
            authorizer=DomainSshAuthorizer(domain),
            runtime=driver,
            limits=SshLimits(
                connections_per_second=settings.ssh_connections_per_second,
                connection_burst=settings.ssh_connection_burst,
                failed_logins_per_second=settings.ssh_failed_logins_per_second,
                failed_login_burst=settings.ssh_failed_login_burst,
            ),
            events=domain.bus,
            uses=domain.uses,
        )
        await ssh.start()
        public = PublicGateway(resolved, domain, driver, start_now=controllers.start_now)
        await public.start()
        controllers.lease("idle-scaler", public.idle.run_forever)
        pools = WarmPools(
            domain, driver, instance_id=instance_id(settings), log_max_bytes=settings.log_max_bytes
        )
        controllers.lease("warm-pools", pools.run_forever)
        app.state.rule_listeners = public
        controllers.start()
        try:
            yield
        finally:
            await public.stop()
            await ssh.stop()
            await controllers.stop()
            with contextlib.suppress(TimeoutError):  # hand-overs under way end first
                async with asyncio.timeout(5):
                    await domain.pools.settle()
            if replicas is not None:
                await replicas.stop()
            await driver.close()
            await domain.close()

    app = FastAPI(
        title="berth",
        version=berth.__version__,
        description=(
            "Self-hosted compute: services, jobs, schedules and dev-box containers on your "
            "container engine."
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_openapi(app)
    install_error_handlers(app)
    install_gate_handlers(app)
    app.state.sign_in_failures = SignInFailures(
        per_second=settings.sign_in_failures_per_second, burst=settings.sign_in_failure_burst
    )
    app.add_middleware(AssumeJsonBody)
    app.add_middleware(UnknownFieldWarnings)
    # FastAPI tries routers in this order on every request, each refusing at once a path
    # outside its routes' prefixes (`api.routing`); the routers whose reads agents poll most
    # come first (no two routers' paths overlap, so the order decides nothing else).
    app.include_router(system.router)
    app.include_router(sign_in.router)
    app.include_router(build_workloads_router("/v1/compute", company_actor))
    app.include_router(containers.router)
    app.include_router(build_execution_router("/v1/compute", company_actor))
    app.include_router(build_files_router("/v1/compute", company_actor, dev_box=False))
    app.include_router(build_files_router("/compute/containers", company_actor, dev_box=True))
    app.include_router(approvals.router)
    app.include_router(usage.router)
    app.include_router(containers_ws.router)
    app.include_router(shell_stream.router)
    user_prefix = "/v1/users/{user_id}/compute"
    app.include_router(build_workloads_router(user_prefix, path_user_actor))
    app.include_router(build_execution_router(user_prefix, path_user_actor))
    app.include_router(build_files_router(user_prefix, path_user_actor, dev_box=False))
    install_mcp_endpoint(app)
    install_request_limits(app, settings)
    install_dashboard(app)  # last: its pages are tried after every API route
    return app

"""Health and system status: is berth up, can it reach its database (readiness, for a load
balancer in front of several replicas) and its container engine."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

import berth
from berth.api import readiness
from berth.api.responses import ERROR_BODY
from berth.api.routing import PrefixedRouter
from berth.domain.pool_shelf import PoolShelf

router = PrefixedRouter(tags=["system"])


class EngineStatus(BaseModel):
    reachable: bool
    error: str | None


class WarmPoolStatus(BaseModel):
    name: str
    ready: int
    """Ready tasks on this replica's shelf (the operator's overhead: nobody is billed)."""
    target: int
    """How many it keeps now: its size, or more while creates ask for more."""


class SystemStatus(BaseModel):
    version: str
    engine: EngineStatus
    warm_pools: list[WarmPoolStatus]
    """Empty where no pools are configured, or on a replica not keeping them."""


@router.get("/healthz", response_class=PlainTextResponse, summary="Liveness: returns ok")
async def healthz() -> str:
    return "ok"


@router.get(
    "/readyz",
    response_class=PlainTextResponse,
    summary="Readiness: returns ok while this replica's database answers, else 503",
    responses={
        503: {
            "content": ERROR_BODY,
            "description": "The database cannot be reached or did not answer within "
            f"{readiness.WITHIN_SECONDS:g} s (code `database_unavailable`); ask again after "
            "the seconds in `Retry-After`.",
            "headers": {
                "Retry-After": {
                    "description": "Whole seconds until the database may answer again.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        }
    },
)
async def readyz(request: Request) -> str:
    """Concurrent calls share one ping, whose answer stands for a second (`api.readiness`)."""
    check: readiness.Readiness = request.app.state.readiness
    await check.check()
    return "ok"


@router.get("/v1/system", response_model=SystemStatus, summary="Version and engine status")
async def system_status(request: Request) -> SystemStatus:
    error: str | None = request.app.state.controllers.reconciler.engine_error
    shelf: PoolShelf = request.app.state.domain.pools
    pools = [
        WarmPoolStatus(name=p.name, ready=len(shelf.ready(p.name)), target=shelf.target(p.name))
        for p in shelf.profiles
        if shelf.is_open
    ]
    return SystemStatus(
        version=berth.__version__,
        engine=EngineStatus(reachable=error is None, error=error),
        warm_pools=pools,
    )

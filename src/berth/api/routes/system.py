"""Health and system status: is berth up, and can it reach its container engine."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

import berth
from berth.api.routing import PrefixedRouter

router = PrefixedRouter(tags=["system"])


class EngineStatus(BaseModel):
    reachable: bool
    error: str | None


class SystemStatus(BaseModel):
    version: str
    engine: EngineStatus


@router.get("/healthz", response_class=PlainTextResponse, summary="Liveness: returns ok")
async def healthz() -> str:
    return "ok"


@router.get("/v1/system", response_model=SystemStatus, summary="Version and engine status")
async def system_status(request: Request) -> SystemStatus:
    error: str | None = request.app.state.controllers.reconciler.engine_error
    return SystemStatus(
        version=berth.__version__, engine=EngineStatus(reachable=error is None, error=error)
    )

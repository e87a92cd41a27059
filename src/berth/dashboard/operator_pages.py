"""The operator's pages: the company's users, each user's AccountKit, and credit grants.

Only human operators see them (`berth.domain.operators`, which refuses anyone else with 403
and another company's users with 404); the forms validate as `berth admin update-user`
does, and a refusal is shown next to its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from berth.dashboard.forms import FormErrors, domain_errors, optional_float, optional_int
from berth.dashboard.render import page
from berth.dashboard.session import Viewer, changing, domain_of, form_of, viewer
from berth.domain import operators
from berth.domain.errors import DomainError
from berth.domain.operators import KitChange

T = TypeVar("T")
router = APIRouter(include_in_schema=False)
LIMITS = (
    "max_cpu",
    "max_memory_mb",
    "max_replicas",
    "max_workloads",
    "max_containers",
    "max_ssh_keys",
)
FIELDS = {*LIMITS, "compute_enabled", "add_credits"}


@router.get("/operator/users")
async def users(request: Request) -> Response:
    signed_in = await viewer(request)
    rows = await operators.company_users(domain_of(request), signed_in.user_id)
    return await page(request, "operator_users.html", signed_in, users=rows)


async def _user_page(
    request: Request,
    signed_in: Viewer,
    user_id: str,
    *,
    errors: FormErrors,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    user, kit = await operators.managed_user(domain_of(request), signed_in.user_id, user_id)
    return await page(
        request,
        "operator_user.html",
        signed_in,
        status_code=status,
        user=user,
        kit=kit,
        limits=LIMITS,
        errors=errors,
        form=form or {},
        # A refused form shows what was typed; otherwise the stored AccountKit.
        compute_on=form.get("compute_enabled") == "on" if form else kit.compute_enabled,
    )


@router.get("/operator/users/{user_id}")
async def user(request: Request, user_id: str) -> Response:
    return await _user_page(request, await viewer(request), user_id, errors=FormErrors())


def _decimal(field: str, text: str) -> float | None:
    """A number field: empty is None (unchanged); `ValueError` naming the field otherwise."""
    value = optional_float(text)
    if isinstance(value, str):
        raise ValueError(f"{field}: must be a number")
    return value


def _whole(field: str, text: str) -> int | None:
    value = optional_int(text)
    if isinstance(value, str):
        raise ValueError(f"{field}: must be a whole number")
    return value


@router.post("/operator/users/{user_id}/kit")
async def change_kit(request: Request, user_id: str) -> Response:
    signed_in = await changing(request)
    form = await form_of(request)
    errors = FormErrors()

    def read(parse: Callable[[str, str], T], field: str) -> T | None:
        try:
            return parse(field, form.get(field, ""))
        except ValueError as exc:
            errors.add(field, str(exc), FIELDS)
            return None

    change = KitChange(
        compute_enabled=form.get("compute_enabled") == "on",
        max_cpu=read(_decimal, "max_cpu"),
        max_memory_mb=read(_whole, "max_memory_mb"),
        max_replicas=read(_whole, "max_replicas"),
        max_workloads=read(_whole, "max_workloads"),
        max_containers=read(_whole, "max_containers"),
        max_ssh_keys=read(_whole, "max_ssh_keys"),
    )
    if errors:
        return await _user_page(request, signed_in, user_id, errors=errors, form=form, status=422)
    return await _apply(request, signed_in, user_id, change, form)


@router.post("/operator/users/{user_id}/grant")
async def grant(request: Request, user_id: str) -> Response:
    signed_in = await changing(request)
    form = await form_of(request)
    errors = FormErrors()
    try:
        amount = _decimal("add_credits", form.get("add_credits", ""))
        if amount is None:
            raise ValueError("add_credits: required")
    except ValueError as exc:
        errors.add("add_credits", str(exc), FIELDS)
        return await _user_page(request, signed_in, user_id, errors=errors, form=form, status=422)
    return await _apply(request, signed_in, user_id, KitChange(add_credits=amount), form)


async def _apply(
    request: Request, signed_in: Viewer, user_id: str, change: KitChange, form: dict[str, str]
) -> Response:
    try:
        await operators.change_user(domain_of(request), signed_in.user_id, user_id, change)
    except DomainError as exc:
        if exc.field is None:
            raise
        errors = domain_errors(exc, FIELDS)
        return await _user_page(request, signed_in, user_id, errors=errors, form=form, status=422)
    return RedirectResponse(f"/operator/users/{user_id}", status_code=303)

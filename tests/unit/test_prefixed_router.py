"""Routers that refuse a path outside their routes' literal heads still route as FastAPI does."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.routing import Match

from berth.api.routing import PrefixedRouter


def build() -> tuple[FastAPI, PrefixedRouter, PrefixedRouter]:
    items = PrefixedRouter(prefix="/v1/items")
    users = PrefixedRouter(prefix="/v1/users/{user_id}/items")

    @items.get("")
    async def list_items() -> dict[str, str]:
        return {"router": "items", "id": "*"}

    @items.get("/{item_id}")
    async def get_item(item_id: str) -> dict[str, str]:
        return {"router": "items", "id": item_id}

    @users.get("/{item_id}")
    async def get_user_item(user_id: str, item_id: str) -> dict[str, str]:
        return {"router": "users", "id": f"{user_id}/{item_id}"}

    app = FastAPI()
    app.include_router(items)
    app.include_router(users)
    return app, items, users


def test_heads_are_the_routes_paths_up_to_their_first_parameter() -> None:
    _, items, users = build()
    assert items.literal_heads() == ("/v1/items", "/v1/items/")
    assert users.literal_heads() == ("/v1/users/",)


def test_a_path_outside_the_heads_is_refused_without_trying_the_routes() -> None:
    _, items, _ = build()
    scope = {"type": "http", "method": "GET", "path": "/v1/users/u/items/1", "root_path": ""}
    assert items.matches(scope) == (Match.NONE, {})


async def test_requests_reach_the_same_routes_as_with_plain_routers() -> None:
    app, _, _ = build()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/v1/items")).json() == {"router": "items", "id": "*"}
        assert (await client.get("/v1/items/7")).json() == {"router": "items", "id": "7"}
        answer = await client.get("/v1/users/u/items/7")
        assert answer.json() == {"router": "users", "id": "u/7"}
        assert (await client.get("/v1/nothing")).status_code == 404
        assert (await client.post("/v1/items/7")).status_code == 405  # path matched, method not

"""The Docker driver's error translation, against a scripted fake engine (no real engine)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from berth.runtime.base import (
    ImageNotFound,
    InvalidTaskSpec,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskSpec,
)
from berth.runtime.docker import DockerRuntime

Handler = Callable[[httpx.Request], httpx.Response]


@contextlib.asynccontextmanager
async def fake_engine(handler: Handler) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime("/fake/docker.sock", transport=httpx.MockTransport(handler))
    try:
        yield runtime
    finally:
        await runtime.close()


def spec() -> TaskSpec:
    return TaskSpec(name="t", image="img:1", command=None, env={}, labels={}, cpu=1, memory_mb=8)


async def test_error_in_pull_stream_raises_image_not_found() -> None:
    pulls: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/images/create"):
            pulls.append(request.url.params)
            stream = [
                {"status": "Pulling from library/img"},
                {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"},
            ]
            return httpx.Response(200, text="\n".join(json.dumps(m) for m in stream))
        return httpx.Response(404, json={"message": "No such image: img:1"})

    async with fake_engine(handler) as runtime:
        with pytest.raises(ImageNotFound) as caught:
            await runtime.ensure_image("img:1")
    assert str(caught.value) == (
        "image 'img:1' was not found locally and could not be pulled: manifest unknown"
    )
    assert [(p["fromImage"], p["tag"]) for p in pulls] == [("img", "1")]


async def test_pull_that_leaves_no_image_raises_image_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/images/create"):
            return httpx.Response(200, text='{"status": "done"}\n')
        return httpx.Response(404, json={"message": "No such image"})

    async with fake_engine(handler) as runtime:
        with pytest.raises(ImageNotFound, match="'img:1'"):
            await runtime.ensure_image("img:1")


async def test_refused_create_raises_invalid_task_spec() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/containers/create"):
            return httpx.Response(400, json={"message": "invalid CpuShares"})
        return httpx.Response(200, json={})

    async with fake_engine(handler) as runtime:
        with pytest.raises(InvalidTaskSpec, match="invalid CpuShares"):
            await runtime.launch(spec())


async def test_timeout_raises_runtime_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with fake_engine(handler) as runtime:
        with pytest.raises(RuntimeUnavailable, match=r"/fake/docker\.sock cannot be reached"):
            await runtime.inspect(TaskId("t"))


async def collect(runtime: DockerRuntime) -> list[TaskEvent]:
    async with contextlib.aclosing(runtime.events({"k": "v"})) as events:
        return [event async for event in events]


async def test_event_stream_ending_raises_runtime_unavailable() -> None:
    seen: list[TaskEvent] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.url.params["filters"]) == {
            "type": ["container"],
            "label": ["k=v"],
        }
        event = {"Type": "container", "Action": "die", "Actor": {"ID": "c1", "Attributes": {}}}
        return httpx.Response(200, text=json.dumps(event) + "\n")

    async with fake_engine(handler) as runtime:
        with pytest.raises(RuntimeUnavailable, match="event stream ended"):
            async with contextlib.aclosing(runtime.events({"k": "v"})) as events:
                async for event in events:
                    seen.append(event)
    assert [(e.task_id, e.action) for e in seen] == [("c1", "die")]


async def test_dropped_event_stream_raises_runtime_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    async with fake_engine(handler) as runtime:
        with pytest.raises(RuntimeUnavailable):
            await collect(runtime)

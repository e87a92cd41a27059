"""Level-triggered watching of pods: list, then watch from the list's resource version, and
list again when the API server says that version is too old (410 Gone).

`pod_events` turns what it sees into the task events of `status.events_between`. Pods that
exist when it starts are taken as the starting point (no events for what already happened,
as an engine's event stream reports only what happens after subscribing); after a relist,
every difference from what was known is reported, including pods deleted meanwhile, so no
change is lost across a broken watch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping

import httpx

from berth.runtime.base import RuntimeDriverError, TaskEvent
from berth.runtime.kubernetes.client import ApiClient, Json, selector_param, unexpected
from berth.runtime.kubernetes.status import Seen, events_between, seen_of

WATCH_SECONDS = 240
"""How long one watch request lasts before it is renewed from the last version seen."""


class Expired(Exception):
    """The watch's resource version is too old (410 Gone): list again."""


async def list_pods(api: ApiClient, selector: Mapping[str, str]) -> tuple[list[Json], str]:
    """Every pod carrying `selector`, in every namespace, and the list's resource version."""
    response = await api.request(
        "GET", "/api/v1/pods", params={"labelSelector": selector_param(selector)}
    )
    if response.status_code != 200:
        raise unexpected("listing tasks", response)
    body: Json = response.json()
    return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion"))


async def watch_pods(
    api: ApiClient, selector: Mapping[str, str], version: str
) -> AsyncGenerator[tuple[str, Json], None]:
    """(type, pod) changes after `version` until the server ends the watch; `Expired` on
    410. Bookmarks are passed on as ("BOOKMARK", object) to carry the newest version."""
    params = {"labelSelector": selector_param(selector)}
    async for change in _watch(api, "/api/v1/pods", params, version):
        yield change


async def watch_pod(api: ApiClient, pod: Json) -> AsyncGenerator[tuple[str, Json], None]:
    """(type, pod) changes of one pod after the version it was read at, as `watch_pods`."""
    metadata: Json = pod.get("metadata") or {}
    path = f"/api/v1/namespaces/{metadata.get('namespace')}/pods"
    params = {"fieldSelector": f"metadata.name={metadata.get('name')}"}
    async for change in _watch(api, path, params, _version(pod)):
        yield change


async def _watch(
    api: ApiClient, path: str, selection: Mapping[str, str], version: str
) -> AsyncGenerator[tuple[str, Json], None]:
    params = {
        **selection,
        "watch": "1",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(WATCH_SECONDS),
    }
    async with api.stream(
        path, params=params, limits=httpx.Timeout(WATCH_SECONDS + 30.0, connect=5.0)
    ) as response:
        if response.status_code == 410:
            raise Expired
        if response.status_code != 200:
            await response.aread()
            raise unexpected("watching tasks", response)
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                change = json.loads(line)
            except ValueError:
                continue
            kind, obj = str(change.get("type")), change.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Expired
                raise RuntimeDriverError(f"watching tasks failed: {obj.get('message')}")
            yield kind, obj


def _key(pod: Json) -> str:
    metadata: Json = pod.get("metadata") or {}
    return str(metadata.get("uid"))


def _version(pod: Json) -> str:
    return str((pod.get("metadata") or {}).get("resourceVersion") or "")


async def pod_events(
    api: ApiClient, selector: Mapping[str, str]
) -> AsyncGenerator[TaskEvent, None]:
    """Task events for pods carrying `selector`, until cancelled; `RuntimeUnavailable` when
    the API server cannot be reached."""
    known: dict[str, tuple[Seen, Json]] = {}
    pods, version = await list_pods(api, selector)
    for pod in pods:
        known[_key(pod)] = (seen_of(pod), pod)
    while True:
        try:
            async for kind, pod in watch_pods(api, selector, version):
                version = _version(pod) or version
                if kind == "BOOKMARK":
                    continue
                key = _key(pod)
                before = known.get(key)
                deleted = kind == "DELETED"
                for event in events_between(before[0] if before else None, pod, deleted=deleted):
                    yield event
                if deleted:
                    known.pop(key, None)
                else:
                    known[key] = (seen_of(pod), pod)
        except Expired:
            pods, version = await list_pods(api, selector)
            current = {_key(pod): pod for pod in pods}
            for key, (seen, last) in list(known.items()):
                if key not in current:  # deleted while the watch was broken
                    for event in events_between(seen, last, deleted=True):
                        yield event
                    known.pop(key)
            for key, pod in current.items():
                before = known.get(key)
                for event in events_between(before[0] if before else None, pod, deleted=False):
                    yield event
                known[key] = (seen_of(pod), pod)

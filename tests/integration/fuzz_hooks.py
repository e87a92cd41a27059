"""Schemathesis hooks of the OpenAPI fuzz run (loaded by the `schemathesis` CLI from this
file, named in `SCHEMATHESIS_HOOKS`; see test_fuzz_openapi.py).

A fuzzed create whose `image` is a valid reference would make the engine pull that image
from a registry; every such image becomes the local test image, so the run's traffic stays on
this machine. Invalid references are left as they are: berth must still refuse them.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

LOCAL_IMAGE = "berth-test/busybox:latest"
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
"""The rule of the `image` fields (WorkloadCreate, ContainerCreate)."""


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return
    image = body.get("image")
    if isinstance(image, str) and IMAGE_REFERENCE.fullmatch(image) and len(image) <= 512:
        body["image"] = LOCAL_IMAGE

"""Property-based fuzzing of every operation of berth's own OpenAPI document.

Schemathesis (its CLI, in a subprocess) loads the live document from a real berth server
(`GET /openapi.json`) and fuzzes every operation in it: both dialects (the Workloads API under
`/v1/...`, the Containers API under `/compute/...`), the approvals and the system routes. It
sends generated requests as a real tenant (`Authorization: Bearer <API key>`), and requests
without credentials where the document says credentials are needed; valid and invalid input
alike (`--mode all`): boundary values of every field (the coverage phase), then random ones
(the fuzzing phase). Every response must pass:

- not_a_server_error: no 5xx, whatever the input;
- status_code_conformance: the status is one the document declares for the operation;
- content_type_conformance: the content type is one it declares for that status;
- response_schema_conformance: the body matches the declared model (error bodies included);
- response_headers_conformance: declared headers (`WWW-Authenticate` on 401) are sent.

Half the time a path parameter names a real resource of the tenant (a job that ran, a
schedule, a service at zero replicas, a secret, an SSH key, a dev box), so operations are
fuzzed past their lookup rather than only answering 404.

Bounded and reproducible for CI: deterministic generation (the same cases on every run) and
a fixed number of examples per operation. The tenant's limits keep what valid creates can
start small (six workloads, two replicas, 1 vCPU, two dev boxes), everything is deleted at the
end, and the image of a valid create becomes the local test image (fuzz_hooks.py), so the
engine never pulls. Costs about 60 s (a server start, some 2,300 requests).

A deeper local run: `BERTH_FUZZ_MAX_EXAMPLES=100` (more cases), `BERTH_FUZZ_SEED=N` (random
generation from seed N instead of the deterministic cases), `BERTH_FUZZ_EXTRA_CHECKS=
negative_data_rejection` (more schemathesis checks), `BERTH_FUZZ_TIMEOUT=1800` (seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

SEED = os.environ.get("BERTH_FUZZ_SEED")
"""Unset in CI: deterministic generation, the same cases every run."""
MAX_EXAMPLES = int(os.environ.get("BERTH_FUZZ_MAX_EXAMPLES", "10"))
"""Fuzzing-phase cases per operation and mode (valid, invalid); the coverage phase adds the
boundary cases of each operation."""
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    *filter(None, os.environ.get("BERTH_FUZZ_EXTRA_CHECKS", "").split(",")),
]
RUN_TIMEOUT = int(os.environ.get("BERTH_FUZZ_TIMEOUT", "300"))
REAL_ID_PROBABILITY = 0.5
"""How often a path parameter names a real resource instead of a generated value."""

FUZZ_LIMITS = {
    # Fuzzing must never be throttled (ignored by a berth without rate limiting).
    "BERTH_RATE_LIMIT_PER_SECOND": "100000",
    "BERTH_RATE_LIMIT_BURST": "100000",
    # What valid creates may start, at most.
    "BERTH_DEFAULT_MAX_WORKLOADS": "6",
    "BERTH_DEFAULT_MAX_REPLICAS": "2",
    "BERTH_DEFAULT_MAX_CPU": "1",
    "BERTH_DEFAULT_MAX_MEMORY_MB": "512",
    "BERTH_DEFAULT_MAX_CONTAINERS": "2",
}
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
HOOKS = Path(__file__).with_name("fuzz_hooks.py")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(Path(tmp_path_factory.mktemp("fuzz")) / "data", env=FUZZ_LIMITS)
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture(scope="module")
def fuzz_tenant(fuzz_server: BerthServer) -> Iterator[Tenant]:
    tenant = fuzz_server.new_tenant()
    yield tenant
    for workload in tenant.client.get("/v1/compute").json().get("workloads", []):
        tenant.client.delete(f"/v1/compute/{workload['id']}")
    for container in tenant.client.get("/compute/containers").json().get("containers", []):
        tenant.client.delete(f"/compute/containers/{container['id']}")
    tenant.client.close()


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def real_ids(fuzz_tenant: Tenant, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Ids of real resources of the tenant, by path parameter name: fuzzed requests use them
    half the time, so operations on a resource are fuzzed past its lookup (a random id is
    only ever a 404). A job that ran, a paused schedule, a service at zero replicas, a
    secret, an SSH key and a dev-box container."""
    client = fuzz_tenant.client
    key_path = tmp_path_factory.mktemp("fuzz-key") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
    key = created(
        client.post(
            "/compute/ssh-keys",
            json={"name": "fuzz", "public_key": key_path.with_suffix(".pub").read_text()},
        )
    )
    box = created(
        client.post("/compute/containers", json={"name": "box", "ssh_key_ids": [key["id"]]})
    )
    job = created(
        client.post(
            "/v1/compute",
            json={"name": "job", "type": "job", "image": TEST_IMAGE, "command": "echo fuzz"},
        )
    )
    schedule = created(
        client.post(
            "/v1/compute",
            json={
                "name": "schedule",
                "type": "schedule",
                "image": TEST_IMAGE,
                "command": "echo fuzz",
                "schedule_expr": "rate(7 days)",
            },
        )
    )
    service = created(
        client.post(
            "/v1/compute",
            json={
                "name": "service",
                "type": "service",
                "image": TEST_IMAGE,
                "command": "sleep 600",
                "replicas": 0,
            },
        )
    )
    created(client.post(f"/v1/compute/{job['id']}/secrets", json={"key": "TOKEN", "value": "x"}))
    return {
        "user_id": [fuzz_tenant.user_id],
        "workload_id": [job["id"], schedule["id"], service["id"]],
        "run_id": [run["id"] for run in job["recent_runs"]],
        "key": ["TOKEN"],
        "container_id": [box["id"]],
        "key_id": [key["id"]],
    }


def write_config(path: Path, ids: dict[str, list[Any]]) -> Path:
    """A schemathesis.toml binding each path parameter to a dictionary of real ids, with
    generation fed by nothing the server answered (no ids taken from responses, no
    error-guided mutation), so every run sends the same cases whatever the order in which
    its workers meet the server's state, and no cache of earlier runs' failures."""
    lines = [
        "[cache]",
        "enabled = false",
        "",
        "[phases.coverage.extra-data-sources]",
        "responses = false",
        "[phases.fuzzing.extra-data-sources]",
        "responses = false",
        "[phases.fuzzing.error-feedback]",
        "enabled = false",
        "",
    ]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name in ids:
        binding = f'{{ dictionary = "{name}", probability = {REAL_ID_PROBABILITY} }}'
        lines.append(f'"path.{name}" = {binding}')
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(
    server: BerthServer, tenant: Tenant, config: Path, report: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {tenant.key}",
        "--checks",
        ",".join(CHECKS),
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        *(["--seed", SEED] if SEED else ["--generation-deterministic"]),
        # One worker: with two threads, hypothesis' ast.parse of filter lambdas trips a race
        # in CPython 3.11's AST recursion-depth counter ("SystemError: AST constructor
        # recursion depth mismatch", CPython issue 106905), failing the run now and then.
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    return subprocess.run(
        command,
        cwd=report.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_every_operation_answers_as_the_document_says_under_fuzzing(
    fuzz_server: BerthServer, fuzz_tenant: Tenant, real_ids: dict[str, list[Any]], tmp_path: Path
) -> None:
    document = httpx.get(fuzz_server.url + "/openapi.json").json()
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert any(op.startswith("GET /v1/compute") for op in operations)
    assert any(op.startswith("GET /compute/containers") for op in operations)
    report = tmp_path / "schemathesis.json"
    config = write_config(tmp_path / "schemathesis.toml", real_ids)

    started = time.monotonic()
    result = run_schemathesis(fuzz_server, fuzz_tenant, config, report)
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems:\n{output[-20000:]}"
    summary: dict[str, Any] = json.loads(report.read_text())
    tested = summary["operations"]
    assert (tested["total"], tested["tested"], tested["errored"]) == (len(operations),) * 2 + (0,)
    cases = summary["test_cases"]
    assert cases["with_failures"] == 0 and cases["errored"] == 0, cases
    assert cases["generated"] >= 10 * len(operations), cases
    print(
        f"fuzzed {tested['tested']} operations, {cases['generated']} cases "
        f"({MAX_EXAMPLES} fuzzing examples per operation and mode) in {elapsed:.1f} s"
    )

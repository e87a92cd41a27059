"""An engine failure berth has no meaning for (an exec stream the cluster cut, say) answers
502 `engine_error` with the driver's words, never a 500 that says nothing; what berth does
understand (a command the image lacks) keeps its own answer."""

from __future__ import annotations

from pathlib import Path

from berth.runtime.base import CommandNotFound, RuntimeDriverError
from berth.runtime.memory import ExecCall, ExecReply
from tests.fast.app import berth_in_process


async def test_an_exec_the_engine_fails_is_a_502_naming_the_failure(data_dir: Path) -> None:
    def cut(call: ExecCall) -> ExecReply | None:
        if call.argv[0] == "cut":
            raise RuntimeDriverError("the command could not be started: the connection ended")
        if call.argv[0] == "bash":
            raise CommandNotFound("'bash' was not found in the task's image")
        return None

    async with berth_in_process(data_dir, default_gated_actions=[]) as berth:
        berth.runtime.exec_handler = cut
        _user_id, key, _session = await berth.user("dev@example.com")
        async with berth.client(key) as client:
            body = {
                "name": "svc",
                "type": "service",
                "image": "berth/busybox:latest",
                "command": "sleep 100000",
            }
            made = await client.post("/v1/compute", json=body)
            assert made.status_code == 201, made.text
            workload = f"/v1/compute/{made.json()['id']}"
            await berth.reconcile()
            assert (await client.get(workload)).json()["running_tasks"] == 1
            failed = await client.post(f"{workload}/exec", json={"command": ["cut"]})
            assert failed.status_code == 502, failed.text
            assert failed.json()["code"] == "engine_error"
            assert "the connection ended" in failed.json()["error"]
            missing = await client.post(f"{workload}/exec", json={"command": ["bash"]})
            assert missing.status_code == 422, missing.text

"""The ClusterRole in deploy/kubernetes grants what the Kubernetes driver needs: the runtime
contract's kubernetes cases pass as a ServiceAccount bound to it and to nothing else."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import cluster

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes" / "berth.yaml"


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d["kind"] == kind]
    return dict(found)


def test_the_contract_passes_under_the_deployed_cluster_role(tmp_path: Path) -> None:
    suffix = secrets.token_hex(4)
    namespace, account, role = f"berth-role-{suffix}", "berth", f"berth-test-{suffix}"
    cluster_role = manifest("ClusterRole")
    cluster_role["metadata"] = {"name": role}
    binding = manifest("ClusterRoleBinding")
    binding["metadata"] = {"name": role}
    binding["roleRef"] = {**binding["roleRef"], "name": role}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    made: list[str] = []
    try:
        made.append(cluster.create({"kind": "Namespace", "metadata": {"name": namespace}}))
        made.append(
            cluster.create(
                {"kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}}
            )
        )
        made.append(cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", **cluster_role}))
        made.append(cluster.create({"apiVersion": "rbac.authorization.k8s.io/v1", **binding}))
        kubeconfig = cluster.service_account_kubeconfig(
            tmp_path / "sa.kubeconfig", namespace, account
        )
        # Nothing beyond the driver's needs: reading secrets, for one, is not among them.
        assert cluster.request("GET", "/api/v1/secrets", kubeconfig=kubeconfig)[0] == 403
        contract = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "kubernetes",
                "tests/contract/test_runtime_contract.py",
                "tests/contract/test_runtime_contract_commands.py",
            ],
            cwd=ROOT,
            env={**os.environ, "BERTH_TEST_KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        summary = contract.stdout.strip().splitlines()[-1] if contract.stdout.strip() else ""
        assert contract.returncode == 0, contract.stdout[-4000:] + contract.stderr[-2000:]
        assert "passed" in summary and "skipped" not in summary, summary
    finally:
        for path in reversed(made):
            cluster.delete(path)

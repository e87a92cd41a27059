"""The ClusterRole in deploy/kubernetes grants what the Kubernetes driver needs: the runtime
contract's kubernetes cases pass as a ServiceAccount bound to it and to nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import cluster

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

ROOT = Path(__file__).resolve().parents[2]


def test_the_contract_passes_under_the_deployed_cluster_role(tmp_path: Path) -> None:
    with cluster.berth_service_account() as (namespace, account):
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

"""Choosing the Kubernetes driver: `berth serve --runtime kubernetes --kubeconfig ...`,
`BERTH_RUNTIME` / `BERTH_KUBECONFIG`, and the factory (no cluster: nothing is contacted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.cli.main import _settings, build_parser
from berth.config import Settings
from berth.runtime.factory import create_runtime
from berth.runtime.kubernetes import KubernetesRuntime
from berth.runtime.kubernetes.config import KubeconfigError


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://10.0.0.1", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_serve_flags_choose_the_driver_and_the_cluster(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["serve", "--runtime", "kubernetes", "--kubeconfig", str(tmp_path / "k")]
    )
    settings = _settings(args)
    assert settings.runtime == "kubernetes" and settings.kubeconfig == tmp_path / "k"


def test_the_environment_chooses_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_RUNTIME", "kubernetes")
    monkeypatch.setenv("BERTH_KUBECONFIG", "/etc/berth/kubeconfig")
    settings = Settings()
    assert settings.runtime == "kubernetes"
    assert settings.kubeconfig == Path("/etc/berth/kubeconfig")


async def test_the_factory_makes_the_kubernetes_driver(tmp_path: Path) -> None:
    runtime = create_runtime("", driver="kubernetes", kubeconfig=_kubeconfig(tmp_path))
    try:
        assert isinstance(runtime, KubernetesRuntime)
    finally:
        await runtime.close()
    with pytest.raises(KubeconfigError):
        create_runtime("", driver="kubernetes", kubeconfig=tmp_path / "missing")

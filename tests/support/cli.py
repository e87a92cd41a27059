"""Running the `berth` command as a user would, in a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from berth.testing.server import BERTH


def run_berth(
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `berth ARGS` to the end; its exit status and output, whatever they are."""
    return subprocess.run(
        [*BERTH, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def clean_env(config_home: Path, **extra: str) -> dict[str, str]:
    """The environment without the CLI's own settings, its config under `config_home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BERTH_URL", "BERTH_API_KEY", "BERTH_CONFIG")
    }
    return {**env, "XDG_CONFIG_HOME": str(config_home), **extra}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout

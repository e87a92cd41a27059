"""Where the SDK and the CLI find the server URL and the credential.

Each of the two values is taken from the first source that has it:

1. an explicit argument (the CLI's `--url` / `--key`);
2. the environment: `BERTH_URL`, `BERTH_API_KEY`;
3. the config file written by `berth login`: `$BERTH_CONFIG` if set, else
   `$XDG_CONFIG_HOME/berth/config.json`, else `~/.config/berth/config.json`. It is JSON,
   `{"url": "...", "api_key": "..."}`, written with mode 0600 (its directory 0700).

The credential is an API key (`nv_sk_...`) or a human session token; both are sent as
`Authorization: Bearer <credential>`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from berth.private_files import replace_private_file
from berth.sdk.errors import ConfigError

URL_ENV = "BERTH_URL"
KEY_ENV = "BERTH_API_KEY"
CONFIG_ENV = "BERTH_CONFIG"


@dataclass(frozen=True)
class Credentials:
    """A resolved server URL and credential, and where each came from."""

    url: str
    api_key: str
    url_source: str
    key_source: str


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file's path (it need not exist)."""
    environ = os.environ if env is None else env
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "berth" / "config.json"


def read_config(path: Path) -> dict[str, str]:
    """The config file's string values; `{}` when there is no file.

    Raises `ConfigError` when the file exists but is not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the config file {path} must hold a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def write_config(path: Path, *, url: str, api_key: str) -> None:
    """Write the config file atomically with mode 0600 (creating its directory 0700)."""
    text = json.dumps({"url": url, "api_key": api_key}, indent=2) + "\n"
    replace_private_file(path, text.encode("utf-8"))


def resolve_credentials(
    *,
    url: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """The URL and credential by precedence argument > environment > config file.

    Raises `ConfigError` naming the three ways to supply a value that is missing. The file is
    read only when the arguments and the environment leave a value missing.
    """
    environ = os.environ if env is None else env
    found_url, url_source = _first(url, "--url", environ.get(URL_ENV), URL_ENV)
    found_key, key_source = _first(api_key, "--key", environ.get(KEY_ENV), KEY_ENV)
    if found_url is None or found_key is None:
        path = config_path(environ)
        stored = read_config(path)
        if found_url is None and stored.get("url"):
            found_url, url_source = stored["url"], str(path)
        if found_key is None and stored.get("api_key"):
            found_key, key_source = stored["api_key"], str(path)
    if found_url is None:
        raise ConfigError(f"no server URL: pass --url, set {URL_ENV} or run `berth login`")
    if found_key is None:
        raise ConfigError(f"no credentials: pass --key, set {KEY_ENV} or run `berth login`")
    return Credentials(
        url=found_url.rstrip("/"),
        api_key=found_key,
        url_source=url_source,
        key_source=key_source,
    )


def _first(
    explicit: str | None, explicit_name: str, from_env: str | None, env_name: str
) -> tuple[str | None, str]:
    if explicit:
        return explicit, explicit_name
    if from_env:
        return from_env, env_name
    return None, ""

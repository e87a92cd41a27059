"""Humans sign in with an e-mail address and password: the admin CLI sets the password (from
stdin, never argv), `POST /v1/auth/sign-in` answers a session token that works like the one
`berth admin token` issues, every failure is the same 401, an e-mail address's failures are
limited (429), and `berth login --email` stores the token for later commands.

One server of this module's own (about 2 s to start) allows three failed sign-ins per e-mail
address before refusing, with hardly any refill while the tests run.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.testing.server import BERTH
from tests.support.cli import clean_env, ok, run_berth
from tests.support.server import BerthServer

pytestmark = pytest.mark.engine

FAILURE_BURST = 3
PASSWORD = "a long and private passphrase"


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("sign-in")) / "data",
        env={
            "BERTH_SIGN_IN_FAILURE_BURST": str(FAILURE_BURST),
            "BERTH_SIGN_IN_FAILURES_PER_SECOND": "0.001",
        },
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def set_password(
    server: BerthServer, user_id: str, password: str
) -> subprocess.CompletedProcess[str]:
    """`berth admin set-password`, the password on stdin, as a script would give it."""
    return subprocess.run(
        [*BERTH, "admin", "set-password", "--user", user_id, "--data-dir", str(server.data_dir)],
        env=server.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
    )


def new_human(server: BerthServer, password: str = PASSWORD) -> tuple[str, str]:
    """A new user with a password: (user id, e-mail address)."""
    email = f"human-{time.monotonic_ns()}@example.com"
    user_id: str = server.admin("create-user", "--email", email)["id"]
    done = set_password(server, user_id, password)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"user_id": user_id, "password_set": True}
    return user_id, email


def sign_in(server: BerthServer, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/sign-in", json={"email": email, "password": password}, timeout=30
    )


def test_the_right_password_gets_a_session_token_that_works(signing: BerthServer) -> None:
    user_id, email = new_human(signing)
    answer = sign_in(signing, email, PASSWORD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "user_id", "expires_at"} and body["user_id"] == user_id
    headers = {"Authorization": f"Bearer {body['token']}"}
    own = httpx.get(f"{signing.url}/v1/users/{user_id}/compute", headers=headers, timeout=30)
    assert own.status_code == 200, own.text
    # A human's session: the approvals a human decides are open to it.
    assert httpx.get(f"{signing.url}/v1/approvals", headers=headers, timeout=30).status_code == 200
    # The same kind of token `berth admin token` issues.
    issued = signing.admin("token", "--user", user_id)["token"]
    assert issued.count(".") == body["token"].count(".") == 2


def test_a_wrong_password_and_an_unknown_address_get_the_same_401(signing: BerthServer) -> None:
    _user_id, email = new_human(signing)
    wrong = sign_in(signing, email, "not the password")
    unknown = sign_in(signing, f"nobody-{time.monotonic_ns()}@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "wrong e-mail address or password"
    assert PASSWORD not in wrong.text + unknown.text


def test_an_addresss_failures_are_limited_with_429_and_retry_after(signing: BerthServer) -> None:
    _user_id, email = new_human(signing)
    for _ in range(FAILURE_BURST):
        assert sign_in(signing, email, "guess").status_code == 401
    for password in ("guess", PASSWORD):
        limited = sign_in(signing, email, password)
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "too_many_attempts"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["retry_after"] == int(limited.headers["Retry-After"])
    # Another human signs in as usual.
    _other, other_email = new_human(signing)
    assert sign_in(signing, other_email, PASSWORD).status_code == 200


def test_bad_sign_in_bodies_are_refused_naming_the_field(signing: BerthServer) -> None:
    missing = httpx.post(
        f"{signing.url}/v1/auth/sign-in", json={"email": "a@example.com"}, timeout=30
    )
    assert missing.status_code == 422 and missing.json()["field"] == "password"
    too_long = sign_in(signing, "a@example.com", "x" * 1025)
    assert too_long.status_code == 422 and too_long.json()["field"] == "password"


def test_passwords_are_never_command_line_arguments(signing: BerthServer) -> None:
    user_id: str = signing.admin("create-user", "--email", f"argv-{time.monotonic_ns()}@x.io")["id"]
    with_argument = subprocess.run(
        [*BERTH, "admin", "create-user", "--email", "p@example.com", "--password", PASSWORD,
         "--data-dir", str(signing.data_dir)],
        env=signing.env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert with_argument.returncode == 2 and "unrecognized arguments" in with_argument.stderr
    short = set_password(signing, user_id, "short")
    assert short.returncode == 1
    assert short.stderr == "error: password: must be at least 8 characters\n"


def test_login_with_an_email_stores_a_session_token_that_later_commands_use(
    signing: BerthServer, tmp_path: Path
) -> None:
    user_id, email = new_human(signing)
    home = tmp_path / "xdg"
    env = clean_env(home)
    out = ok(run_berth("login", "--url", signing.url, "--email", email, env=env, stdin=PASSWORD))
    assert f"signed in to {signing.url} as {user_id}" in out
    path = home / "berth" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["url"] == signing.url and stored["api_key"].count(".") == 2
    assert PASSWORD not in path.read_text()
    listing = ok(run_berth("compute", "list", "--user", user_id, env=env))
    assert listing.split()[:2] == ["ID", "NAME"]

    refused = run_berth(
        "login", "--url", signing.url, "--email", email, env=clean_env(tmp_path / "other"),
        stdin="wrong password",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr == "error: wrong e-mail address or password\n"
    assert not (tmp_path / "other" / "berth" / "config.json").exists()

"""The dashboard's browser tests: Debian's Chromium driven by Playwright, and humans who sign
in with a password.

Playwright's own browser download cannot run here, so the browser is the system's
`chromium` (scripts/setup.sh --test installs it), launched by path.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from berth.domain import accounts
from berth.domain.sign_in import set_password
from berth.server.bootstrap import open_domain
from tests.support.server import BerthServer

PASSWORD = "a long and private passphrase"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("Debian's chromium is missing: run scripts/setup.sh --test")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as driver:
        # Root (as in CI) cannot use Chromium's sandbox; the pages are berth's own.
        browser = driver.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Human:
    """A user with a password (for the dashboard) and an API key named for their agent."""

    user_id: str
    email: str
    password: str
    key: str
    key_name: str


def new_human(server: BerthServer, *, credits: float | None = None) -> Human:
    """Made in-process with the domain functions `berth admin create-user`, `set-password`
    and `create-key` run (test_sign_in.py covers those commands)."""
    email = f"human-{time.monotonic_ns()}@example.com"
    key_name = f"agent-{time.monotonic_ns() % 100000}"

    async def make() -> Human:
        domain = await open_domain(server.settings())
        try:
            user, _kit = await accounts.create_user(domain, email=email, credits=credits)
            await set_password(domain, user.id, PASSWORD)
            created = await accounts.create_api_key(domain, user_id=user.id, name=key_name)
            return Human(user.id, email, PASSWORD, created.key, key_name)
        finally:
            await domain.store.close()

    # Playwright's sync API keeps an event loop running in this thread: run beside it.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, make()).result()


def sign_in(page: Page, server: BerthServer, human: Human) -> None:
    page.goto(f"{server.url}/sign-in")
    page.get_by_label("E-mail address").fill(human.email)
    page.get_by_label("Password").fill(human.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)


def screenshot(page: Page, directory: Path, name: str) -> Path:
    """Save the whole page as `name.png` in the run's screenshot directory."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

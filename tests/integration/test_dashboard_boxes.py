"""Dev boxes in the dashboard, in Debian's Chromium: create one from the form, open its
built-in terminal (xterm.js on the terminal WebSocket), run a command, and resize it; the
SSH keys page. Screenshots go to the run's temporary directory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import PHONE, new_human, screenshot, sign_in
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer

pytestmark = pytest.mark.engine


def terminal_text(page: Page) -> str:
    return page.locator(".xterm-rows").inner_text()


def test_a_dev_box_terminal_runs_commands_and_follows_the_window_size(
    server: BerthServer, page: Page, shots: Path, tmp_path: Path
) -> None:
    human = new_human(server)
    sign_in(page, server, human)
    page.goto(f"{server.url}/keys")
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Public key").fill(new_public_key(tmp_path))
    page.get_by_role("button", name="Add key").click()
    expect(page.locator("tbody")).to_contain_text("SHA256:")
    screenshot(page, shots, "ssh-keys")

    page.goto(f"{server.url}/boxes")
    page.get_by_label("Name").fill("workbench")
    page.get_by_label("laptop").check()
    page.get_by_role("button", name="Create dev box").click()
    expect(page.get_by_role("heading", name="workbench")).to_be_visible()
    # The page turns into a terminal once the box runs (a live event, no reload by hand).
    expect(page.locator("#terminal-state")).to_have_text("Connected.", timeout=90_000)
    expect(page.locator("#ssh-command")).to_contain_text("ssh")

    page.locator("#terminal").click()
    page.keyboard.type("echo $((6*7))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("42")
    screenshot(page, shots, "dev-box-terminal")

    before = page.evaluate("[window.berthTerminal.cols, window.berthTerminal.rows]")
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.wait_for_function(f"window.berthTerminal.cols < {before[0]}")
    cols, rows = page.evaluate("[window.berthTerminal.cols, window.berthTerminal.rows]")
    page.keyboard.type("stty size\n")
    expect(page.locator(".xterm-rows")).to_contain_text(f"{rows} {cols}")
    screenshot(page, shots, "phone-dev-box")

    # Pause freezes the box (the page says how to get the terminal back); resume thaws it.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#box-status")).to_have_text("paused")
    expect(page.locator("#terminal-state")).to_contain_text("resume it to open a terminal")
    screenshot(page, shots, "paused-dev-box")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#box-status")).to_have_text("running")
    expect(page.locator("#terminal-state")).to_have_text("Connected.", timeout=30_000)


def test_the_approval_policy_page_decides_what_agents_wait_for(
    server: BerthServer, page: Page, shots: Path
) -> None:
    """On the suite's shared server (nothing gated): gate `create` from the page, see an
    agent's create wait, then gate nothing again."""
    human = new_human(server)
    sign_in(page, server, human)
    page.goto(f"{server.url}/policy")
    page.get_by_label("create").check()
    page.get_by_label("Open for (seconds)").fill("10")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#e-ttl")).to_contain_text("greater than or equal to")
    try:
        page.get_by_label("create").check()
        page.get_by_label("Open for (seconds)").fill("3600")
        page.get_by_role("button", name="Save policy").click()
        expect(page.get_by_label("create")).to_be_checked()
        screenshot(page, shots, "approval-policy")
        body = {"name": "gated", "type": "job", "image": TEST_IMAGE}
        asked = httpx.post(
            f"{server.url}/v1/compute",
            json=body,
            headers={"Authorization": f"Bearer {human.key}"},
            timeout=30,
        )
        assert asked.status_code == 202, asked.text
    finally:
        page.goto(f"{server.url}/policy")
        for action in ("create", "exec", "shell"):
            page.get_by_label(action).uncheck()
        page.get_by_role("button", name="Save policy").click()
        expect(page.get_by_label("create")).not_to_be_checked()

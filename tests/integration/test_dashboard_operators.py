"""The operator's pages in Debian's Chromium: a human operator finds a user of the company,
grants credits, turns their compute off (the user's agent is refused at once) and on again,
and sees a bad value refused next to its field; someone who is not an operator has no Users
link and is refused the pages. Screenshots go to the run's temporary directory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import Human, new_human, screenshot, sign_in
from tests.support.server import TEST_IMAGE, BerthServer

pytestmark = pytest.mark.engine


def agent_of(server: BerthServer, human: Human) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {human.key}"}, timeout=30
    )


def balance(server: BerthServer, human: Human) -> float:
    return float(server.admin("show-user", "--user", human.user_id)["credits"])


def test_an_operator_grants_credits_and_turns_a_users_compute_off_and_on(
    server: BerthServer, page: Page, shots: Path
) -> None:
    operator = new_human(server)
    made = server.admin("update-user", "--user", operator.user_id, "--operator", "on")
    assert made["operator"] is True
    user = new_human(server, credits=10)
    sign_in(page, server, operator)
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page).to_have_url(f"{server.url}/operator/users")
    row = page.get_by_role("row").filter(has_text=user.email)
    expect(row).to_contain_text("on")
    screenshot(page, shots, "users")
    row.get_by_role("link", name=user.email).click()
    expect(page.get_by_role("heading", name=user.email)).to_be_visible()

    # A grant that is not a positive number is refused next to its field; nothing changes.
    page.get_by_label("Credits to add").fill("-3")
    page.get_by_role("button", name="Grant").click()
    expect(page.locator("#e-add-credits")).to_contain_text("add_credits")
    expect(page.get_by_label("Credits to add")).to_have_attribute("aria-invalid", "true")
    screenshot(page, shots, "grant-refused")
    assert balance(server, user) == pytest.approx(10)

    page.get_by_label("Credits to add").fill("25.5")
    page.get_by_role("button", name="Grant").click()
    expect(page.locator("#balance")).to_contain_text("35.5")
    assert balance(server, user) == pytest.approx(35.5)

    # A limit that is not a number is refused by name, and the rest of the form is kept.
    page.get_by_label("max cpu").fill("lots")
    page.get_by_role("button", name="Save AccountKit").click()
    expect(page.locator("#e-max_cpu")).to_contain_text("max_cpu: must be a number")

    page.get_by_label("max cpu").fill("2")
    page.get_by_role("checkbox").uncheck()
    page.get_by_role("button", name="Save AccountKit").click()
    expect(page.get_by_role("checkbox")).not_to_be_checked()
    screenshot(page, shots, "compute-off")
    with agent_of(server, user) as agent:
        body = {"name": "refused", "type": "job", "image": TEST_IMAGE, "command": "true"}
        refused = agent.post("/v1/compute", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "primitive_disabled"

        page.get_by_role("checkbox").check()
        page.get_by_role("button", name="Save AccountKit").click()
        expect(page.get_by_role("checkbox")).to_be_checked()
        allowed = agent.get("/v1/compute")
        assert allowed.status_code == 200, allowed.text
    kit = server.admin("show-user", "--user", user.user_id)["account_kit"]
    assert kit["compute"] is True and kit["max_cpu"] == 2


def test_someone_who_is_not_an_operator_is_refused_the_users_pages(
    server: BerthServer, page: Page
) -> None:
    someone, other = new_human(server), new_human(server)
    server.admin("update-user", "--user", someone.user_id, "--operator", "on")
    unmade = server.admin("update-user", "--user", someone.user_id, "--operator", "off")
    assert unmade["operator"] is False
    sign_in(page, server, someone)
    expect(page.get_by_role("link", name="Workloads", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Users", exact=True)).to_have_count(0)
    for path in ("/operator/users", f"/operator/users/{other.user_id}"):
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.status == 403, path
        expect(page.locator("main")).to_contain_text("operators only")
    # A form posted by hand (with a valid CSRF token) is refused as well.
    csrf = page.evaluate("document.querySelector('input[name=csrf]')?.value ?? ''")
    posted = page.request.post(
        f"{server.url}/operator/users/{other.user_id}/grant",
        form={"csrf": csrf, "add_credits": "1000"},
    )
    assert posted.status == 403
    assert balance(server, other) == pytest.approx(balance(server, someone))

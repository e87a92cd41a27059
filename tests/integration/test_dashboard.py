"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
berth server on the real engine: signing in and out, CSRF, the approvals inbox updating
live, workloads, and tenants kept apart. Each page visited is saved as a screenshot in the
run's temporary directory (printed at the end of the module).

One server of this module's own, with the default approval policy (create, exec and shell
gated), so agents' calls wait for the human in the browser.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import DESKTOP, PHONE, Human, new_human, screenshot, sign_in
from tests.support.server import TEST_IMAGE, BerthServer

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("dashboard")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["create", "exec", "shell"]'},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def agent(server: BerthServer, human: Human) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {human.key}"}, timeout=30
    )


def test_sign_in_takes_the_password_and_sign_out_forgets_the_session(
    board: BerthServer, page: Page, shots: Path
) -> None:
    human = new_human(board)
    page.goto(f"{board.url}/workloads")
    expect(page).to_have_url(f"{board.url}/sign-in?next=/workloads")
    screenshot(page, shots, "sign-in")
    page.get_by_label("E-mail address").fill(human.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail address or password")

    page.get_by_label("Password").fill(human.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{board.url}/workloads")
    cookie = next(c for c in page.context.cookies() if c["name"] == "berth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{board.url}/sign-in")
    page.goto(f"{board.url}/approvals")
    expect(page).to_have_url(f"{board.url}/sign-in?next=/approvals")


def test_a_forged_post_without_the_csrf_token_is_refused(board: BerthServer, page: Page) -> None:
    """The browser holds a valid session cookie; a form posted without the page's token (as
    another site would post it) is refused and changes nothing."""
    human = new_human(board)
    sign_in(page, board, human)
    forged = page.request.post(
        f"{board.url}/workloads",
        form={"name": "forged", "type": "job", "image": TEST_IMAGE, "command": "true"},
    )
    assert forged.status == 403
    wrong = page.request.post(
        f"{board.url}/workloads",
        form={"name": "forged", "type": "job", "image": TEST_IMAGE, "csrf": "0" * 64},
    )
    assert wrong.status == 403
    assert agent(board, human).get("/v1/compute").json()["workloads"] == []
    # Signing in needs the sign-in form's token too (no forged sign-in into an attacker's account).
    assert (
        page.request.post(
            f"{board.url}/sign-in", form={"email": human.email, "password": human.password}
        ).status
        == 403
    )


def test_an_agents_call_appears_in_the_open_inbox_and_runs_once_approved(
    board: BerthServer, page: Page, shots: Path
) -> None:
    human = new_human(board)
    sign_in(page, board, human)
    page.goto(f"{board.url}/approvals")
    expect(page.get_by_text("Nothing waits for you.")).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text("0")

    asked = agent(board, human).post(
        "/v1/compute",
        json={
            "name": "greeter",
            "type": "job",
            "image": TEST_IMAGE,
            "command": "echo hello from the job",
        },
    )
    assert asked.status_code == 202, asked.text
    approval_id = asked.json()["approval_id"]

    card = page.locator(f'[data-approval-id="{approval_id}"]')  # no reload: the live inbox
    expect(card).to_be_visible()
    expect(card.locator(".asker")).to_have_text(human.key_name)
    expect(card).to_contain_text("POST")
    expect(card).to_contain_text('"command": "echo hello from the job"')
    expect(page.locator("#pending-count")).to_have_text("1")
    screenshot(page, shots, "approvals-inbox")

    card.get_by_label("Note (optional)").fill("looks fine")
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("#approval-status")).to_have_text("approved")
    expect(page.locator(".audit")).to_contain_text("approval.approved")
    expect(page.locator(".audit")).to_contain_text("looks fine")
    expect(page.locator(".audit")).to_contain_text("approval.executed")
    screenshot(page, shots, "approval-detail")

    workload = agent(board, human).get("/v1/compute").json()["workloads"][0]
    page.goto(f"{board.url}/workloads/{workload['id']}")
    expect(page.locator("#log")).to_contain_text("hello from the job", timeout=60_000)
    expect(page.locator(".runs")).to_contain_text("succeeded", timeout=60_000)
    screenshot(page, shots, "workload-detail")

    page.goto(f"{board.url}/usage")  # the run's credits, behind the charts
    expect(page.locator("#per-workload")).to_contain_text("greeter")
    expect(page.locator("#usage-runs")).to_contain_text("greeter")
    screenshot(page, shots, "usage")


def test_pages_are_readable_at_a_phones_width(
    board: BerthServer, browser: Browser, shots: Path
) -> None:
    human = new_human(board)
    context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        sign_in(page, board, human)
        for name in (
            "approvals",
            "workloads",
            "workloads/new",
            "boxes",
            "keys",
            "usage",
            "policy",
        ):
            page.goto(f"{board.url}/{name}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"/{name} scrolls sideways by {overflow} px at 390 px"
            screenshot(page, shots, "phone-" + name.replace("/", "-"))
    finally:
        context.close()


def test_a_create_with_bad_input_shows_the_error_next_to_its_field(
    board: BerthServer, page: Page, shots: Path
) -> None:
    human = new_human(board)
    sign_in(page, board, human)
    page.goto(f"{board.url}/workloads/new")
    page.get_by_label("Name").fill("sleeper")
    page.get_by_label("Type").select_option("service")
    page.get_by_label("Image").fill(TEST_IMAGE)
    page.get_by_label("Command").fill("sleep 300")
    page.get_by_label("Port").fill("70000")
    page.get_by_label("Schedule").fill("")
    page.get_by_role("button", name="Create").click()
    port = page.get_by_label("Port")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-port")).to_contain_text("less than or equal to 65535")
    expect(page.get_by_label("Name")).to_have_value("sleeper")  # the rest is kept
    screenshot(page, shots, "workload-create-error")
    assert agent(board, human).get("/v1/compute").json()["workloads"] == []

    # A rule the domain checks (not the model): a schedule for a service, on its field.
    port.fill("")
    page.get_by_label("Schedule").fill("*/5 * * * *")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#e-schedule_expr")).to_be_visible()

    page.get_by_label("Schedule").fill("")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="sleeper")).to_be_visible()
    expect(page.locator("#workload-status")).to_have_text("running", timeout=60_000)
    screenshot(page, shots, "workload-service")


def test_a_workloads_secrets_exec_and_delete_from_its_page(
    board: BerthServer, page: Page, shots: Path
) -> None:
    human = new_human(board)
    sign_in(page, board, human)
    page.goto(f"{board.url}/workloads/new")
    page.get_by_label("Name").fill("worker")
    page.get_by_label("Type").select_option("service")
    page.get_by_label("Image").fill(TEST_IMAGE)
    page.get_by_label("Command").fill("sleep 300")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#workload-status")).to_have_text("running", timeout=60_000)

    page.get_by_label("Key").fill("API_TOKEN")
    page.get_by_label("Value").fill("s3cret value")
    page.get_by_role("button", name="Set secret").click()
    secret = page.locator(".secrets li", has_text="API_TOKEN")
    expect(secret.locator("output")).to_have_text("••••••")  # hidden until asked
    expect(page.locator("body")).not_to_contain_text("s3cret value")
    secret.get_by_role("button", name="Reveal").click()
    expect(secret.locator("output")).to_have_text("s3cret value")

    expect(page.locator("#workload-status")).to_have_text("running", timeout=60_000)
    page.get_by_label("Command", exact=True).fill("echo $((6*7))")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#exec-stdout")).to_have_text("42\n")
    expect(page.locator("#exec-exit")).to_have_text("0")

    page.get_by_role("button", name="Delete secret API_TOKEN").click()
    expect(page.locator(".secrets")).not_to_contain_text("API_TOKEN")

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first; "no" keeps it
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", name="worker")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete…").click()
    expect(page).to_have_url(f"{board.url}/workloads")
    assert agent(board, human).get("/v1/compute").json()["workloads"] == []


def test_a_second_user_sees_none_of_the_first_users_data(
    board: BerthServer, browser: Browser
) -> None:
    first, second = new_human(board), new_human(board)
    asked = agent(board, first).post(
        "/v1/compute", json={"name": "private-job", "type": "job", "image": TEST_IMAGE}
    )
    approval_id = asked.json()["approval_id"]
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        sign_in(page, board, second)
        page.goto(f"{board.url}/approvals")
        expect(page.get_by_text("Nothing waits for you.")).to_be_visible()
        expect(page.locator("body")).not_to_contain_text("private-job")
        token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        shown = page.goto(f"{board.url}/approvals/{approval_id}")
        assert shown is not None and shown.status == 404
        decided = page.request.post(
            f"{board.url}/approvals/{approval_id}/approve", form={"csrf": token}
        )
        assert decided.status == 404
        page.goto(f"{board.url}/workloads")
        expect(page.get_by_text("No workloads yet.")).to_be_visible()
    finally:
        context.close()
    assert agent(board, first).get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"


def test_the_dashboard_stays_out_of_the_api_document(board: BerthServer) -> None:
    paths = httpx.get(f"{board.url}/openapi.json", timeout=30).json()["paths"]
    api = ("/v1/", "/compute", "/healthz", "/readyz")
    assert all(path.startswith(api) for path in paths), paths
    assert not any(path.startswith(("/approvals", "/workloads", "/sign-in")) for path in paths)


def test_an_invitation_link_sets_the_first_password_once(
    board: BerthServer, page: Page, shots: Path
) -> None:
    email = f"invitee-{time.monotonic_ns()}@example.com"
    user_id = board.admin("create-user", "--email", email)["id"]
    invited = board.admin("invite", "--user", user_id, "--base-url", board.url)
    assert invited["link"].startswith(f"{board.url}/invite/")

    page.goto(invited["link"])
    expect(page.get_by_text(email)).to_be_visible()
    screenshot(page, shots, "invitation")
    page.get_by_label("Password", exact=True).fill("correct horse battery staple")
    page.get_by_label("The same password again").fill("correct horse battery stapler")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The two passwords differ")

    page.get_by_label("Password", exact=True).fill("correct horse battery staple")
    page.get_by_label("The same password again").fill("correct horse battery staple")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page).to_have_url(f"{board.url}/workloads")  # signed in; nothing pending

    again = page.goto(invited["link"])
    assert again is not None and again.status == 410
    expect(page.get_by_role("alert")).to_contain_text("already used")
    signed_in = httpx.post(
        f"{board.url}/v1/auth/sign-in",
        json={"email": email, "password": "correct horse battery staple"},
        timeout=30,
    )
    assert signed_in.status_code == 200, signed_in.text

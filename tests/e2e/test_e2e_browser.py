"""A customer in a real browser (Debian's Chromium through Playwright) against the local stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.local_stack import http

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REFERENCE = re.compile(r"HD-[0-9A-HJKMNP-TV-Z]{6}")  # Crockford base32


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_a_customer_opens_a_ticket_from_the_form_follows_it_and_writes_again(page, local_stack):
    from playwright.sync_api import expect

    # Given the support form
    page.goto(local_stack.api_url)
    expect(page.locator("select[name=category] option")).to_have_count(4)

    # When the customer fills it in and sends it
    page.fill("[name=name]", "Ann Example")
    page.fill("[name=email]", "ann@example.com")
    page.select_option("[name=category]", "technical")
    page.fill("[name=subject]", "Export fails")
    page.fill("[name=description]", "The CSV export stops at 50%.")
    page.locator("form:has([name=description]) [type=submit]").click()

    # Then the confirmation shows the reference and a private link
    reference = page.locator("#reference").inner_text().strip()
    assert REFERENCE.fullmatch(reference), reference

    # When they follow the private link
    page.locator("#private-link").click()

    # Then the ticket page shows its status, due times and the public timeline
    assert page.url.startswith(f"{local_stack.api_url}tickets/{reference}?token=")
    expect(page.locator("#status")).to_have_text("Received: waiting for our team")
    expect(page.locator("#status")).to_have_attribute("data-status", "new")
    expect(page.locator("#first-response-due time")).to_have_attribute("datetime", re.compile(r"Z$"))
    expect(page.locator("#timeline")).to_contain_text("The CSV export stops at 50%.")

    # When they add a message with the page's form
    ticket_url = page.url
    page.locator("#message-form [name=body]").fill("It also fails for PDF exports.")
    page.locator("#message-form [type=submit]").click()

    # Then they are back on the ticket page, which shows the message
    expect(page.locator("#timeline")).to_contain_text("It also fails for PDF exports.")
    assert page.url == ticket_url
    expect(page.locator("#timeline li")).to_have_count(2)


def test_a_double_click_and_a_reload_of_the_confirmation_open_one_ticket(page, local_stack):
    # Given a customer who double-clicks "Send request"
    page.goto(local_stack.api_url)
    page.fill("[name=email]", "impatient@example.com")
    page.fill("[name=subject]", "Invoice twice")
    page.fill("[name=description]", "I was charged twice.")
    page.locator("form:has([name=description]) [type=submit]").dblclick()
    reference = page.locator("#reference").inner_text().strip()

    # When they reload the confirmation (the browser posts the form again)
    page.reload()

    # Then they see the same reference, and the team sees one ticket
    assert page.locator("#reference").inner_text().strip() == reference
    _, _, body = http("GET", local_stack.console_url + "tickets")
    assert [t["ticket_id"] for t in json.loads(body) if t["customer_email"] == "impatient@example.com"] == [reference]


def test_the_content_security_policy_lets_the_pages_style_apply_and_blocks_nothing_of_ours(page, local_stack):
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)

    page.goto(local_stack.api_url)

    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "672px"  # 42rem: our style applied
    assert violations == []


def test_a_customer_in_another_time_zone_reads_our_promises_in_theirs(browser, local_stack):
    # Given a customer whose browser is in New York (the team works in Berlin)
    context = browser.new_context(timezone_id="America/New_York")
    page = context.new_page()
    page.set_default_timeout(10_000)

    # When they send the form
    page.goto(local_stack.api_url)
    page.fill("[name=email]", "ny@example.com")
    page.fill("[name=subject]", "Login")
    page.fill("[name=description]", "I cannot log in.")
    page.locator("form:has([name=description]) [type=submit]").click()

    # Then the confirmation and their ticket page show New York times
    assert re.search(r"\d\d:\d\d E[SD]T", page.locator("p:has(time)").inner_text())
    page.locator("#private-link").click()
    assert re.search(r"E[SD]T$", page.locator("#first-response-due time").inner_text())
    context.close()


def test_a_wrong_token_shows_a_not_found_page(page, local_stack):
    # Given a ticket
    status, _, body = http("POST", local_stack.api_url + "tickets", json_body={
        "name": "Bo", "email": "bo@example.com", "subject": "Login", "description": "I cannot log in.",
        "category": "account"})
    assert status == 201, body
    ticket_id = json.loads(body)["id"]

    # When someone opens it with a wrong token
    response = page.goto(f"{local_stack.api_url}tickets/{ticket_id}?token=not-the-token")

    # Then they get the not-found page, which gives nothing of the ticket away
    assert response.status == 404
    assert "We could not find that request" in page.locator("h1").inner_text()
    assert "Login" not in page.content()


def test_the_survey_waits_for_the_resolution_and_its_choices_sit_by_their_labels(page, local_stack):
    from functions.api import pages

    # Given a ticket nobody has resolved yet
    status, _, body = http("POST", local_stack.api_url + "tickets", json_body={
        "email": "rita@example.com", "subject": "Invoice", "description": "Wrong address."})
    created = json.loads(body)

    # When its customer opens the survey link
    page.goto(f"{local_stack.api_url}tickets/{created['id']}/survey?token={created['access_token']}")

    # Then they are told it can be rated once resolved, and offered no form to fail with
    assert "once" in page.locator("#not-yet").inner_text() and page.locator("form").count() == 0

    # Given the survey of a resolved ticket (the page the API serves then)
    view = {"id": created["id"], "subject": "Invoice", "status": "resolved"}
    page.set_content(pages.survey_page(view, created["access_token"], local_stack.api_url))

    # Then each radio button sits on the line of its label, just before its words
    choices = page.evaluate("""() => [...document.querySelectorAll('#survey-form label.choice')].map(label => {
        const input = label.querySelector('input').getBoundingClientRect();
        const range = document.createRange(); range.selectNodeContents(label.lastChild);
        const text = range.getBoundingClientRect();
        return {gap: text.left - input.right, rise: Math.abs((input.top + input.bottom - text.top - text.bottom) / 2),
                width: input.width};
    })""")
    assert len(choices) == 5
    assert all(0 <= c["gap"] <= 16 and c["rise"] <= 6 and c["width"] <= 24 for c in choices), choices

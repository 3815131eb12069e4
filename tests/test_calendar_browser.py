"""The calendar by keyboard alone, in headless Debian Chromium against a real node process."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.test_browser import chromium, node_url  # noqa: F401  (the node fixture)

TABS = 300  # a page's links and fields, with room to spare


def tab_to(page: Page, matches) -> dict:
    """Press Tab until the focused element is the one ``matches`` accepts; its facts."""
    for _ in range(TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => ({tag: document.activeElement.tagName,"
            " text: document.activeElement.textContent.trim(),"
            " href: document.activeElement.getAttribute('href') || ''})")
        if matches(focused):
            return focused
    raise AssertionError("never reached by Tab")


def test_keyboard_reaches_calendar_meeting_and_add_to_calendar(node_url):  # noqa: F811
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(node_url + "/")
        tab_to(page, lambda f: f["href"] == "/events" and f["text"] == "Calendar")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()
        expect(page.locator("table.month caption")).to_be_visible()
        expect(page.locator('td[aria-current="date"]')).to_have_count(1)
        # The agenda starts today, so it holds the seeded meetings two days ahead whatever
        # the day of the month.
        tab_to(page, lambda f: f["text"] == "Agenda")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("^Meetings from"), level=2)).to_be_visible()
        meeting = tab_to(page, lambda f: re.fullmatch(
            r"/events/\d+\?on=\d{4}-\d\d-\d\dT\d\d:\d\d", f["href"]) is not None)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(re.escape(meeting["href"]) + "$"))
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        add = tab_to(page, lambda f: f["text"].startswith("Add to calendar"))
        assert re.fullmatch(r"/events/\d+\.ics", add["href"])
        response = page.request.get(node_url + add["href"])
        assert response.ok and "BEGIN:VCALENDAR" in response.text()

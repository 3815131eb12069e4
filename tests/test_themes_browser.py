"""Themes for a meeting in a real browser against a real node.

Fay facilitates; Ada and Ben are members. Ada and Ben propose themes, all three support
one, Ben changes his mind, and Fay sets the theme before the meeting. Each of them sees
it, on the meeting's page and the group's; a visitor does not (the group keeps its
themes to its members). Both pages, with their theme sections, pass axe-core.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from node.db import Database
from tests.helpers import local_key, run_on
from tests.members_browser import (
    logged_in,
    members_node,
    no_axe_violations,
    said,
    seed_members_group,
    weekly_meeting,
)
from tests.test_browser import ARTIFACTS, chromium

LONDON = ZoneInfo("Europe/London")
FIRST = (datetime.now(LONDON) + timedelta(days=5)).replace(
    tzinfo=None, hour=18, minute=30, second=0, microsecond=0)


async def seed(db: Database) -> int:
    _, group = await seed_members_group(db, ("Ada", "Ben"), name="Open Door")
    return await weekly_meeting(db, group.id, "Open Door circle", FIRST, "The front room")


@pytest.fixture
def node(tmp_path):
    with members_node(tmp_path, seed) as served:
        yield served


def stored(db_path: Path, sql: str) -> object:
    """One value read from the node's database, on a thread of its own (the browser's
    event loop is running on this one)."""
    with ThreadPoolExecutor(1) as reader:
        return reader.submit(run_on, db_path, lambda db: db.fetchval(sql)).result()


def propose(page: Page, theme: str, signed: bool = False) -> None:
    page.get_by_label("Propose a theme").fill(theme)
    if signed:
        page.get_by_label("Sign it with my name").check()
    page.get_by_role("button", name="Propose this theme").click()
    said(page, "Your theme is proposed.")


def support(page: Page, theme: str) -> None:
    page.get_by_role("button", name=f"Support this theme {theme}").click()
    said(page, "Your support is noted.")


def test_members_propose_support_and_the_facilitator_sets_the_theme(node):
    url, db_path, event_id = node
    meeting = f"{url}/events/{event_id}?on={local_key(FIRST)}"
    with chromium() as browser:
        fay, ada, ben = (logged_in(browser, url, name) for name in ("Fay", "Ada", "Ben"))
        for page in (fay, ada, ben):
            page.goto(meeting)

        propose(ada, "Sleep")
        propose(ben, "Talking to family", signed=True)
        ada.reload()
        theme = ada.get_by_role("region", name="Theme")
        expect(theme.get_by_text("(proposed by Ben)")).to_be_visible()
        expect(theme.get_by_text("Ada")).to_have_count(0)  # she did not sign
        no_axe_violations(ada)  # with the forms to propose

        for page in (fay, ada, ben):
            page.reload()
        support(ada, "Talking to family")
        support(ben, "Sleep")
        support(fay, "Talking to family")
        support(ben, "Talking to family")  # Ben changes his mind
        expect(ben.get_by_text("You support this theme.")).to_have_count(1)
        expect(ben.get_by_text("supported it")).to_have_count(0)  # no running totals
        assert stored(db_path, "SELECT count(*) FROM theme_votes") == 3

        fay.reload()
        no_axe_violations(fay)  # with the facilitator's forms
        fay.get_by_role("button", name="Make it the theme Talking to family").click()
        said(fay, "The theme is set: “Talking to family”.")
        assert stored(db_path, "SELECT theme FROM meeting_themes") == "Talking to family"

        for page in (fay, ada, ben):
            page.goto(meeting)
            section = page.get_by_role("region", name="Theme")
            expect(section.locator("strong").filter(has_text="Talking to family")
                   ).to_be_visible()
            expect(section.get_by_text("3 members supported it")).to_be_visible()
            expect(section.get_by_role("button", name="Propose this theme")).to_have_count(0)
        ada.screenshot(path=str(ARTIFACTS / "meeting-theme.png"), full_page=True)
        no_axe_violations(ada)

        ben.goto(f"{url}/groups/open-door")
        expect(ben.get_by_text("Theme: Talking to family")).to_be_visible()
        no_axe_violations(ben)

        visitor = browser.new_context().new_page()
        for page_url in (meeting, f"{url}/groups/open-door"):
            visitor.goto(page_url)
            expect(visitor.get_by_role("heading", level=1)).to_be_visible()
            expect(visitor.get_by_text("Talking to family")).to_have_count(0)
            expect(visitor.get_by_text("Sleep")).to_have_count(0)

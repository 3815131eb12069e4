"""The rota of a group that shares facilitation, in a real browser against a real node.

Three members: Alex holds the first meeting and Blair the second, Casey co-holds the
first; Alex asks for a swap and Blair takes it, giving the second meeting in exchange.
Each member then sees the new holders, and the pages pass axe-core.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from node.db import Database
from node.domain import Facilitation, Practice
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
MEMBERS = ("Alex", "Blair", "Casey")
SLUG = "open-door"
FIRST = (datetime.now(LONDON) + timedelta(days=5)).replace(
    tzinfo=None, hour=18, minute=30, second=0, microsecond=0)
SECOND = FIRST + timedelta(weeks=1)


async def seed(db: Database) -> int:
    _, group = await seed_members_group(
        db, MEMBERS, name="Open Door", practice=Practice(facilitation=Facilitation.ROTATING))
    return await weekly_meeting(db, group.id, "Open Door circle", FIRST, "The front room")


@pytest.fixture
def node(tmp_path):
    with members_node(tmp_path, seed) as served:
        yield served


def test_members_volunteer_co_hold_and_swap_turns(node):
    url, db_path, event_id = node
    first = f"{url}/events/{event_id}?on={local_key(FIRST)}"
    second = f"{url}/events/{event_id}?on={local_key(SECOND)}"
    with chromium() as browser:
        alex, blair, casey = (logged_in(browser, url, name) for name in MEMBERS)
        alex.goto(first)
        rota = alex.locator("#rota")
        expect(rota.get_by_role("heading", name="Who holds this meeting")).to_be_visible()
        no_axe_violations(alex)
        rota.get_by_role("button", name="I'll hold this meeting").click()
        said(alex, "Thank you: you hold the meeting on")

        blair.goto(second)
        blair.locator("#rota").get_by_role("button", name="I'll hold this meeting").click()
        said(blair, "Thank you: you hold the meeting on")

        casey.goto(first)
        casey.locator("#rota").get_by_role("button", name="I'll co-hold").click()
        said(casey, "Thank you: you co-hold the meeting on")
        expect(casey.locator("#rota dd").first).to_have_text("Alex")

        alex.goto(first)
        alex.get_by_role("button", name="Ask for a swap").click()
        said(alex, "would like to swap this turn")
        no_axe_violations(alex)

        blair.goto(first)
        offer = blair.get_by_role("group", name="Hold this meeting instead of Alex")
        expect(blair.get_by_text("Alex would like to swap this turn")).to_be_visible()
        offer.get_by_label("Give Alex one of your turns in exchange").select_option(
            f"{event_id}|{local_key(SECOND)}|holder")
        no_axe_violations(blair)
        blair.screenshot(path=str(ARTIFACTS / "rota-swap.png"), full_page=True)
        offer.get_by_role("button", name="Take this turn").click()
        said(blair, "The turns are swapped")

        for page in (alex, blair, casey):
            page.goto(first)
            holders = page.locator("#rota dd")
            expect(holders.first).to_contain_text("Blair")
            expect(holders.nth(1)).to_contain_text("Casey")
            expect(page.get_by_text("would like to swap")).to_have_count(0)
            page.goto(second)
            expect(page.locator("#rota dd").first).to_contain_text("Alex")

        casey.goto(f"{url}/groups/{SLUG}")
        table = casey.locator("#rota table")
        expect(table.get_by_role("row").nth(1)).to_contain_text("Blair")
        expect(table.get_by_role("row").nth(1)).to_contain_text("Casey")
        expect(table.get_by_role("row").nth(2)).to_contain_text("Alex")
        expect(table.get_by_role("link", name="volunteer").first).to_be_visible()
        no_axe_violations(casey)
        casey.screenshot(path=str(ARTIFACTS / "rota-group.png"), full_page=True)

        visitor = browser.new_page()
        visitor.goto(f"{url}/groups/{SLUG}")
        expect(visitor.locator("#rota")).to_have_count(0)
        expect(visitor.get_by_text("Blair")).to_have_count(0)

    stored = run_on(db_path, lambda db: db.fetchall(
        "SELECT h.occurrence, h.role, a.display_name FROM meeting_holders h"
        " JOIN accounts a ON a.id = h.account_id ORDER BY h.occurrence, h.role"))
    assert [tuple(row) for row in stored] == [
        (local_key(FIRST), "co_holder", "Casey"), (local_key(FIRST), "holder", "Blair"),
        (local_key(SECOND), "holder", "Alex")]

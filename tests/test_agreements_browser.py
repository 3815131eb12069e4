"""Agreements written together, in a real browser against a real node process.

Three members of a group that adopts changes by consent: Alex proposes a change; Blair
reads the diff and objects, so the change is not adopted when the discussion ends; Blair
withdraws the objection and the change is adopted; Casey, who joined under the older
version, is asked to accept the new one on the group's page, accepts, and is asked no
more. The proposal page and the group page with the acceptance box pass axe-core.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from node.db import Database
from node.domain import Practice
from node.storage import agreements, groups
from tests.helpers import run_on
from tests.members_browser import (
    logged_in,
    members_node,
    no_axe_violations,
    said,
    seed_members_group,
)
from tests.test_browser import ARTIFACTS, chromium

MEMBERS = ("Alex", "Blair", "Casey")
SLUG = "open-door"
FIRST = "- We keep what is said here to ourselves.\n- We speak from our own experience."
ADDED = "We arrive on time, or quietly."


async def seed(db: Database) -> int:
    _, group = await seed_members_group(db, MEMBERS, name="Open Door", agreements=FIRST,
                                        practice=Practice(discussion_days=1))
    return group.id


@pytest.fixture
def node(tmp_path):
    with members_node(tmp_path, seed) as served:
        yield served


def settle_after_discussion(db_path: Path) -> int:
    """What the notice worker does once the day of discussion is over (in a thread of
    its own: Playwright's loop runs in this one)."""
    later = datetime.now(UTC) + timedelta(days=2)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run_on, db_path,
                           lambda db: agreements.settle_due(db, later)).result()


def test_a_change_blocked_by_an_objection_passes_once_withdrawn_and_is_accepted(node):
    url, db_path, group_id = node
    with chromium() as browser:
        alex, blair, casey = (logged_in(browser, url, name) for name in MEMBERS)

        alex.goto(f"{url}/groups/{SLUG}")
        alex.get_by_role("link", name="The group's agreements").click()
        no_axe_violations(alex)
        alex.get_by_role("link", name="Propose a change").click()
        text = alex.get_by_label("The agreements as you propose them")
        expect(text).to_have_value(FIRST)
        no_axe_violations(alex)
        text.fill(FIRST + "\n- " + ADDED)
        alex.get_by_label("Why this change?").fill("Late arrivals unsettle the circle.")
        alex.get_by_role("button", name="Propose this change").click()
        said(alex, "Your change is proposed")
        proposal = alex.url

        blair.goto(proposal)
        expect(blair.locator("ins")).to_contain_text(ADDED)
        expect(blair.get_by_text("Late arrivals unsettle the circle.")).to_be_visible()
        no_axe_violations(blair)
        blair.get_by_label("Your reason for objecting").fill("Buses here are unreliable.")
        blair.get_by_role("button", name="I object to this change").click()
        said(blair, "Your objection is recorded")
        expect(blair.get_by_text("You object to this change.")).to_be_visible()
        blair.screenshot(path=str(ARTIFACTS / "agreements-proposal.png"), full_page=True)

        assert settle_after_discussion(db_path) == 0
        alex.goto(proposal)
        expect(alex.get_by_text("1 objection stands")).to_be_visible()
        expect(alex.get_by_text("Buses here are unreliable.")).to_be_visible()
        expect(alex.get_by_text("You object")).to_have_count(0)

        blair.goto(proposal)
        blair.get_by_role("button", name="Withdraw my objection").click()
        said(blair, "Your objection is withdrawn")
        assert settle_after_discussion(db_path) == 1

        casey.goto(f"{url}/groups/{SLUG}")
        box = casey.get_by_role(
            "region", name="The group's agreements changed since you accepted them")
        expect(box.locator("ins")).to_contain_text(ADDED)
        no_axe_violations(casey)
        casey.screenshot(path=str(ARTIFACTS / "agreements-accept.png"), full_page=True)
        box.get_by_role("button", name="I accept the new agreements").click()
        said(casey, "you accepted the group's agreements")
        expect(casey.get_by_role(
            "heading", name="The group's agreements changed since you accepted them")
        ).to_have_count(0)
        casey.reload()
        expect(casey.get_by_text("changed since you accepted them")).to_have_count(0)
        expect(casey.get_by_text(ADDED)).to_be_visible()  # the group's agreements now

        casey.goto(f"{url}/groups/{SLUG}/agreements")
        expect(casey.get_by_role("row", name="Version 2 (now)")).to_contain_text(
            "adopted by consent")
        casey.get_by_role("link", name="Version 2").click()
        expect(casey.locator("ins")).to_contain_text(ADDED)
        no_axe_violations(casey)

    group = run_on(db_path, lambda db: groups.get_group_by_id(db, group_id))
    assert group.agreements == FIRST + "\n- " + ADDED
    stored = run_on(db_path, lambda db: db.fetchall(
        "SELECT a.display_name, m.agreements_version FROM memberships m"
        " JOIN accounts a ON a.id = m.account_id WHERE m.group_id = ? ORDER BY a.display_name",
        (group_id,)))
    assert [tuple(row) for row in stored] == [
        ("Alex", 2), ("Blair", 1), ("Casey", 2), ("Fay", 1)]

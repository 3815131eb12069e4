"""Check-out pulses and group resources in a real browser against a real node process.

Five pulses on a meeting show its facilitator a summary, four on another show nothing;
a member adds a resource, the facilitator makes it public, and an anonymous visitor finds
it on the group's page. Every page visited passes axe-core.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from node.db import Database
from node.storage import pulses
from tests.helpers import local_key, run_on
from tests.members_browser import (
    logged_in,
    members_node,
    no_axe_violations,
    seed_members_group,
    weekly_meeting,
)
from tests.test_browser import ARTIFACTS, chromium

LONDON = ZoneInfo("Europe/London")
MEMBERS = ("Sam", "Kim", "Lee", "Ash", "Bo")  # the first three answer in the browser
SLUG = "quiet-harbour"


def two_weeks_ago(hours: int) -> datetime:
    """A weekly series' first start: two weeks ago, ``hours`` later in the day than now,
    so its second meeting was held a week ago and is still open for pulses."""
    return (datetime.now(LONDON) - timedelta(days=14, hours=-hours)).replace(
        tzinfo=None, second=0, microsecond=0)


async def seed(db: Database) -> dict:
    ids, group = await seed_members_group(db, MEMBERS, name="Quiet Harbour",
                                          crisis_notice="In danger now? Call **999**.")
    meetings = {}
    for title, hours in (("Harbour circle", 1), ("Harbour walk", 2)):
        start = two_weeks_ago(hours)
        event_id = await weekly_meeting(db, group.id, title, start, "The harbour room")
        meetings[title] = (event_id, local_key(start + timedelta(days=7)))
    return {"ids": ids, "group_id": group.id, "meetings": meetings}


@pytest.fixture
def node(tmp_path):
    with members_node(tmp_path, seed) as served:
        yield served


def answer_directly(db_path: Path, seeded: dict, title: str, names: tuple[str, ...]) -> None:
    """Members who answered without the browser (there are six accounts in all)."""
    event_id, key = seeded["meetings"][title]
    end = datetime.strptime(key, "%Y-%m-%dT%H:%M").replace(tzinfo=LONDON) + timedelta(minutes=90)

    async def store(db: Database) -> None:
        for n, name in enumerate(names):
            assert await pulses.answer_pulse(
                db, event_id=event_id, occurrence=key, group_id=seeded["group_id"],
                account_id=seeded["ids"][name], scale=3 + n % 3, word="",
                erase_after=end + timedelta(days=90))
    run_on(db_path, store)


def test_five_pulses_show_a_summary_four_show_nothing(node):
    url, db_path, seeded = node
    circle, circle_key = seeded["meetings"]["Harbour circle"]
    walk, walk_key = seeded["meetings"]["Harbour walk"]
    # Two answer outside the browser (playwright's loop runs from here on); the browser's
    # third answer is the fifth.
    answer_directly(db_path, seeded, "Harbour circle", ("Ash", "Bo"))
    answer_directly(db_path, seeded, "Harbour walk", ("Sam", "Kim", "Lee", "Ash"))
    with chromium() as browser:
        for n, (name, scale, word) in enumerate((("Sam", "4 · Good", "lighter"),
                                                 ("Kim", "5 · Really good", "Heard"),
                                                 ("Lee", "2 · A bit hard", ""))):
            page = logged_in(browser, url, name)
            page.goto(f"{url}/events/{circle}")  # the next meeting asks about the last one
            page.get_by_role("link", name="Leave a check-out pulse").click()
            expect(page.get_by_role("heading", name="Check-out pulse")).to_be_visible()
            if n == 0:
                no_axe_violations(page, "#pulse")
            page.get_by_label(scale).check()
            page.get_by_label("One word for it").fill(word)
            page.get_by_role("button", name="Send my pulse").click()
            expect(page.get_by_role("status").filter(
                has_text="Your pulse is in, with no name on it")).to_be_visible()
            expect(page.get_by_text("Thank you for your pulse on this meeting.")).to_be_visible()
            expect(page.get_by_role("button", name="Send my pulse")).to_have_count(0)
            expect(page.get_by_text("A summary of")).to_have_count(0)  # members see none
            page.context.close()

        fay = logged_in(browser, url, "Fay")
        fay.goto(f"{url}/events/{circle}?on={circle_key}")
        summary = fay.locator("#pulse")
        expect(summary.get_by_role("table", name="A summary of 5 answers")).to_be_visible()
        expect(summary.get_by_role("row", name="4 · Good 2")).to_be_visible()
        expect(summary.get_by_text("Their words: Heard, lighter")).to_be_visible()
        expect(summary.get_by_text("are erased on")).to_be_visible()
        no_axe_violations(fay, "#pulse")
        fay.screenshot(path=str(ARTIFACTS / "pulse-summary.png"), full_page=True)

        fay.goto(f"{url}/events/{walk}?on={walk_key}")
        expect(fay.get_by_role("heading", name="Check-out pulse")).to_be_visible()
        expect(fay.get_by_text("A summary of")).to_have_count(0)
        expect(fay.get_by_text("once at least 5 members have answered").last).to_be_visible()
        no_axe_violations(fay, "#pulse")


def test_a_member_adds_a_resource_the_facilitator_makes_it_public(node):
    url, _, _ = node
    with chromium() as browser:
        sam = logged_in(browser, url, "Sam")
        sam.goto(f"{url}/groups/{SLUG}")
        sam.get_by_role("link", name="All resources (0)").click()
        expect(sam.get_by_role("heading", name="Resources", level=1)).to_be_visible()
        expect(sam.get_by_role("complementary", name="If you need help now")).to_contain_text(
            "999")
        no_axe_violations(sam)
        sam.get_by_label("A helpline").check()
        sam.get_by_label("Title").fill("Night line")
        sam.get_by_label("Link").fill("https://nightline.example/")
        sam.get_by_label("A short note").fill("Open **every night** from 8pm.")
        sam.get_by_role("button", name="Add the resource").click()
        expect(sam.get_by_role("status").filter(has_text="“Night line” is added")).to_be_visible()
        expect(sam.get_by_role("link", name="Night line", exact=True)).to_have_attribute(
            "href", "https://nightline.example/")
        expect(sam.get_by_text("Added by Sam on")).to_be_visible()
        no_axe_violations(sam)
        sam.screenshot(path=str(ARTIFACTS / "resources.png"), full_page=True)

        fay = logged_in(browser, url, "Fay")
        fay.goto(f"{url}/groups/{SLUG}/resources")
        fay.get_by_role("button", name="Show on the public page Night line").click()
        expect(fay.get_by_role("status").filter(
            has_text="now shows on the group's public page")).to_be_visible()
        no_axe_violations(fay)

        visitor = browser.new_page()
        visitor.goto(f"{url}/groups/{SLUG}")
        resources = visitor.locator("#resources")
        expect(resources.get_by_role("link", name="Night line")).to_be_visible()
        expect(resources.locator("strong", has_text="every night")).to_be_visible()
        expect(resources.get_by_text("Sam")).to_have_count(0)
        expect(visitor.get_by_role("link", name="All resources")).to_have_count(0)
        no_axe_violations(visitor, "#resources")
        visitor.goto(f"{url}/groups/{SLUG}/resources")
        assert visitor.url.endswith(f"/groups/{SLUG}#resources")

"""A member's journey in a real browser against a real node process.

register → confirm the address by the mailed link → find a group by filter → join → RSVP,
in headless Debian Chromium;
and a peer's group and meeting, read from the directory by keyboard.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from node.cli import initialise
from node.domain import EventDraft, Format, NodeSettings, RegistrationMode
from node.storage import accounts, events, groups, remote
from node.storage.settings import save_settings
from tests.helpers import database, draft, serving, wait_for

CHROMIUM = "/usr/bin/chromium"
PEER_GROUP = "https://peer.example/groups/harbour-lights"
ARTIFACTS = Path(__file__).parent / "artifacts"


async def seed(path: Path) -> None:
    db = database(path)
    await db.open()
    try:
        await save_settings(db, NodeSettings(name="Leith Peer Support",
                                             registration=RegistrationMode.OPEN))
        host = await accounts.create_account(db, email="host@example.org",
                                             display_name="Host", password_hash=None)
        for spec in (
            draft(name="Grief Walk", summary="Walking and talking about loss",
                  topics=("grief",), agreements="Confidentiality, always.",
                  accessibility=("step_free",)),
            draft(name="Calm Minds", summary="Anxiety peer group", topics=("anxiety",)),
        ):
            slug = await groups.create_group(db, spec, host)
            group = await groups.get_group(db, slug)
            start = (datetime.now(UTC) + timedelta(days=2)).replace(
                hour=18, minute=30, second=0, microsecond=0, tzinfo=None)
            await events.create_event(db, group.id, EventDraft(
                title=f"{spec.name} weekly", description="", starts_at=start,
                duration_minutes=90, timezone="Europe/London", rrule="FREQ=WEEKLY",
                format=Format.ONLINE, online_url="https://meet.example/secret-room",
                capacity=8))
        peer_group = await remote.upsert_remote_group(
            db, origin="peer.example", ap_id=PEER_GROUP, url=PEER_GROUP,
            username="harbour-lights",
            draft=draft(name="Harbour Lights", summary="Loneliness peer group, by the sea",
                        topics=("loneliness",), format=Format.IN_PERSON, area="Portobello"))
        await remote.upsert_remote_event(
            db, group_id=peer_group, ap_id=PEER_GROUP + "/events/1",
            url=PEER_GROUP + "/events/1", changes=[], cancelled=False, draft=EventDraft(
                title="Harbour Lights evening", description="Tea by the window.",
                starts_at=start, duration_minutes=60, timezone="America/Halifax",
                rrule="FREQ=WEEKLY", format=Format.IN_PERSON, place="Lifeboat station"))
    finally:
        await db.close()


@pytest.fixture
def node_url(tmp_path):
    data = tmp_path / "node"
    initialise(data, "http://127.0.0.1")
    asyncio.run(seed(data / "grassroots.db"))
    with serving(data) as (url, _):
        yield url


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            yield browser
        finally:
            browser.close()


def mailed_link(mail_dir: Path, to: str, path: str) -> str:
    """The path of the link under ``path`` the node mailed to ``to`` (no SMTP: .eml files)."""
    def found() -> str | None:
        for eml in sorted(mail_dir.glob("*.eml")):
            message = message_from_bytes(eml.read_bytes(), policy=policy.default)
            link = re.search(rf"https?://[^/\s]+({re.escape(path)}\S+)",
                             message.get_body(("plain",)).get_content())
            if message["To"] == to and link:
                return link.group(1)
        return None
    return wait_for(found, f"a link to {path} mailed to {to}")


def test_member_registers_finds_joins_and_rsvps(node_url, tmp_path):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(node_url + "/register")
        page.get_by_label("Display name").fill("Robin")
        page.get_by_label("Email").fill("robin@example.org")
        page.get_by_label("Password").fill("a long enough password")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Find a group")).to_be_visible()
        # Members confirm their address before joining: the link the node mailed.
        page.goto(node_url + mailed_link(tmp_path / "node" / "mail", "robin@example.org",
                                         "/account/verify/"))
        page.get_by_role("button", name="Confirm my address").click()
        expect(page.get_by_role("status").filter(
            has_text="your email address is confirmed")).to_be_visible()
        page.goto(node_url + "/groups")

        page.get_by_text("Filters", exact=True).click()  # the folded filter panel
        page.get_by_label("Topic", exact=True).select_option("grief")
        page.get_by_label("Step-free access").check()
        page.get_by_role("button", name="Show groups").click()
        expect(page.get_by_role("heading", name="1 group found")).to_be_visible()
        # The active filters show as chips; removing one widens the search again.
        chips = page.get_by_role("list", name="Active filters")
        expect(chips.get_by_role("link")).to_have_count(2)
        expect(page.get_by_text("Filters (2)")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "directory.png"), full_page=True)
        page.get_by_role("link", name="Grief Walk").click()

        page.get_by_label("I have read and accept the group agreements").check()
        page.get_by_role("button", name="Join this group").click()
        expect(page.get_by_role("status").filter(
            has_text="Welcome to Grief Walk: you are a member now.")).to_be_visible()
        expect(page.get_by_text("You are a member of this group")).to_be_visible()

        # The next meetings, one line each: the time is the link, the title beside it.
        first = page.locator("ul.meetings li").first
        expect(first).to_contain_text("Grief Walk weekly")
        first.get_by_role("link").click()
        expect(page.get_by_text("https://meet.example/secret-room")).to_be_visible()
        page.get_by_role("button", name=re.compile(r"going|^yes", re.IGNORECASE)).first.click()
        expect(page.get_by_text(re.compile(r"you are going", re.IGNORECASE)).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "journey.png"), full_page=True)

        # Keyboard users reach the main content first.
        page.goto(node_url + "/groups")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_a_peer_group_and_its_meeting_are_pages_here(node_url):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(node_url + "/groups?origin=federated")
        expect(page.get_by_role("heading", name="1 group found")).to_be_visible()
        expect(page.get_by_text("listed by peer.example")).to_be_visible()
        page.get_by_role("link", name="Harbour Lights", exact=True).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Harbour Lights", level=1)).to_be_visible()
        assert page.url == node_url + "/groups/harbour-lights%40peer.example"
        join = page.get_by_role("link", name=re.compile(r"^Join on peer\.example"))
        expect(join).to_have_attribute("href", PEER_GROUP)
        expect(page.get_by_text(re.compile(r"Confirmed by peer\.example"))).to_be_visible()
        # Joined on the peer, not here (the footer's one button changes the language).
        expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "federated_group.png"), full_page=True)

        page.locator("ul.meetings li").first.get_by_role("link").click()
        expect(page.get_by_role("heading", name="Harbour Lights evening", level=1)).to_be_visible()
        expect(page.locator('main abbr[title="America/Halifax"]').first).to_be_visible()
        expect(page.get_by_role("link", name="See this meeting on peer.example")).to_have_attribute(
            "href", PEER_GROUP + "/events/1")
        expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)  # nothing to answer
        page.screenshot(path=str(ARTIFACTS / "federated_meeting.png"), full_page=True)

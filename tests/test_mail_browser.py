"""A member's whole journey by mail, in headless Debian Chromium against a real node process
that sends through a real SMTP server on loopback:

register → confirm the address by the mailed link → ask to join an approval group → the
facilitator approves from the mailed link → RSVP → the facilitator moves the meeting →
the member is told the new time.
"""
from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar
from playwright.sync_api import expect

from node.cli import initialise
from node.domain import EventDraft, Format, JoinPolicy, NodeSettings, RegistrationMode
from node.security import hash_password
from node.storage import accounts, events, groups
from node.storage.settings import save_settings
from tests.helpers import database, draft, serving, wait_for
from tests.test_browser import chromium

ZONE = "Europe/Lisbon"
FIRST = (datetime.now(UTC) + timedelta(days=3)).astimezone(ZoneInfo(ZONE)).replace(
    hour=18, minute=30, second=0, microsecond=0, tzinfo=None)
PASSWORD = "a long enough password"


async def seed(path: Path) -> None:
    db = database(path)
    await db.open()
    try:
        await save_settings(db, NodeSettings(name="Lisbon Peer Support",
                                             registration=RegistrationMode.OPEN))
        fay = await accounts.create_account(db, email="fay@example.org", display_name="Fay",
                                            password_hash=hash_password(PASSWORD))
        slug = await groups.create_group(db, draft(
            name="Harbour Circle", summary="Peer support after a loss",
            join_policy=JoinPolicy.APPROVAL, agreements="What is said here stays here."), fay)
        group = await groups.get_group(db, slug)
        await events.create_event(db, group.id, EventDraft(
            title="Harbour Circle evening", description="", starts_at=FIRST,
            duration_minutes=90, timezone=ZONE, rrule="FREQ=WEEKLY",
            format=Format.IN_PERSON, place="Back room", capacity=10))
    finally:
        await db.close()


def mailed(smtp_server, to: str, subject: str) -> EmailMessage:
    return wait_for(lambda: next((r.message for r in smtp_server.received
                                  if r.rcpt_tos == (to,) and subject in r.message["Subject"]),
                                 None), f"{subject!r} mailed to {to}")


def link_in(message: EmailMessage, path: str) -> str:
    """The path of the link under ``path`` in the message's text."""
    found = re.search(rf"https?://[^/\s]+({re.escape(path)}\S*)",
                      message.get_body(("plain",)).get_content())
    assert found, f"no link to {path} in {message['Subject']!r}"
    return found.group(1)


def test_register_verify_join_be_approved_rsvp_and_hear_the_meeting_moved(tmp_path,
                                                                          smtp_server):
    data = tmp_path / "node"
    initialise(data, "http://127.0.0.1")
    asyncio.run(seed(data / "grassroots.db"))
    smtp_server.configure(data)
    with serving(data) as (url, _), chromium() as browser:
        member = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        member.goto(url + "/register")
        member.get_by_label("Display name").fill("Robin")
        member.get_by_label("Email").fill("robin@example.org")
        member.get_by_label("Password").fill(PASSWORD)
        member.get_by_role("button", name="Create account").click()

        welcome = mailed(smtp_server, "robin@example.org", "Confirm your email address")
        member.goto(url + link_in(welcome, "/account/verify/"))
        member.get_by_role("button", name="Confirm my address").click()
        expect(member.get_by_role("status").filter(
            has_text="your email address is confirmed")).to_be_visible()

        member.goto(url + "/groups/harbour-circle")
        member.get_by_label("I have read and accept the group agreements").check()
        member.get_by_role("button", name="Ask to join").click()
        expect(member.get_by_role("status").filter(has_text="You asked to join")).to_be_visible()

        # The facilitator hears of it by mail and approves from its link.
        request = mailed(smtp_server, "fay@example.org", "A request to join Harbour Circle")
        assert "robin@example.org" not in request.as_string()
        facilitator = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        members_page = link_in(request, "/groups/harbour-circle/members")
        facilitator.goto(url + members_page)  # not logged in yet: log in, then back to it
        facilitator.get_by_label("Email").fill("fay@example.org")
        facilitator.get_by_label("Password").fill(PASSWORD)
        facilitator.get_by_role("button", name="Log in").click()
        expect(facilitator).to_have_url(url + members_page)
        facilitator.get_by_role("button", name=re.compile("^Approve")).click()
        expect(facilitator.get_by_role("status").filter(
            has_text="Robin is a member now.")).to_be_visible()

        approved = mailed(smtp_server, "robin@example.org", "You are a member of Harbour Circle")
        assert "What is said here stays here." in approved.get_body(("plain",)).get_content()

        member.goto(url + "/groups/harbour-circle")
        member.locator("ul.meetings li").first.get_by_role("link").click()
        member.get_by_role("button", name="I'm going").click()
        expect(member.get_by_role("status").filter(has_text="You are going on")).to_be_visible()
        confirmed = mailed(smtp_server, "robin@example.org", "You are going")
        (attachment,) = [part for part in confirmed.iter_attachments()
                         if part.get_content_type() == "text/calendar"]
        (vevent,) = Calendar.from_ical(attachment.get_payload(decode=True)).walk("VEVENT")
        assert vevent.decoded("DTSTART").replace(tzinfo=None) == FIRST

        # The facilitator moves that meeting an hour later; the member is told.
        facilitator.goto(member.url)
        later = FIRST + timedelta(hours=1)
        facilitator.get_by_label("New start").fill(later.strftime("%Y-%m-%dT%H:%M"))
        facilitator.get_by_role("button", name="Move this meeting").last.click()
        expect(facilitator.get_by_role("status").filter(
            has_text="This meeting is moved.")).to_be_visible()
        moved = mailed(smtp_server, "robin@example.org", "Moved: Harbour Circle evening")
        text = moved.get_body(("plain",)).get_content()
        assert f"{later:%H:%M}" in text and ZONE in text
        assert "fay@example.org" not in moved.as_string()

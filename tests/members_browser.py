"""What the browser tests of a group's members share: a node with one group and its members.

Fay creates the group and facilitates it; the members named join it as active members.
Every account is verified, with ``PASSWORD``; the node takes registrations openly, with
no review of public groups and no email check. ``members_node`` serves such a node from
a fresh data directory; ``logged_in``, ``no_axe_violations`` and ``said`` are the steps
the tests take in the browser.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from node.cli import initialise
from node.db import Database
from node.domain import (
    EventDraft,
    Format,
    Group,
    MembershipStatus,
    NodeSettings,
    Practice,
    RegistrationMode,
)
from node.security import hash_password
from node.storage import accounts, events, groups
from node.storage.practice import save_practice
from node.storage.settings import save_settings
from tests.helpers import draft, run_on, serving

PASSWORD = "a long enough password"

Seeded = TypeVar("Seeded")


async def seed_members_group(
    db: Database, members: tuple[str, ...], *, name: str, agreements: str = "",
    practice: Practice | None = None, crisis_notice: str = "",
) -> tuple[dict[str, int], Group]:
    """The node's settings, Fay and ``members`` (account ids by name), and Fay's group
    ``name`` with them as active members (and its ``practice``, when given)."""
    await save_settings(db, NodeSettings(
        name="Leith Peer Support", registration=RegistrationMode.OPEN,
        review_public_groups=False, require_verified_email=False,
        crisis_notice=crisis_notice))
    ids = {}
    for person in ("Fay", *members):
        ids[person] = await accounts.create_account(
            db, email=f"{person.lower()}@example.org", display_name=person,
            password_hash=hash_password(PASSWORD), verified=True)
    slug = await groups.create_group(db, draft(name=name, agreements=agreements), ids["Fay"])
    group = await groups.get_group(db, slug)
    assert group is not None
    for person in members:
        await groups.add_membership(db, group.id, ids[person], MembershipStatus.ACTIVE)
    if practice is not None:
        await save_practice(db, group.id, practice)
    return ids, group


async def weekly_meeting(db: Database, group_id: int, title: str, starts_at: datetime,
                         place: str) -> int:
    """A weekly in-person series of 90 minutes in London, from ``starts_at``: its id."""
    return await events.create_event(db, group_id, EventDraft(
        title=title, description="", starts_at=starts_at, duration_minutes=90,
        timezone="Europe/London", rrule="FREQ=WEEKLY", format=Format.IN_PERSON,
        place=place))


@contextmanager
def members_node(
    tmp_path: Path, seed: Callable[[Database], Awaitable[Seeded]],
) -> Iterator[tuple[str, Path, Seeded]]:
    """A node initialised under ``tmp_path``, seeded by ``seed(db)`` and served:
    its URL, its database file and what ``seed`` returned."""
    data = tmp_path / "node"
    initialise(data, "http://127.0.0.1")
    db_path = data / "grassroots.db"
    seeded = run_on(db_path, seed)
    with serving(data) as (url, _):
        yield url, db_path, seeded


def logged_in(browser: Browser, url: str, name: str) -> Page:
    """A page of a new browser context, logged in as ``name``."""
    page = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    page.goto(url + "/login")
    page.get_by_label("Email").fill(f"{name.lower()}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return page


def no_axe_violations(page: Page, context: str | None = None) -> None:
    """axe-core finds nothing on the page (or in the part ``context`` selects)."""
    found = Axe().run(page, context=context).response["violations"]
    assert not found, [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def said(page: Page, text: str) -> None:
    """The page shows a status message containing ``text``."""
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()

"""axe-core over every public page, in each language, on a phone and on a desktop.

A real node process with seeded local and federated listings; headless Debian
Chromium; axe-core (the copy that axe-playwright-python ships) runs in each
page through the DevTools protocol, so the node's no-script policy stays as it
is. Any violation fails with its rule and the offending elements. Screenshots
of the main pages are written to tests/artifacts/.
"""
from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe

from node.cli import initialise
from tests.helpers import run_on, serving
from tests.test_browser import ARTIFACTS, chromium, node_url, seed  # noqa: F401 (a fixture)

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
LANGUAGES = ("en", "de", "es")
SCREENSHOTS = {"/groups", "group", "meeting", "calendar", "flyer"}


def public_pages(base: str) -> dict[str, str]:
    """Name -> path of each kind of page a visitor can reach, found from the directory."""
    directory = httpx.get(f"{base}/groups").text
    local = re.search(r'href="(/groups/[a-z0-9-]+)"', directory).group(1)
    peer = re.search(r'href="(/groups/[^"]+%40[^"]+)"', directory).group(1)
    meeting = re.search(r'href="(/events/\d+)[?"]', httpx.get(base + local).text).group(1)
    peer_meeting = re.search(r'href="(/events/\d+)[?"]', httpx.get(base + peer).text).group(1)
    return {"home": "/", "/groups": "/groups", "filtered": "/groups?topic=grief&format=online",
            "group": local, "meeting": meeting, "peer group": peer,
            "peer meeting": peer_meeting, "register": "/register", "login": "/login",
            "calendar": "/events", "agenda": "/events?view=agenda",
            "flyer": f"{local}/flyer", "meeting flyer": f"{meeting}/flyer",
            "embed": f"{local}/embed", "time zone": "/timezone?next=/events",
            "about": "/about", "federation policy": "/about/federation",
            "not found": "/groups/no-such-group"}


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_public_page_has_no_axe_violation(node_url, viewport):  # noqa: F811
    axe = Axe()
    found: list[str] = []
    pages = public_pages(node_url)
    with chromium() as browser:
        for language in LANGUAGES:
            context = browser.new_context(viewport=VIEWPORTS[viewport], locale=language,
                                          extra_http_headers={"Accept-Language": language})
            page = context.new_page()
            for name, path in pages.items():
                page.goto(node_url + path)
                results = axe.run(page)
                for violation in results.response["violations"]:
                    targets = [n["target"] for n in violation["nodes"]][:3]
                    found.append(f"{language} {viewport} {name}: {violation['id']} {targets}")
                if name in SCREENSHOTS and language == "en":
                    page.screenshot(path=str(ARTIFACTS / f"{viewport}-{name.strip('/')}.png"),
                                    full_page=True)
            context.close()
    assert not found, "\n".join(found)


ADMIN_PAGES = ("/admin/settings", "/admin/accounts", "/admin/peers", "/admin/reports",
               "/admin/audit", "/account")


@pytest.fixture
def admin_node(tmp_path):
    """A seeded node and its first admin's one-time login link."""
    data = tmp_path / "node"
    link = initialise(data, "http://127.0.0.1")
    asyncio.run(seed(data / "grassroots.db"))
    with serving(data) as (url, _):
        yield url, link.removeprefix("http://127.0.0.1")


def test_admin_screens_fit_a_phone_and_have_no_axe_violation(admin_node):
    url, link = admin_node
    axe = Axe()
    found: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORTS["phone"])
        page.goto(url + link)
        page.get_by_role("button", name="Log in").click()
        for path in ADMIN_PAGES:
            page.goto(url + path)
            assert page.url == url + path, page.url  # still logged in, not sent away
            for violation in axe.run(page).response["violations"]:
                found.append(f"{path}: {violation['id']} {[n['target'] for n in violation['nodes']][:3]}")
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if wide > 0:
                found.append(f"{path}: the page is {wide}px wider than the phone")
    assert not found, "\n".join(found)


def test_the_demo_group_its_members_run_shows_each_tool_and_has_no_axe_violation(tmp_path):
    """What a newcomer sees on first start, logged in as the admin (a member of the demo's
    member-run group): each tool with the demo's example work, on a phone and a desktop."""
    data = tmp_path / "node"
    link = initialise(data, "http://127.0.0.1").removeprefix("http://127.0.0.1")
    with serving(data, "--demo") as (url, _):
        def read(sql: str) -> list[tuple]:
            return [tuple(row) for row in run_on(data, lambda db: db.fetchall(sql))]
        [(event_id, themed)] = read("SELECT event_id, occurrence FROM meeting_themes")
        [(proposed,)] = read("SELECT DISTINCT occurrence FROM theme_proposals")
        [(pulsed,)] = read("SELECT occurrence FROM pulse_summaries")
        [(proposal,)] = read("SELECT id FROM agreement_proposals WHERE state = 'open'")
        group = "/groups/sunday-sharing-circle"
        pages = {  # each page, and what it shows of the members' work
            group: ("The group's agreements changed since you accepted them",
                    "Sleep, and what helps", "would like to swap", "All resources"),
            f"/events/{event_id}?on={themed}": ("Sleep, and what helps", "Priya (demo member)"),
            f"/events/{event_id}?on={proposed}": ("The first year after a loss",
                                                  "would like to swap this turn"),
            f"/events/{event_id}?on={pulsed}": ("A summary of 5 answers", "finally heard"),
            f"{group}/agreements": ("Proposed by Jonas (demo member)",),
            f"{group}/agreements/proposals/{proposal}": ("Phones on silent", "1 objection"),
            f"{group}/resources": ("not a crisis service", "Why We Sleep"),
            f"{group}/practice": ("Rotating",),
        }
        axe = Axe()
        found: list[str] = []
        with chromium() as browser:
            for viewport in VIEWPORTS.values():
                page = browser.new_page(viewport=viewport)
                page.goto(url + link if viewport is VIEWPORTS["phone"] else url)
                if viewport is VIEWPORTS["phone"]:
                    page.get_by_role("button", name="Log in").click()
                    cookies = page.context.cookies()
                else:
                    page.context.add_cookies(cookies)
                for path, shown in pages.items():
                    page.goto(url + path)
                    text = page.inner_text("main").casefold()  # as styled: some in capitals
                    found += [f"{path}: {s!r} not shown" for s in shown
                              if s.casefold() not in text]
                    for violation in axe.run(page).response["violations"]:
                        found.append(f"{path}: {violation['id']}"
                                     f" {[n['target'] for n in violation['nodes']][:3]}")
                    if viewport is VIEWPORTS["desktop"] and path.endswith(proposed):
                        page.screenshot(path=str(ARTIFACTS / "desktop-members.png"),
                                        full_page=True,
                                        clip={"x": 0, "y": 0, "width": 1280, "height": 1600})
                page.close()
    assert not found, "\n".join(found)

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
from tests.helpers import serving
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

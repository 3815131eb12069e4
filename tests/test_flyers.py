"""Flyers, embeds, the meetings feed and page metadata, through the real app.

The QR codes are read back the way a phone would: the served SVG rasterised by
Chromium, the PDF rendered by PDFium, both decoded by zxing-cpp.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from node.domain import EventDraft, Format, OccurrenceChange, Visibility
from node.flyer import Flyer, FlyerMeeting, Paper
from node.flyer_pdf import flyer_pdf
from node.storage import events, groups, remote
from tests.helpers import draft, publish_listing, set_visibility

CHROMIUM = "/usr/bin/chromium"
BASE = "http://testserver"
ZONE = "America/New_York"  # not the machine's zone, and not UTC
SECRET_LINK = "https://meet.example.org/room-secret-42"
NAME = "Harbour Grief Circle"
SLUG = "harbour-grief-circle"
# Ten days ahead, 18:30 in New York: a weekly series.
FIRST = datetime.combine(date.today() + timedelta(days=10), datetime.min.time()).replace(
    hour=18, minute=30)


def listing(**overrides: object):
    values: dict[str, object] = dict(
        name=NAME, summary="A peer group for anyone grieving a loss.",
        audiences=("adults", "carers"), format=Format.HYBRID, area="Red Hook",
        address="1 Pier Road", contact="hello@harbour.example",
        accessibility=("step_free", "hearing_loop"), cost="sliding_scale",
        languages=("en", "es"))
    values.update(overrides)
    return draft(**values)


def series(**overrides: object) -> EventDraft:
    values: dict[str, object] = dict(
        title="Evening circle", description="", starts_at=FIRST, duration_minutes=90,
        timezone=ZONE, rrule="FREQ=WEEKLY", format=Format.HYBRID, place="Boathouse",
        address="1 Pier Road", online_url=SECRET_LINK, capacity=None)
    values.update(overrides)
    return EventDraft(**values)


@pytest.fixture
def published(run_db) -> tuple[int, int]:
    """A public group with a weekly series whose second meeting is cancelled."""
    async def setup(db):
        group_id, (event_id,) = await publish_listing(db, listing(), series())
        await events.change_occurrence(
            db, event_id, OccurrenceChange(FIRST + timedelta(weeks=1), cancelled=True))
        return group_id, event_id
    return run_db(setup)


def offset(moment: datetime) -> str:
    """The ISO offset New York has at this local time: '-05:00' or '-04:00'."""
    return moment.replace(tzinfo=ZoneInfo(ZONE)).isoformat()[-6:]


def plain(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}, {moment:%H:%M}"


def decode(image: Image.Image) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(image)]


# The flyer page ---------------------------------------------------------------

def test_flyer_page_has_every_piece(client, published):
    r = client.get(f"/groups/{SLUG}/flyer")
    assert r.status_code == 200
    page = r.text
    for expected in (NAME, "A peer group for anyone grieving a loss.", "adults, carers",
                     plain(FIRST), f"Next meetings ({ZONE} time)", "Boathouse", "1 Pier Road", "Red Hook",
                     "Step-free access", "Hearing loop", "Sliding scale",
                     "hello@harbour.example", f"{BASE}/groups/{SLUG}",
                     '<svg aria-hidden="true" focusable="false" viewBox=', "(cancelled)",
                     "/static/flyer.css", f'href="/groups/{SLUG}/flyer.pdf?paper=a4"'):
        assert expected in page, expected
    # The cancelled meeting is the second one, and it says so.
    second = page.index(plain(FIRST + timedelta(weeks=1)))
    assert page.index("(cancelled)", second) < page.index(plain(FIRST + timedelta(weeks=2)))
    assert page.count(f"<span>testserver/groups/{SLUG}</span>") == 8  # the tear-off slips
    assert SECRET_LINK not in page
    letter = client.get(f"/groups/{SLUG}/flyer?paper=letter").text
    assert "/static/flyer-letter.css" in letter and "/static/flyer-letter.css" not in page


def test_meeting_flyer_names_its_group_and_links_the_meeting(client, published):
    _, event_id = published
    page = client.get(f"/events/{event_id}/flyer").text
    for expected in ("Evening circle", f"A meeting of {NAME}", plain(FIRST), ZONE,
                     f"{BASE}/events/{event_id}", "Boathouse", "Sliding scale"):
        assert expected in page, expected
    assert SECRET_LINK not in page


def test_links_to_flyers_and_embedding(client, published):
    _, event_id = published
    group_page = client.get(f"/groups/{SLUG}").text
    assert f'href="/groups/{SLUG}/flyer"' in group_page
    assert f'href="/groups/{SLUG}/embed"' in group_page
    assert f'href="/events/{event_id}/flyer"' in client.get(f"/events/{event_id}").text
    help_page = client.get(f"/groups/{SLUG}/embed")
    assert help_page.status_code == 200
    assert f"{BASE}/groups/{SLUG}/embed.html" in help_page.text
    assert f"{BASE}/groups/{SLUG}/meetings.json" in help_page.text


def test_a_peers_group_has_a_flyer_pointing_here(client, run_db):
    async def setup(db):
        peer = "https://peer.example/groups/harbour-lights"
        group_id = await remote.upsert_remote_group(
            db, origin="peer.example", ap_id=peer, url=peer, username="harbour-lights",
            draft=draft(name="Harbour Lights", summary="Loneliness peer group"))
        await remote.upsert_remote_event(
            db, group_id=group_id, ap_id=peer + "/events/1", url=peer + "/events/1",
            changes=[], cancelled=False, draft=series(title="Lights evening",
                                                      online_url=""))
        return (await groups.get_group_by_id(db, group_id)).slug
    slug = run_db(setup)
    page = client.get(f"/groups/{slug}/flyer")
    assert page.status_code == 200
    assert f"{BASE}/groups/{slug}" in page.text and "Harbour Lights" in page.text
    feed = client.get(f"/groups/{slug}/meetings.json").json()
    assert feed["meetings"][0]["title"] == "Lights evening"
    assert feed["meetings"][0]["url"].startswith(f"{BASE}/events/")


# The PDF ------------------------------------------------------------------------

def media_box(pdf: bytes) -> tuple[float, float]:
    found = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert found, "no MediaBox"
    return float(found.group(1)), float(found.group(2))


def pdf_text_and_codes(pdf: bytes) -> tuple[str, list[str]]:
    document = pypdfium2.PdfDocument(pdf)
    page = document[0]
    text = page.get_textpage().get_text_range()
    return text, decode(page.render(scale=2).to_pil())


@pytest.mark.parametrize(("paper", "size"), [("", (595.28, 841.89)),
                                             ("?paper=letter", (612.0, 792.0))])
def test_pdf_flyer_is_a4_or_letter_and_its_qr_reads(client, published, paper, size):
    r = client.get(f"/groups/{SLUG}/flyer.pdf{paper}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert media_box(r.content) == size
    text, codes = pdf_text_and_codes(r.content)
    assert NAME in text and plain(FIRST) in text and "Hearing loop" in text
    assert codes == [f"{BASE}/groups/{SLUG}"]  # drawn as vector rectangles
    assert SECRET_LINK.encode() not in r.content


def test_meeting_pdf_flyer(client, published):
    _, event_id = published
    r = client.get(f"/events/{event_id}/flyer.pdf?paper=letter")
    assert r.status_code == 200 and media_box(r.content) == (612.0, 792.0)
    text, codes = pdf_text_and_codes(r.content)
    assert "Evening circle" in text and NAME in text
    assert codes == [f"{BASE}/events/{event_id}"]


def test_pdf_flyer_speaks_the_visitors_language(client, published):
    r = client.get(f"/groups/{SLUG}/flyer.pdf", headers={"Accept-Language": "de"})
    text, _ = pdf_text_and_codes(r.content)
    for label in ("Nächste Treffen", "Barrierefreiheit", "Kosten", "wie du mitmachen kannst"):
        assert label in text, label
    assert "Next meetings" not in text and "Accessibility" not in text


def test_pdf_without_a_unicode_font_spells_latin_text(tmp_path):
    flyer = Flyer("Café Zürich – Ελλάδα", "Café Zürich – Ελλάδα", "Für alle “Trauernden”",
                  (), ("de",), "In person", ("Hauptstraße 1",),
                  (FlyerMeeting("Tuesday 3 March 2026, 19:00–20:30", "Europe/Berlin", "Abend",
                                "Hauptstraße 1", False),),
                  ("Step-free access",), "Free", "", "https://n.example/groups/cafe", None)
    pdf = flyer_pdf(flyer, Paper.A4, find_fonts=False)
    assert media_box(pdf) == (595.28, 841.89)
    text, codes = pdf_text_and_codes(pdf)
    assert "Café Zürich - " in text and "Hauptstraße 1" in text
    assert codes == ["https://n.example/groups/cafe"]


# Who may see them ------------------------------------------------------------------

def test_a_private_group_has_no_flyer_embed_or_feed(client, visitor, published, run_db,
                                                     admin):
    group_id, event_id = published
    run_db(lambda db: set_visibility(db, group_id, Visibility.PRIVATE))
    paths = [f"/groups/{SLUG}/flyer", f"/groups/{SLUG}/flyer.pdf", f"/groups/{SLUG}/embed",
             f"/groups/{SLUG}/embed.html", f"/groups/{SLUG}/meetings.json",
             f"/events/{event_id}/flyer", f"/events/{event_id}/flyer.pdf"]
    for path in paths:
        # Nobody gets one: not a visitor, and not an admin who can see the group.
        assert visitor().get(path).status_code == 404, path
        assert admin.get(path).status_code == 404, path
    assert client.get("/meetings.json").json()["meetings"] == []
    assert "Evening circle" not in client.get("/embed/meetings.html").text
    assert "/flyer" not in admin.get(f"/groups/{SLUG}").text


def test_a_suspended_or_missing_group_has_no_flyer(client, published, run_db):
    group_id, _ = published
    assert client.get("/groups/nobody/flyer").status_code == 404
    assert client.get("/events/999/flyer.pdf").status_code == 404
    async def suspend(db):
        async with db.transaction() as conn:
            await conn.execute("UPDATE groups SET suspended = 1 WHERE id = ?", (group_id,))
    run_db(suspend)
    assert client.get(f"/groups/{SLUG}/flyer").status_code == 404
    assert client.get(f"/groups/{SLUG}/meetings.json").status_code == 404


# The JSON feed and the embed -----------------------------------------------------------

def test_meetings_json_fields_and_cors(client, published):
    _, event_id = published
    r = client.get(f"/groups/{SLUG}/meetings.json")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["content-type"].startswith("application/json")
    feed = r.json()
    assert feed["name"] == NAME and feed["url"] == f"{BASE}/groups/{SLUG}"
    first, second = feed["meetings"][:2]
    assert first == {
        "title": "Evening circle",
        "start": f"{FIRST:%Y-%m-%dT%H:%M:%S}{offset(FIRST)}",
        "end": f"{FIRST + timedelta(minutes=90):%Y-%m-%dT%H:%M:%S}{offset(FIRST)}",
        "timezone": ZONE, "format": "hybrid", "place": "Boathouse", "address": "1 Pier Road",
        "cancelled": False, "group": NAME, "group_url": f"{BASE}/groups/{SLUG}",
        "url": f"{BASE}/events/{event_id}?on={FIRST:%Y-%m-%dT%H:%M}",
    }
    assert second["cancelled"] is True
    assert SECRET_LINK not in r.text and "Host" not in r.text  # no link, no member
    node_feed = client.get("/meetings.json?limit=3")
    assert node_feed.headers["access-control-allow-origin"] == "*"
    assert [m["title"] for m in node_feed.json()["meetings"]] == ["Evening circle"] * 3
    # Only these read-only public answers are open to other sites.
    for path in ("/groups", f"/groups/{SLUG}", f"/groups/{SLUG}/flyer", f"/events/{event_id}",
                 "/feed.atom", f"/groups/{SLUG}/flyer.pdf"):
        assert "access-control-allow-origin" not in client.get(path).headers, path


def test_embed_fragment_is_plain_escaped_html_linking_back(client, run_db):
    name = 'Tea & <b>Talk</b> "Group"'
    run_db(lambda db: publish_listing(db, listing(name=name), series()))
    slug = groups.slugify(name)
    for path in (f"/groups/{slug}/embed.html", "/embed/meetings.html"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        html = r.text
        assert "set-cookie" not in r.headers
        assert not html.lstrip().startswith("<!doctype")
        assert "<script" not in html and "style=" not in html and "<iframe" not in html
        assert "<b>Talk</b>" not in html and "Tea &amp; &lt;b&gt;Talk&lt;/b&gt;" in html
        assert f'href="{BASE}/events/' in html and plain(FIRST) in html
        assert SECRET_LINK not in html
    assert f'href="{BASE}/groups/{slug}"' in client.get(f"/groups/{slug}/embed.html").text


# OpenGraph and JSON-LD --------------------------------------------------------------

LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.DOTALL)


def test_group_and_meeting_pages_carry_opengraph_and_event_json_ld(client, published):
    _, event_id = published
    group_page = client.get(f"/groups/{SLUG}").text
    assert f'<meta property="og:url" content="{BASE}/groups/{SLUG}">' in group_page
    assert f'<meta property="og:title" content="{NAME}">' in group_page
    (block,) = LD.findall(group_page)
    meetings = json.loads(block)
    assert all(m["@type"] == "Event" for m in meetings)
    assert meetings[0]["startDate"] == f"{FIRST:%Y-%m-%dT%H:%M:%S}{offset(FIRST)}"
    assert meetings[1]["eventStatus"] == "https://schema.org/EventCancelled"

    event_page = client.get(f"/events/{event_id}").text
    assert f'<meta property="og:url" content="{BASE}/events/{event_id}">' in event_page
    (block,) = LD.findall(event_page)
    event = json.loads(block)
    assert event["@context"] == "https://schema.org" and event["@type"] == "Event"
    assert event["startDate"] == f"{FIRST:%Y-%m-%dT%H:%M:%S}{offset(FIRST)}"
    assert event["eventAttendanceMode"] == "https://schema.org/MixedEventAttendanceMode"
    assert event["organizer"]["name"] == NAME
    assert SECRET_LINK not in block


def test_a_script_end_tag_in_a_name_stays_inside_the_json_ld(client, run_db):
    name = '</script><script>alert(1)</script><!--'
    run_db(lambda db: publish_listing(db, listing(name=name), series(title=name)))
    slug = groups.slugify(name)
    for path in (f"/groups/{slug}", "/events/1"):
        page = client.get(path).text
        assert page.lower().count("<script") == 1 and page.lower().count("</script") == 1
        assert "<script>alert" not in page.lower()
        (block,) = LD.findall(page)
        assert "<" not in block and ">" not in block
        data = json.loads(block)
        first = data[0] if isinstance(data, list) else data
        assert first["name"] == name


def test_a_private_or_unlisted_group_has_no_json_ld(client, published, run_db):
    group_id, _ = published
    run_db(lambda db: set_visibility(db, group_id, Visibility.UNLISTED))
    page = client.get(f"/groups/{SLUG}").text
    assert "og:title" in page and "application/ld+json" not in page  # previews, not search


# In a browser: the served SVG, and the page as it prints ---------------------------------

@contextmanager
def browser_page(client) -> Iterator[Page]:
    """Chromium (Debian's) whose requests to the test server are answered by the app."""
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install chromium"

    def answer(route) -> None:
        r = client.get(route.request.url)
        route.fulfill(status=r.status_code, body=r.content,
                      headers={k: v for k, v in r.headers.items()
                               if k.lower() not in ("content-length", "content-encoding")})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.route(f"{BASE}/**", answer)
            yield page
        finally:
            browser.close()


def test_served_svg_qr_decodes_to_the_exact_page_urls(client, published):
    _, event_id = published
    with browser_page(client) as page:
        for path, url in ((f"/groups/{SLUG}/flyer", f"{BASE}/groups/{SLUG}"),
                          (f"/events/{event_id}/flyer", f"{BASE}/events/{event_id}")):
            page.goto(BASE + path)
            shot = page.locator("svg.qr").screenshot()
            assert decode(Image.open(io.BytesIO(shot))) == [url]


def test_printed_flyer_shows_the_qr_and_hides_the_site_header(client, published):
    with browser_page(client) as page:
        page.goto(f"{BASE}/groups/{SLUG}/flyer")
        assert page.locator("header.site").is_visible()
        page.emulate_media(media="print")
        assert page.locator("header.site").is_hidden()
        assert page.locator("nav").is_hidden()
        assert page.locator(".flyer-tools").is_hidden()
        assert page.locator("footer.site").is_hidden()
        assert page.locator("svg.qr").is_visible()
        assert page.locator(".tear-off").is_visible()
        shot = page.locator("svg.qr").screenshot()
        assert decode(Image.open(io.BytesIO(shot))) == [f"{BASE}/groups/{SLUG}"]
        # The print stylesheet's page size: A4, or Letter when asked for.
        assert media_box(page.pdf(prefer_css_page_size=True)) == pytest.approx(
            (595.92, 842.88), abs=1.5)
        page.goto(f"{BASE}/groups/{SLUG}/flyer?paper=letter")
        letter = page.pdf(prefer_css_page_size=True)
        assert media_box(letter) == (612.0, 792.0)
        assert len(pypdfium2.PdfDocument(letter)) == 1  # the flyer fits on one sheet

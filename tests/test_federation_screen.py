"""The admin's federation screen, /admin/peers, on a real node process delivering to a
real peer inbox on its own loopback address: down (nothing listening), then up.

The peer is approved to follow the node in the node's database; the node's public
group and meeting then go to its inbox. The inbox checks every delivery's signature
against the key its actor publishes, as a peer does.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation import store
from federation.signatures import SignatureError, check, verify_request
from node.cli import main
from node.db import Database, parse_stamp, timestamp
from node.domain import EventDraft, Format
from node.storage import accounts
from tests.helpers import draft, free_port, loopback_server, publish_listing, wait_for
from tests.test_accessibility import VIEWPORTS
from tests.test_browser import chromium
from tests.test_federation import Node, node
from tests.test_moderation import Session

AP = {"Accept": "application/activity+json"}
KEY_ID = re.compile(r'keyId="([^"]+)"')


class PeerInbox:
    """A peer's shared inbox at http://ADDRESS:PORT/inbox, down until ``up()``.

    Each POST is kept with whether its signature holds; it is answered ``status``.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.port = free_port(address)
        self.host = f"{address}:{self.port}"
        self.inbox = f"http://{self.host}/inbox"
        self.status = 202
        self.received: list[tuple[bytes, str | None]] = []  # (body, signature problem)
        self.app = Starlette(routes=[Route("/inbox", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        key_id = KEY_ID.search(request.headers.get("signature", ""))
        problem = "no keyId"
        if key_id:
            async with httpx.AsyncClient() as client:
                actor = (await client.get(key_id.group(1), headers=AP)).json()
            try:
                check(verify_request("POST", request.url.path, None, request.headers, body,
                                     actor["publicKey"]["publicKeyPem"]))
                problem = None
            except SignatureError as error:
                problem = str(error)
        self.received.append((body, problem))
        return Response(status_code=self.status)

    @contextmanager
    def up(self) -> Iterator[None]:
        with loopback_server(self.app, self.port, host=self.address):
            yield


@pytest.fixture
def a(tmp_path: Path) -> Iterator[Node]:
    with node(tmp_path, "a", "127.0.0.1") as running:
        yield running


def approve_follower(a: Node, peer: PeerInbox) -> None:
    """As if the peer had asked to follow and the admin had approved it."""
    async def work(db: Database) -> None:
        await store.save_peer(db, peer.host, f"http://{peer.host}/actor", peer.inbox, None)
        await store.set_follower(db, peer.host, "approved")
    a.run(work)


def publish(a: Node, name: str) -> None:
    """A public group with one meeting: its activities go to every approved peer."""
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0,
                                                            tzinfo=None)
    a.run(lambda db: publish_listing(db, draft(name=name), EventDraft(
        title=f"{name} meeting", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule=None, format=Format.IN_PERSON)))


def queue_of(a: Node, peer: PeerInbox) -> dict[str, list[tuple]]:
    """The node's deliveries to the peer not sent, by state: (id, attempts, first failure,
    next attempt)."""
    rows = a.query("SELECT state, id, attempts, first_failed_at, next_attempt_at FROM deliveries"
                   " WHERE inbox = ? AND state != 'sent' ORDER BY id", (peer.inbox,))
    found: dict[str, list[tuple]] = {"queued": [], "failed": []}
    for state, *rest in rows:
        found[state].append(tuple(rest))
    return found


def settled_while_down(a: Node, peer: PeerInbox) -> list[tuple]:
    """Wait until everything published is queued for the peer, tried, and held."""
    def held() -> list[tuple] | None:
        if a.query("SELECT count(*) FROM listing_changes") != [(0,)]:
            return None
        queued = queue_of(a, peer)["queued"]
        tried = queued and queued[0][1] > 0
        return queued if tried and all(row[3] > timestamp() for row in queued) else None
    return wait_for(held, "the node to fail delivering to the peer and hold the rest")


def figures(page: str, host: str) -> dict[str, str]:
    """A host's figures on /admin/peers: term -> text (times as their datetime stamp)."""
    cards = page.split('<li class="card">')[1:]
    [card] = [c for c in cards if f'<h3><a href="/admin/peers/{quote(host)}">{host}</a>' in c]
    return {term: re.sub(r'<time datetime="([^"]+)">[^<]*</time>', r"\1", value).strip()
            for term, value in re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", card, re.DOTALL)}


def cli_row(a: Node, host: str, capsys) -> dict[str, str]:
    assert main(["peers", "list", "--data", str(a.data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", lines[0])
    [row] = [line.split() for line in lines[1:] if line.startswith(host + " ")]
    return dict(zip(header, row, strict=True))


def admin_session(a: Node) -> Session:
    return Session(a.url).login(a, a.run(accounts.first_admin).id)


def test_a_peer_that_is_down_shows_its_waiting_deliveries_and_retry_now_delivers_them(
        a, capsys):
    peer = PeerInbox("127.0.0.5")
    approve_follower(a, peer)
    publish(a, "Harbour Circle")
    waiting = settled_while_down(a, peer)
    failing_since = min(row[2] for row in waiting if row[2])
    next_retry = min(row[3] for row in waiting)
    assert peer.received == []

    admin = admin_session(a)
    shown = figures(admin.http.get("/admin/peers").text, peer.host)
    assert shown["Follows us"] == "Yes" and shown["We follow"] == "No"
    assert shown["Deliveries waiting"] == str(len(waiting))
    assert shown["Failing since"] == failing_since
    assert shown["Next try"] == next_retry
    assert shown["Deliveries failed"] == "0" and shown["Last delivery"] == "never"
    # The same figures on the command line.
    row = cli_row(a, peer.host, capsys)
    assert (row["FOLLOWS US"], row["WAITING"], row["FAILING SINCE"], row["NEXT RETRY"],
            row["FAILED"], row["LAST DELIVERY"]) == (
        "approved", str(len(waiting)), failing_since, next_retry, "0", "-")
    # Its page lists each waiting delivery.
    page = admin.http.get(f"/admin/peers/{peer.host}").text
    assert all(f'name="delivery" value="{row[0]}"' in page for row in waiting)
    assert page.count("<td>Waiting</td>") == len(waiting)

    with peer.up():
        r = admin.post(f"/admin/peers/{peer.host}", {"action": "retry"},
                       page=f"/admin/peers/{peer.host}")
        assert r.status_code == 303 and r.headers["location"] == f"/admin/peers/{quote(peer.host)}"
        done = admin.http.get(r.headers["location"]).text
        assert f"{len(waiting)} deliveries to {peer.host} are due now." in done
        wait_for(lambda: len(peer.received) == len(waiting), "every waiting delivery at the peer")
        # Sent now, not at the next try the node had planned.
        assert datetime.now(UTC) < parse_stamp(next_retry)
    assert [problem for _, problem in peer.received] == [None] * len(waiting)
    assert any(b"Harbour Circle" in body for body, _ in peer.received)
    wait_for(lambda: queue_of(a, peer) == {"queued": [], "failed": []}, "the queue empty")
    sent = a.query("SELECT count(*), count(DISTINCT activity_id) FROM deliveries"
                   " WHERE inbox = ? AND state = 'sent'", (peer.inbox,))
    assert sent == [(len(waiting), len(waiting))]
    assert a.query("SELECT actor_name, action, target FROM audit_log"
                   " WHERE action LIKE 'delivery.%'") == [
        ("Admin", "delivery.retry", f"{len(waiting)} deliveries to {peer.host}")]

    shown = figures(admin.http.get("/admin/peers").text, peer.host)
    assert shown["Deliveries waiting"] == "0" and "Failing since" not in shown
    assert shown["Last delivery"].startswith("20")
    row = cli_row(a, peer.host, capsys)
    assert (row["WAITING"], row["FAILING SINCE"], row["LAST DELIVERY"]) == (
        "0", "-", shown["Last delivery"])


def test_failed_deliveries_are_dropped_or_retried_by_admins_only_each_audited(a):
    peer = PeerInbox("127.0.0.6")
    peer.status = 403  # refused: each delivery fails for good at once
    approve_follower(a, peer)
    with peer.up():
        publish(a, "Refused Circle")

        def all_refused() -> list[tuple] | None:
            queue = queue_of(a, peer)
            published = a.query("SELECT count(*) FROM listing_changes") == [(0,)]
            return queue["failed"] if published and not queue["queued"] else None

        failed = wait_for(all_refused, "the peer to refuse every delivery")
        assert len(failed) >= 2
        admin = admin_session(a)
        shown = figures(admin.http.get("/admin/peers").text, peer.host)
        assert (shown["Deliveries failed"], shown["Deliveries waiting"]) == (str(len(failed)), "0")
        page = admin.http.get(f"/admin/peers/{peer.host}").text
        assert page.count("<td>Failed</td>") == len(failed) and "refused: HTTP 403" in page

        # A member may not act on deliveries: 403, and nothing changes.
        member_id = a.run(lambda db: accounts.create_account(
            db, email="mo@example.org", display_name="Mo", password_hash=None))
        member = Session(a.url).login(a, member_id)
        dropped, retried = failed[0][0], failed[1][0]
        for form in ({"action": "drop", "delivery": str(dropped), "confirmed": "yes"},
                     {"action": "retry"}):
            r = member.post(f"/admin/peers/{peer.host}", form, page="/groups")
            assert r.status_code == 403
        assert member.http.get(f"/admin/peers/{peer.host}").status_code == 403
        assert queue_of(a, peer)["failed"] == failed
        assert a.query("SELECT count(*) FROM audit_log WHERE action LIKE 'delivery.%'") == [(0,)]

        # Dropping asks first, then the delivery is gone and the audit log says so.
        form = {"action": "drop", "delivery": str(dropped)}
        r = admin.post(f"/admin/peers/{peer.host}", form, page=f"/admin/peers/{peer.host}")
        assert r.status_code == 200 and "Are you sure?" in r.text
        assert f"Drop delivery {dropped} to {peer.host}? It will never be sent." in r.text
        assert len(queue_of(a, peer)["failed"]) == len(failed)
        r = admin.post(f"/admin/peers/{peer.host}", form | {"confirmed": "yes"},
                       page=f"/admin/peers/{peer.host}")
        assert r.status_code == 303
        assert f"1 delivery to {peer.host} is dropped: it will never be sent." in \
            admin.http.get(r.headers["location"]).text
        assert a.query("SELECT count(*) FROM deliveries WHERE id = ?", (dropped,)) == [(0,)]
        assert a.query("SELECT action, target FROM audit_log WHERE action LIKE 'delivery.%'") \
            == [("delivery.drop", f"delivery {dropped} to {peer.host}")]

        # A failed delivery retried once the peer takes it again: queued anew, then sent.
        peer.status = 202
        before = len(peer.received)
        r = admin.post(f"/admin/peers/{peer.host}", {"action": "retry", "delivery": str(retried)},
                       page=f"/admin/peers/{peer.host}")
        assert "1 delivery to" in admin.http.get(r.headers["location"]).text
        wait_for(lambda: a.query("SELECT state FROM deliveries WHERE id = ?", (retried,))
                 == [("sent",)], "the retried delivery sent")
        assert len(peer.received) == before + 1 and peer.received[-1][1] is None
        assert len(queue_of(a, peer)["failed"]) == len(failed) - 2
        assert a.query("SELECT action, target FROM audit_log WHERE action LIKE 'delivery.%'"
                       " ORDER BY id") == [
            ("delivery.drop", f"delivery {dropped} to {peer.host}"),
            ("delivery.retry", f"delivery {retried} to {peer.host}")]


def test_a_blocked_peers_deliveries_are_not_retried(a):
    peer = PeerInbox("127.0.0.7")
    approve_follower(a, peer)
    publish(a, "Blocked Circle")
    settled_while_down(a, peer)
    admin = admin_session(a)
    r = admin.post("/admin/peers", {"action": "block", "target": peer.host},
                   page="/admin/peers")
    assert r.status_code == 200
    failed = queue_of(a, peer)["failed"]
    assert failed and not queue_of(a, peer)["queued"]  # a block fails what was waiting
    r = admin.post(f"/admin/peers/{peer.host}", {"action": "retry"},
                   page=f"/admin/peers/{peer.host}")
    assert "is blocked: unblock it before retrying" in admin.http.get(r.headers["location"]).text
    assert queue_of(a, peer)["failed"] == failed


def test_the_federation_screens_fit_a_phone_and_pass_axe_with_a_peer_down(a):
    peer = PeerInbox("127.0.0.8")
    approve_follower(a, peer)
    publish(a, "Phone Circle")
    settled_while_down(a, peer)
    admin = a.run(accounts.first_admin)
    link = a.run(lambda db: accounts.create_login_link(db, admin.id))
    axe = Axe()
    found: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORTS["phone"])
        page.goto(f"{a.url}/login/link/{link}")
        page.get_by_role("button", name="Log in").click()
        for path in ("/admin/peers", f"/admin/peers/{quote(peer.host)}"):
            page.goto(a.url + path)
            assert page.url == a.url + path, page.url
            assert peer.host in page.content()
            for violation in axe.run(page).response["violations"]:
                found.append(f"{path}: {violation['id']} "
                             f"{[n['target'] for n in violation['nodes']][:3]}")
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if wide > 0:
                found.append(f"{path}: the page is {wide}px wider than the phone")
    assert not found, "\n".join(found)

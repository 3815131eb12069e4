"""New public groups wait for an admin's yes: held groups are seen by their members only,
listed nowhere and sent to no peer; approval lists and federates them, refusal tells
their facilitators why; admins and trusted accounts skip the gate."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from node.app import create_app
from node.cli import initialise
from node.config import load_config
from node.db import Database, timestamp
from node.domain import (
    AccountStatus,
    GroupDraft,
    MembershipStatus,
    Review,
    Role,
    Visibility,
)
from node.storage import accounts, groups, review
from tests.conftest import Browser
from tests.helpers import (
    FIRST_MEETING,
    draft,
    free_port,
    group_form,
    loopback_server,
    meeting_form,
    run_on,
    wait_for,
)

BASE = "http://testserver"
AP = {"Accept": "application/activity+json"}
SETTINGS = {"name": "Leith Peer Support", "description": "", "registration": "open",
            "default_language": "en", "crisis_notice": ""}
NAME, SLUG = "Harbour Lights Circle", "harbour-lights-circle"
MEETING = "Harbour evening circle"
SECRET_LINK = "https://meet.example.org/harbour-secret-9931"
WAITING = "This group waits for an admin of this node to approve it."
REFUSED = "An admin of this node did not approve this group"


def set_review(admin: Browser, on: bool) -> None:
    """The admin's settings form: open registration, the review on or off."""
    form = {**SETTINGS, **({"review_public_groups": "yes"} if on else {})}
    r = admin.post("/admin/settings", form, page="/admin/settings")
    assert r.status_code == 200 and "The settings are saved." in r.text, r.text


def create_group(b: Browser, **overrides: object) -> str:
    r = b.post("/groups/new", group_form(**{"name": NAME, **overrides}), page="/groups/new")
    assert r.status_code == 303, r.text
    return r.headers["location"].removeprefix("/groups/")


def schedule(b: Browser, slug: str) -> int:
    r = b.post(f"/groups/{slug}/events/new",
               meeting_form(title=MEETING, format="hybrid", online_url=SECRET_LINK),
               page=f"/groups/{slug}/events/new")
    assert r.status_code == 303, r.text
    return int(r.headers["location"].removeprefix("/events/"))


def edit_group(b: Browser, slug: str, **overrides: object) -> httpx.Response:
    r = b.post(f"/groups/{slug}/edit", group_form(**{"name": NAME, **overrides}),
               page=f"/groups/{slug}/edit")
    assert r.status_code == 303, r.text
    return r


def decide(admin: Browser, group_id: int, action: str, reason: str = "") -> httpx.Response:
    return admin.post(f"/admin/groups/{group_id}", {"action": action, "reason": reason},
                      page="/admin/groups")


def listing_pages() -> list[str]:
    month = FIRST_MEETING.strftime("%Y-%m")
    return ["/groups", "/", f"/events?month={month}", "/feed.atom", "/events.ics",
            "/meetings.json", "/embed/meetings.html", "/groups?q=harbour"]


def listed_anywhere(b: Browser) -> list[str]:
    """The public listing pages that name the group or its meeting."""
    return [page for page in listing_pages()
            if NAME in (text := b.get(page).text) or MEETING in text or SLUG in text]


def member_only_pages(event_id: int) -> list[str]:
    return [f"/groups/{SLUG}", f"/groups/{SLUG}/events.ics", f"/groups/{SLUG}/flyer",
            f"/groups/{SLUG}/embed", f"/groups/{SLUG}/embed.html",
            f"/groups/{SLUG}/meetings.json", f"/events/{event_id}", f"/events/{event_id}.ics",
            f"/events/{event_id}/flyer"]


def review_of(run_db, slug: str = SLUG) -> str | None:
    return run_db(lambda db: db.fetchval("SELECT review FROM groups WHERE slug = ?", (slug,)))


def group_id_of(run_db, slug: str = SLUG) -> int:
    return run_db(lambda db: db.fetchval("SELECT id FROM groups WHERE slug = ?", (slug,)))


def audit_actions(run_db) -> list[tuple[str, str]]:
    rows = run_db(lambda db: db.fetchall("SELECT action, target FROM audit_log ORDER BY id"))
    return [(r[0], r[1]) for r in rows]


@pytest.fixture
def fay(admin, visitor) -> Browser:
    """A member of a node whose admin turned the review on and opened registration."""
    set_review(admin, True)
    b = visitor()
    b.register("Fay Quietly", "fay@example.org")
    return b


# Held: seen by its members only, listed nowhere ------------------------------------------


def test_a_members_new_public_group_waits_seen_by_its_members_only(fay, admin, visitor,
                                                                   run_db):
    r = fay.post("/groups/new", group_form(name=NAME), page="/groups/new", follow=True)
    assert "An admin of this node approves new public groups" in r.text
    assert review_of(run_db) == "pending"
    event_id = schedule(fay, SLUG)
    friend = visitor()
    friend.register("Robin Member", "robin@example.org")
    assert friend.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}).status_code == 404

    page = fay.get(f"/groups/{SLUG}")
    assert page.status_code == 200 and WAITING in page.text
    assert "Print a flyer" not in page.text  # a flyer would lead the public to a 404
    assert fay.get(f"/events/{event_id}").status_code == 200
    assert fay.get(f"/groups/{SLUG}/events.ics").headers["cache-control"] == "private"
    fay_id = run_db(lambda db: accounts_id(db, "fay@example.org"))
    assert [g.slug for g, _ in run_db(lambda db: groups.groups_of(db, fay_id))] == [SLUG]
    as_admin = admin.get(f"/groups/{SLUG}")
    assert as_admin.status_code == 200 and 'href="/admin/groups"' in as_admin.text

    for someone in (visitor(), friend):
        for path in member_only_pages(event_id):
            assert someone.get(path).status_code == 404, path
    for someone in (visitor(), friend, fay, admin):
        assert listed_anywhere(someone) == []
    nodeinfo = visitor().get("/nodeinfo/2.1").json()
    assert nodeinfo["usage"]["localPosts"] == 0

    queue = admin.get("/admin/groups")
    assert queue.status_code == 200 and NAME in queue.text and "Fay Quietly" in queue.text


async def accounts_id(db: Database, email: str) -> int:
    return (await accounts.find_account(db, email)).id


def published(run_db, subject: str) -> list[str]:
    """The types of the activities the publisher recorded for peers about ``subject``,
    once it has settled every change."""
    wait_for(lambda: run_db(lambda db: db.fetchval("SELECT count(*) FROM listing_changes"))
             == 0, "the publisher to settle the changes")
    return [r[0] for r in run_db(lambda db: db.fetchall(
        "SELECT type FROM activities WHERE subject = ? ORDER BY seq", (subject,)))]


def test_approval_lists_the_group_audits_it_and_keeps_it_listed_after_edits(fay, admin,
                                                                            run_db):
    create_group(fay)
    event_id = schedule(fay, SLUG)
    group_id = group_id_of(run_db)
    assert published(run_db, f"group:{group_id}") == []
    assert published(run_db, f"event:{event_id}") == []

    r = decide(admin, group_id, "approve")
    assert r.status_code == 303
    assert "is approved" in admin.get("/admin/groups").text
    assert review_of(run_db) == "approved"
    assert ("group.approve", f"{NAME} ({SLUG})") in audit_actions(run_db)
    assert "No group is waiting for review." in admin.get("/admin/groups").text
    anyone = Browser(fay.client)
    assert set(listed_anywhere(anyone)) >= {"/groups", "/feed.atom", "/events.ics",
                                            "/meetings.json"}
    page = anyone.get(f"/groups/{SLUG}")
    assert page.status_code == 200 and WAITING not in page.text
    # Published as a new public group would be: the group and its meeting created.
    assert published(run_db, f"group:{group_id}") == ["Create"]
    assert published(run_db, f"event:{event_id}") == ["Create"]

    # A facilitator's later edits, even through private and back, do not gate it again.
    edit_group(fay, SLUG, summary="Now on Thursdays too.")
    edit_group(fay, SLUG, visibility="private")
    edit_group(fay, SLUG, visibility="public")
    assert review_of(run_db) == "approved"
    assert "/groups" in listed_anywhere(anyone)
    # Approving twice does nothing more.
    decide(admin, group_id, "approve")
    assert [a for a, _ in audit_actions(run_db)].count("group.approve") == 1


def test_refusal_shows_the_reason_and_an_edit_or_going_public_again_resubmits(fay, admin,
                                                                             visitor, run_db):
    create_group(fay)
    group_id = group_id_of(run_db)

    empty = decide(admin, group_id, "refuse", "  ")
    assert empty.status_code == 400
    assert re.search(rf'<p class="error" id="e-reason-{group_id}">', empty.text)
    assert review_of(run_db) == "pending"

    reason = "Please say where the group meets & who runs it."
    assert decide(admin, group_id, "refuse", reason).status_code == 303
    assert review_of(run_db) == "refused"
    assert ("group.refuse", f"{NAME} ({SLUG}): {reason}") in audit_actions(run_db)
    page = fay.get(f"/groups/{SLUG}")
    assert REFUSED in page.text
    assert "Please say where the group meets &amp; who runs it." in page.text
    assert "Change the group and save it to ask again" in page.text
    assert visitor().get(f"/groups/{SLUG}").status_code == 404
    assert listed_anywhere(fay) == []
    assert "is refused. Its facilitators see your reason" in admin.get("/admin/groups").text
    assert NAME not in admin.get("/admin/groups").text

    # Saved again as public: back in the queue, the earlier reason beside it.
    r = fay.post(f"/groups/{SLUG}/edit", group_form(name=NAME, area="Leith Links"),
                 page=f"/groups/{SLUG}/edit", follow=True)
    assert "An admin of this node approves new public groups" in r.text
    assert review_of(run_db) == "pending"
    queue = admin.get("/admin/groups").text
    assert NAME in queue and "Refused before" in queue
    assert "Please say where the group meets &amp; who runs it." in queue

    # Made private it leaves the queue; public again, it enters it again.
    decide(admin, group_id, "refuse", "Still too vague.")
    edit_group(fay, SLUG, visibility="private")
    assert review_of(run_db) is None
    assert REFUSED not in fay.get(f"/groups/{SLUG}").text
    edit_group(fay, SLUG, visibility="public")
    assert review_of(run_db) == "pending"
    assert decide(admin, group_id, "approve").status_code == 303
    assert "/groups" in listed_anywhere(visitor())


def test_only_admins_review(fay, admin, visitor, run_db):
    create_group(fay)
    group_id = group_id_of(run_db)
    for action in ("approve", "refuse"):
        assert decide(fay, group_id, action, "no").status_code == 403
    assert fay.get("/admin/groups").status_code == 403
    r = visitor().get("/admin/groups", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert review_of(run_db) == "pending"
    assert not [a for a, _ in audit_actions(run_db) if a.startswith("group.")]
    assert published(run_db, f"group:{group_id}") == []
    assert decide(admin, 99999, "approve").status_code == 404
    assert decide(admin, group_id, "shrug").status_code == 400


# Who skips the gate -------------------------------------------------------------------------


def test_admins_and_trusted_accounts_are_not_gated(fay, admin, run_db, data_dir):
    admin_slug = create_group(admin, name="Admin Circle")
    assert review_of(run_db, admin_slug) == "approved"

    fay_id = run_db(lambda db: accounts_id(db, "fay@example.org"))
    r = admin.post("/admin/accounts", {"action": "trust", "account_id": str(fay_id)},
                   page="/admin/accounts")
    assert r.status_code == 200 and "Fay Quietly is trusted" in r.text
    assert ("account.trust", "Fay Quietly") in audit_actions(run_db)
    trusted = create_group(fay, name="Trusted Circle")
    assert review_of(run_db, trusted) == "approved"
    assert "Trusted Circle" in Browser(fay.client).get("/groups").text

    r = admin.post("/admin/accounts", {"action": "untrust", "account_id": str(fay_id)},
                   page="/admin/accounts")
    assert r.status_code == 200 and "Fay Quietly is no longer trusted" in r.text
    assert review_of(run_db, create_group(fay, name="Untrusted Circle")) == "pending"

    # The same from the command line, audited as such.
    for verb, expected in (("trust", 1), ("untrust", 0)):
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", "admin", verb, "fay@example.org", "--data",
             str(data_dir)], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert run_db(lambda db: db.fetchval(
            "SELECT trusted FROM accounts WHERE id = ?", (fay_id,))) == expected
        assert audit_actions(run_db)[-1] == (f"account.{verb}", "Fay Quietly")
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "admin", "trust", "nobody@example.org", "--data",
         str(data_dir)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "No account has the email" in result.stderr


def test_with_the_review_off_new_public_groups_are_listed_at_once(fay, admin, run_db):
    set_review(admin, False)
    assert 'name="review_public_groups" value="yes" aria-describedby="h-review_public_groups">' \
        in admin.get("/admin/settings").text  # shown unticked
    create_group(fay)
    assert review_of(run_db) == "approved"
    assert "/groups" in listed_anywhere(Browser(fay.client))


def test_unlisted_and_private_groups_are_not_gated(fay, visitor, run_db):
    unlisted = create_group(fay, name="Quiet Corner", visibility="unlisted")
    private = create_group(fay, name="Hidden Room", visibility="private")
    assert review_of(run_db, unlisted) is None and review_of(run_db, private) is None
    page = visitor().get(f"/groups/{unlisted}")
    assert page.status_code == 200 and WAITING not in page.text
    assert WAITING not in fay.get(f"/groups/{private}").text


def test_the_review_is_on_by_default(visitor, admin):
    assert 'name="review_public_groups" value="yes" aria-describedby="h-review_public_groups"' \
           ' checked>' in admin.get("/admin/settings").text


# Storage: the notices, in the transaction of each change --------------------------------------


def test_each_step_records_its_notices(tmp_path):
    async def go(db: Database) -> tuple[tuple[int, ...], dict[str, list]]:
        first = await accounts.create_account(db, email="a@example.org", display_name="A",
                                              password_hash=None, is_admin=True)
        second = await accounts.create_account(db, email="b@example.org", display_name="B",
                                               password_hash=None, is_admin=True)
        await accounts.set_status(db, second, AccountStatus.SUSPENDED)
        fay = await accounts.create_account(db, email="f@example.org", display_name="F",
                                            password_hash=None)
        co = await accounts.create_account(db, email="c@example.org", display_name="C",
                                           password_hash=None)
        slug = await groups.create_group(db, draft(name="Held"), fay, gated=True)
        group = await groups.get_group(db, slug)
        await groups.add_membership(db, group.id, co, MembershipStatus.ACTIVE)
        await groups.set_role(db, group.id, co, Role.FACILITATOR)
        seen: dict[str, list[tuple[int, str, dict]]] = {}

        async def notices(step: str) -> None:
            rows = await db.fetchall("SELECT account_id, kind, data FROM notices"
                                     " WHERE kind IN ('group_review', 'group_approved',"
                                     " 'group_refused') ORDER BY id")
            seen[step] = [(r[0], r[1], json.loads(r[2])) for r in rows]
            async with db.transaction() as conn:
                await conn.execute("DELETE FROM notices")

        await notices("held")
        admin = await accounts.get_account(db, first)
        assert await review.refuse_group(db, group.id, admin, "Say where you meet.")
        await notices("refused")
        listing = GroupDraft(**{f.name: getattr(group, f.name) for f in fields(GroupDraft)})
        assert await groups.update_group(db, group.id, listing, gated=True) is Review.PENDING
        await notices("resubmitted")
        assert await review.approve_group(db, group.id, admin)
        assert not await review.approve_group(db, group.id, admin)
        assert not await review.refuse_group(db, group.id, admin, "Too late.")
        await notices("approved")
        assert await groups.update_group(db, group.id, listing, gated=True) is Review.APPROVED
        made_private = replace(listing, visibility=Visibility.PRIVATE)
        assert await groups.update_group(db, group.id, made_private, gated=True) \
            is Review.APPROVED
        await notices("edited")
        seen["audit"] = [tuple(r) for r in await db.fetchall(
            "SELECT actor_id, action, target FROM audit_log ORDER BY id")]
        return (first, fay, co, group.id), seen

    (first, fay, co, group_id), seen = run_on(tmp_path / "review.db", go)
    assert seen["held"] == [(first, "group_review", {"group_id": group_id})]  # not the suspended
    assert seen["refused"] == [
        (account, "group_refused", {"group_id": group_id, "reason": "Say where you meet."})
        for account in (fay, co)]
    assert seen["resubmitted"] == [(first, "group_review", {"group_id": group_id})]
    assert seen["approved"] == [(account, "group_approved", {"group_id": group_id})
                                for account in (fay, co)]
    assert seen["edited"] == []
    assert seen["audit"] == [(first, "group.refuse", "Held (held): Say where you meet."),
                             (first, "group.approve", "Held (held)")]


def test_public_groups_of_an_older_node_stay_listed(tmp_path):
    """Groups made before the review existed: the public ones count as approved."""
    from node.db import connect_sync, migrate

    conn = connect_sync(tmp_path / "old.db")
    migrate(conn, upto=11)
    for n, visibility in enumerate(("public", "private"), start=1):
        conn.execute(
            "INSERT INTO groups (id, slug, name, visibility, join_policy, format, cost,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'open', 'online', 'free', ?, ?)",
            (n, f"g{n}", f"G{n}", visibility, timestamp(), timestamp()))
    migrate(conn)
    assert conn.execute("SELECT slug, review FROM groups ORDER BY id").fetchall() == [
        ("g1", "approved"), ("g2", None)]
    conn.close()


# Federation: nothing of a held group is sent or served; approval publishes it --------------


@dataclass
class Recorder:
    """A peer node's shared inbox on loopback, keeping every body it is sent."""

    port: int
    bodies: list[bytes] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> Starlette:
        async def inbox(request: Request) -> Response:
            self.bodies.append(await request.body())
            return Response(status_code=202)

        return Starlette(routes=[Route("/inbox", inbox, methods=["POST"])])

    def sent(self) -> list[dict]:
        return [json.loads(body) for body in list(self.bodies)]

    def created(self, object_id: str) -> dict | None:
        return next((a for a in self.sent() if a["type"] == "Create"
                     and a["object"].get("id") == object_id), None)


@pytest.fixture
def federating(tmp_path: Path) -> Iterator[tuple[TestClient, Browser, Recorder, Path]]:
    """A node (private peers allowed, as with --dev) followed by a recording peer; its admin."""
    data = tmp_path / "node"
    link = initialise(data, BASE)
    recorder = Recorder(free_port())

    async def follower(db: Database) -> None:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO peers (host, actor_id, inbox, follower, created_at, updated_at)"
                " VALUES (?, ?, ?, 'approved', ?, ?)",
                (f"127.0.0.1:{recorder.port}", f"{recorder.base}/actor",
                 f"{recorder.base}/inbox", timestamp(), timestamp()))

    run_on(data / "grassroots.db", follower)
    with loopback_server(recorder.app(), recorder.port), \
            TestClient(create_app(load_config(data), dev=True), base_url=BASE) as client:
        admin = Browser(client)
        path = link.removeprefix(BASE)
        assert admin.post(path, page=path).status_code == 303
        yield client, admin, recorder, data


def test_a_held_group_is_neither_sent_nor_served_until_approved(federating):
    client, admin, recorder, data = federating
    set_review(admin, True)
    fay = Browser(client)
    fay.register("Fay Quietly", "fay@example.org")
    create_group(fay)
    event_id = schedule(fay, SLUG)
    private = create_group(fay, name="Hidden Room", visibility="private")
    # An admin's group, created after: once its Create arrived, the held group's changes
    # (recorded earlier) were settled too, so the capture below proves something.
    control = create_group(admin, name="Control Circle")
    wait_for(lambda: recorder.created(f"{BASE}/groups/{control}"), "the control group's Create")

    def mentions_held(text: str) -> bool:
        return NAME in text or SLUG in text or MEETING in text or SECRET_LINK in text

    assert not [b for b in recorder.bodies if mentions_held(b.decode())]
    stored = run_on(data / "grassroots.db", lambda db: db.fetchall("SELECT body FROM activities"))
    assert stored and not [r[0] for r in stored if mentions_held(r[0])]

    # Served to peers: what a private group answers, and nothing of it in any collection.
    private_actor = client.get(f"/groups/{private}", headers=AP)
    for path in (f"/groups/{SLUG}", f"/groups/{SLUG}/outbox?page=1",
                 f"/groups/{SLUG}/followers", f"/events/{event_id}",
                 f"/events/{event_id}/note",
                 f"/.well-known/webfinger?resource=acct:{SLUG}@testserver"):
        r = client.get(path, headers=AP)
        assert r.status_code == private_actor.status_code == 404, path
    assert client.get(f"/groups/{SLUG}", headers=AP).text == private_actor.text
    served = [client.get(path, headers=AP).text for path in (
        "/actor", "/actor/outbox?page=1", "/actor/followers", "/nodeinfo/2.1",
        f"/groups/{control}", f"/groups/{control}/outbox?page=1")]
    assert not [text for text in served if mentions_held(text)]
    assert client.get("/nodeinfo/2.1").json()["usage"]["localPosts"] == 1

    # Approved: the group and its meeting go to the peer as a new public group would.
    group_id = group_id_of(lambda fn: run_on(data / "grassroots.db", fn))
    assert decide(admin, group_id, "approve").status_code == 303
    create = wait_for(lambda: recorder.created(f"{BASE}/groups/{SLUG}"), "the group's Create")
    assert create["object"]["type"] == "Group" and create["object"]["name"] == NAME
    meeting = wait_for(lambda: recorder.created(f"{BASE}/events/{event_id}"),
                       "the meeting's Create")
    assert meeting["object"]["name"] == MEETING
    assert not [b for b in recorder.bodies if SECRET_LINK.encode() in b or b"Fay" in b]
    actor = client.get(f"/groups/{SLUG}", headers=AP)
    assert actor.status_code == 200 and actor.json()["id"] == f"{BASE}/groups/{SLUG}"

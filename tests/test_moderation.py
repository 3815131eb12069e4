"""Moderation through the real app: reports, hiding, suspension, the audit log;
and a report forwarded between two real nodes as an anonymised Flag."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from federation.context import Federation
from federation.documents import Urls
from federation.handlers import apply
from node.domain import EventDraft, Format
from node.storage import accounts, events, groups, remote
from tests.conftest import CSRF
from tests.helpers import draft, group_form
from tests.test_federation import Node, node, wait_for

SLUG = "tuesday-grief-circle"
REPORTER = "Morwenna Reporter"
COMMENT = "The facilitator pressures people to stop their medication."
REMOTE_ID = "https://peer.example/groups/remote-circle"


@pytest.fixture
def facilitator(visitor, open_registration):
    b = visitor()
    b.register("Fay Facilitator", "fay@example.org")
    assert b.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    return b


@pytest.fixture
def member(visitor, open_registration):
    b = visitor()
    b.register(REPORTER, "morwenna@example.org")
    return b


def report(b, path: str, **fields: str):
    return b.post(f"{path}/report", fields, page=f"{path}/report")


def reports(run_db) -> list[dict]:
    rows = run_db(lambda db: db.fetchall("SELECT * FROM reports ORDER BY id"))
    return [dict(r) for r in rows]


def audit_log(run_db) -> list[tuple[str, str, str]]:
    rows = run_db(lambda db: db.fetchall(
        "SELECT actor_name, action, target FROM audit_log ORDER BY id"))
    return [tuple(r) for r in rows]


def eventually(check: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_member_report_reaches_admin_with_name_and_facilitator_without(
        facilitator, member, admin, run_db):
    r = report(member, f"/groups/{SLUG}", reason="unsafe", comment=COMMENT)
    assert r.status_code == 200 and "Thank you" in r.text
    [stored] = reports(run_db)
    assert (stored["reason"], stored["comment"], stored["state"]) == ("unsafe", COMMENT, "open")

    seen_by_admin = admin.get("/admin/reports")
    assert seen_by_admin.status_code == 200
    assert COMMENT in seen_by_admin.text and REPORTER in seen_by_admin.text

    seen_by_facilitator = facilitator.get("/admin/reports")
    assert seen_by_facilitator.status_code == 200
    assert COMMENT in seen_by_facilitator.text
    assert REPORTER not in seen_by_facilitator.text


def test_a_meeting_can_be_reported_and_its_facilitator_sees_it(facilitator, member, run_db):
    group = run_db(lambda db: groups.get_group(db, SLUG))
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    event_id = run_db(lambda db: events.create_event(db, group.id, EventDraft(
        title="Thursday circle", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule=None, format=Format.IN_PERSON)))
    assert "Report this meeting" in member.get(f"/events/{event_id}").text
    r = report(member, f"/events/{event_id}", reason="spam", comment="")
    assert r.status_code == 200
    [stored] = reports(run_db)
    assert (stored["event_id"], stored["group_id"]) == (event_id, group.id)
    assert "Thursday circle" in facilitator.get("/admin/reports").text


def test_a_bad_report_shows_errors_beside_fields_and_stores_nothing(facilitator, member, run_db):
    r = report(member, f"/groups/{SLUG}", reason="rude", comment="x" * 2001)
    assert r.status_code == 400
    assert 'id="e-reason"' in r.text and 'id="e-comment"' in r.text
    r = report(member, f"/groups/{SLUG}", reason="other", comment="")
    assert r.status_code == 400 and 'id="e-comment"' in r.text
    assert reports(run_db) == []


def test_a_report_without_csrf_token_is_refused(facilitator, member, run_db):
    member.client.cookies = member.cookies
    r = member.client.post(f"/groups/{SLUG}/report", data={"reason": "spam", "comment": "x"})
    assert r.status_code == 403
    assert reports(run_db) == []


def test_resolving_a_report_writes_the_audit_log(facilitator, member, admin, run_db):
    report(member, f"/groups/{SLUG}", reason="harmful", comment=COMMENT)
    [stored] = reports(run_db)
    r = admin.post(f"/admin/reports/{stored['id']}",
                   {"action": "resolve", "text": "Talked with the facilitators."},
                   page="/admin/reports")
    assert r.status_code == 200 and "is resolved" in r.text
    [closed] = reports(run_db)
    assert (closed["state"], closed["note"]) == ("resolved", "Talked with the facilitators.")
    assert audit_log(run_db)[-1] == ("Admin", "report.resolve",
                                     f"report {stored['id']} on Tuesday Grief Circle")
    page = admin.get("/admin/audit")
    assert page.status_code == 200 and "report.resolve" in page.text
    closed_page = admin.get("/admin/reports?state=closed").text
    assert "Talked with the facilitators." in closed_page


def test_a_facilitator_dismisses_reports_on_their_group_only(facilitator, member, visitor,
                                                              run_db):
    report(member, f"/groups/{SLUG}", reason="spam", comment="")
    [stored] = reports(run_db)
    other = visitor()
    other.register("Otto", "otto@example.org")
    other.post("/groups/new", group_form(name="Another group"), page="/groups/new")
    assert other.get("/admin/reports").status_code == 200
    r = other.post(f"/admin/reports/{stored['id']}", {"action": "dismiss", "text": ""},
                   page="/admin/reports")
    assert r.status_code == 404
    r = facilitator.post(f"/admin/reports/{stored['id']}", {"action": "dismiss", "text": ""},
                         page="/admin/reports")
    assert r.status_code == 200
    assert reports(run_db)[0]["state"] == "dismissed"
    r = facilitator.post(f"/admin/reports/{stored['id']}", {"action": "forward", "text": ""},
                         page="/admin/reports")
    assert r.status_code == 403


def test_members_and_visitors_cannot_reach_moderation(member, visitor):
    assert member.get("/admin/reports").status_code == 403
    assert member.get("/admin/audit").status_code == 403
    r = member.post("/admin/listings", {"action": "hide", "ap_id": REMOTE_ID}, page="/groups")
    assert r.status_code == 403
    anonymous = visitor().get("/admin/reports", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert visitor().get(f"/groups/{SLUG}/report",
                         follow_redirects=False).status_code == 303


def _remote_group(run_db, **overrides) -> int:
    return run_db(lambda db: remote.upsert_remote_group(
        db, origin="peer.example", ap_id=REMOTE_ID, url=REMOTE_ID, username="remote-circle",
        draft=draft(name="Remote Circle", **overrides)))


def test_a_hidden_remote_listing_leaves_the_directory_and_an_update_keeps_it_hidden(
        admin, member, run_db):
    _remote_group(run_db)
    directory = member.get("/groups").text
    assert "Remote Circle" in directory
    assert f'/groups/{quote("remote-circle@peer.example", safe="")}/report' in directory
    r = admin.post("/admin/listings", {"action": "hide", "ap_id": REMOTE_ID}, page="/groups")
    assert r.status_code == 200 and "Remote Circle is hidden" in r.text
    assert "Remote Circle" not in member.get("/groups").text
    assert "Remote Circle" not in member.get("/groups?origin=federated&topic=anxiety").text
    assert member.get("/groups/remote-circle@peer.example/report").status_code == 404

    _remote_group(run_db, summary="An Update from the peer")  # the peer sends an Update
    assert "Remote Circle" not in member.get("/groups").text
    assert audit_log(run_db)[-1] == ("Admin", "listing.hide", f"Remote Circle ({REMOTE_ID})")

    admin.post("/admin/listings", {"action": "unhide", "ap_id": REMOTE_ID}, page="/groups")
    assert "Remote Circle" in member.get("/groups").text


def test_a_member_reports_a_remote_listing(admin, member, run_db):
    _remote_group(run_db)
    r = report(member, "/groups/remote-circle@peer.example", reason="impersonation",
               comment="Claims to be the NHS.")
    assert r.status_code == 200
    [stored] = reports(run_db)
    assert stored["target_ap_id"] == REMOTE_ID
    page = admin.get("/admin/reports").text
    assert "Send to peer.example" in page and "Block peer.example" in page


def _activity_types(run_db, object_id: str) -> list[str]:
    return [r[0] for r in run_db(lambda db: db.fetchall(
        "SELECT type FROM activities WHERE object_id = ? ORDER BY seq", (object_id,)))]


def test_a_suspended_group_is_gone_for_all_but_admins_and_no_longer_federated(
        facilitator, member, admin, visitor, run_db):
    group = run_db(lambda db: groups.get_group(db, SLUG))
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    event_id = run_db(lambda db: events.create_event(db, group.id, EventDraft(
        title="Suspended meeting", description="", starts_at=start, duration_minutes=60,
        timezone="UTC", rrule=None, format=Format.IN_PERSON)))
    actor = f"http://testserver/groups/{SLUG}"
    eventually(lambda: "Create" in _activity_types(run_db, actor), "the group's Create")

    r = admin.post("/admin/listings", {"action": "suspend", "group_id": str(group.id)},
                   page=f"/groups/{SLUG}")
    assert r.status_code == 200 and "is suspended" in r.text
    eventually(lambda: _activity_types(run_db, actor)[-1:] == ["Delete"],
               "a Delete of the group for its followers")

    for who in (member, facilitator, visitor()):
        assert who.get(f"/groups/{SLUG}").status_code == 404
        assert who.get(f"/events/{event_id}").status_code == 404
        assert who.get(f"/groups/{SLUG}/events.ics").status_code == 404
        assert "Tuesday Grief Circle" not in who.get("/groups").text
    anyone = visitor()
    assert "Suspended meeting" not in anyone.get("/events.ics").text
    assert "Tuesday Grief Circle" not in anyone.get("/feed.atom").text
    assert "Suspended meeting" not in anyone.get("/").text
    ap = anyone.get(f"/groups/{SLUG}", headers={"Accept": "application/activity+json"})
    assert ap.status_code == 404
    page = admin.get(f"/groups/{SLUG}")
    assert page.status_code == 200 and "This group is suspended" in page.text
    assert audit_log(run_db)[-1] == ("Admin", "group.suspend", f"Tuesday Grief Circle ({SLUG})")

    admin.post("/admin/listings", {"action": "unsuspend", "group_id": str(group.id)},
               page="/admin/reports")
    assert member.get(f"/groups/{SLUG}").status_code == 200
    assert "Tuesday Grief Circle" in member.get("/groups").text
    eventually(lambda: _activity_types(run_db, actor)[-1:] == ["Create"],
               "the group back for its followers")


def test_existing_admin_actions_are_audited(admin, member, run_db):
    r = admin.post("/admin/settings", {"name": "Leith", "description": "", "registration": "open",
                                       "default_language": "en", "crisis_notice": ""},
                   page="/admin/settings")
    assert r.status_code == 200
    mo = run_db(lambda db: accounts.find_account(db, "morwenna@example.org"))
    admin.post("/admin/accounts", {"action": "grant", "account_id": str(mo.id)},
               page="/admin/accounts")
    admin.post("/admin/peers", {"action": "block", "target": "bad.example"}, page="/admin/peers")
    assert audit_log(run_db) == [
        ("Admin", "settings.update", "node settings"),
        ("Admin", "account.grant", REPORTER),
        ("Admin", "peer.block", "bad.example"),
    ]
    page = admin.get("/admin/audit").text
    assert page.index("peer.block") < page.index("settings.update")  # newest first


def test_the_audit_log_is_paginated(admin, run_db):
    me = run_db(accounts.first_admin)

    async def fill(db):
        from node.storage.audit import record_action
        for n in range(60):
            await record_action(db, me, "peer.block", f"bad{n}.example")

    run_db(fill)
    first = admin.get("/admin/audit").text
    assert "bad59.example" in first and "bad5.example" not in first
    assert "Page 1 of 2" in first
    assert "bad5.example" in admin.get("/admin/audit?page=2").text


def test_a_deleted_reporter_leaves_an_anonymous_report(facilitator, member, admin, run_db):
    report(member, f"/groups/{SLUG}", reason="spam", comment="")
    mo = run_db(lambda db: accounts.find_account(db, "morwenna@example.org"))
    run_db(lambda db: accounts.delete_account(db, mo.id))
    [stored] = reports(run_db)
    assert stored["reporter_id"] is None
    assert "an account since deleted" in admin.get("/admin/reports").text


def test_a_flag_is_recorded_once_and_only_about_our_own_listings(facilitator, run_db):
    group = run_db(lambda db: groups.get_group(db, SLUG))

    def flag(flag_id: str, *objects: str) -> bool:
        act = {"id": flag_id, "type": "Flag", "actor": "https://peer.example/actor",
               "object": list(objects), "content": "Spam or advertising: <b>ads</b>"}

        async def go(db):
            fed = Federation(db, None, Urls("http://testserver"))  # type: ignore[arg-type]
            return await apply(fed, act, act["actor"], "peer.example")

        return run_db(go)

    ours = f"http://testserver/groups/{SLUG}"
    assert flag("https://peer.example/flags/1", "https://peer.example/x", ours)
    flag("https://peer.example/flags/1", ours)  # the same Flag again: applied once
    assert not flag("https://peer.example/flags/2", "https://elsewhere.example/groups/a")
    [stored] = reports(run_db)
    assert (stored["peer_host"], stored["group_id"], stored["reason"], stored["comment"]) == (
        "peer.example", group.id, "spam", "Spam or advertising: ads")


# Two real nodes -----------------------------------------------------------------------

SECRET_EMAIL = "quentin.hidden@example.org"
SECRET_NAME = "Quentin Hiddenname"
FLAG_COMMENT = "Asks members for money in private messages."


class Session:
    """A browser on a real node: cookies, and the CSRF token of each form it submits."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)

    def post(self, path: str, data: dict[str, str], page: str) -> httpx.Response:
        token = CSRF.search(self.http.get(page).text).group(1)
        return self.http.post(path, data={**data, "csrf_token": token})

    def login(self, target: Node, account_id: int) -> Session:
        token = target.run(lambda db: accounts.create_login_link(db, account_id))
        link = f"/login/link/{token}"
        assert self.post(link, {}, page=link).status_code == 303
        return self


def test_a_forwarded_report_reaches_the_origin_as_an_anonymous_flag(tmp_path):
    with ExitStack() as stack:
        a = stack.enter_context(node(tmp_path, "a", "127.0.0.1"))
        b = stack.enter_context(node(tmp_path, "b", "127.0.0.2", "--demo"))
        a.cli("peers", "follow", b.url, "--dev")
        wait_for(lambda: b.query("SELECT follower FROM peers WHERE host = ?", (a.host,))
                 == [("pending",)], "B to see A's request")
        b.cli("peers", "approve", a.host)
        slug = b.query("SELECT slug FROM groups WHERE visibility = 'public' AND origin IS NULL"
                       " ORDER BY id LIMIT 1")[0][0]
        ap_id = f"{b.url}/groups/{slug}"
        wait_for(lambda: a.query("SELECT slug FROM groups WHERE ap_id = ?", (ap_id,)),
                 "B's listing on A")
        [(local_slug,)] = a.query("SELECT slug FROM groups WHERE ap_id = ?", (ap_id,))

        member_id = a.run(lambda db: accounts.create_account(
            db, email=SECRET_EMAIL, display_name=SECRET_NAME, password_hash=None))
        member = Session(a.url).login(a, member_id)
        path = f"/groups/{quote(local_slug, safe='')}/report"
        r = member.post(path, {"reason": "unsafe", "comment": FLAG_COMMENT}, page=path)
        assert r.status_code == 200, r.text

        admin = Session(a.url).login(a, a.run(accounts.first_admin).id)
        page = admin.http.get("/admin/reports").text
        assert SECRET_NAME in page and f"Send to {b.host}" in page
        [(report_id,)] = a.query("SELECT id FROM reports")
        r = admin.post(f"/admin/reports/{report_id}",
                       {"action": "forward", "text": FLAG_COMMENT}, page="/admin/reports")
        assert r.status_code == 200 and "is sent to its node" in r.text

        wait_for(lambda: b.query("SELECT count(*) FROM reports") == [(1,)], "the Flag on B")
        [(peer_host, reason, comment, body, group_name)] = b.query(
            "SELECT r.peer_host, r.reason, r.comment, r.body, g.name FROM reports r"
            " JOIN groups g ON g.id = r.group_id")
        assert (peer_host, reason) == (a.host, "unsafe")
        assert FLAG_COMMENT in comment
        flag = json.loads(body)
        assert flag["type"] == "Flag" and flag["actor"] == f"{a.url}/actor"
        assert flag["object"] == [ap_id]
        assert "Unsafe practice" in flag["content"]

        b_admin = Session(b.url).login(b, b.run(accounts.first_admin).id)
        b_page = b_admin.http.get("/admin/reports").text
        assert f"the node <strong>{a.host}</strong>" in b_page and group_name in b_page

        # Privacy capture: nothing that names the member left A or arrived on B.
        sent = [row[0] for row in a.query("SELECT body FROM activities")]
        assert any('"Flag"' in s for s in sent)
        received = [row[0] for row in b.query("SELECT body FROM inbox_items")]
        for captured in sent + received + [body, b_page]:
            assert not re.search(r"quentin|hiddenname", captured, re.IGNORECASE)

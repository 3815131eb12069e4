"""Account mail through the real app, the real database and a real SMTP server on loopback:
confirming an address, resetting a password, changing an address, approval of new accounts,
rate limits, and a member's data (export and erasure)."""
from __future__ import annotations

import json
import re
import time
from email.message import EmailMessage

import pytest

from node import account_links, i18n
from node.app import create_app
from node.cli import main
from node.config import load_config
from node.db import connect_sync, migrate
from node.domain import NodeSettings, RegistrationMode
from node.storage import accounts
from node.storage.notices import record_notice
from node.storage.settings import save_settings
from tests.conftest import Browser
from tests.helpers import FIRST_MEETING, group_form, local_key, meeting_form, wait_for

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"
SLUG = "tuesday-grief-circle"
LINK = re.compile(r"^http://testserver(/\S+)\r?$", re.MULTILINE)


@pytest.fixture
def app(data_dir, admin_link, smtp_server):
    """The node, sending its mail to the loopback SMTP server."""
    smtp_server.configure(data_dir)
    return create_app(load_config(data_dir))


def settings(run_db, **values) -> None:
    run_db(lambda db: save_settings(db, NodeSettings(review_public_groups=False, **values)))


@pytest.fixture
def open_node(run_db):
    """Open registration; members confirm their address before joining (the default)."""
    settings(run_db, registration=RegistrationMode.OPEN)


def mails_to(smtp_server, address: str, count: int = 1, about: str = "") -> list[EmailMessage]:
    """The first ``count`` messages to ``address`` whose subject has ``about``, once here."""
    def found() -> list[EmailMessage] | None:
        messages = [got.message for got in list(smtp_server.received)
                    if got.rcpt_tos == (address,) and about in got.message["Subject"]]
        return messages[:count] if len(messages) >= count else None
    return wait_for(found, f"{count} message(s) to {address} about {about!r}")


def body(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def link_in(message: EmailMessage) -> str:
    [path] = LINK.findall(body(message))
    return path


def outbox(run_db, where: str = "1 = 1", params: tuple = ()) -> list[dict]:
    return [dict(r) for r in run_db(lambda db: db.fetchall(
        f"SELECT * FROM mail_outbox WHERE {where} ORDER BY id", params))]


def account_of(run_db, email: str):
    return run_db(lambda db: accounts.find_account(db, email))


def register(visitor, name: str, email: str, **extra: str) -> Browser:
    b = visitor()
    r = b.post("/register", {"display_name": name, "email": email, "password": PASSWORD,
                             **extra}, page="/register")
    assert r.status_code in (200, 303), r.text
    return b


def verify(b: Browser, smtp_server, email: str) -> None:
    [message] = mails_to(smtp_server, email, about="Confirm your email")
    path = link_in(message)
    assert b.post(path, page=path).status_code == 303


def assert_private(smtp_server, addresses: set[str]) -> None:
    """No message carries a member's address but its own recipient's."""
    for got in smtp_server.received:
        others = addresses - set(got.rcpt_tos)
        raw = got.message.as_string()
        assert not [a for a in others if a in raw], got.message["Subject"]


# Confirming an address ---------------------------------------------------------

def test_registration_mails_a_verification_link_in_the_registrants_language(
        visitor, open_node, smtp_server, run_db):
    b = visitor()
    form = {"display_name": "Lena", "email": "lena@example.org", "password": PASSWORD,
            "csrf_token": b.token("/register")}
    r = b.request("POST", "/register", data=form, headers={"Accept-Language": "de-DE,de;q=0.9"},
                  follow_redirects=False)
    assert r.status_code == 303
    [message] = mails_to(smtp_server, "lena@example.org")
    with i18n.speaking("de"):
        subject = i18n.gettext("Confirm your email address on %(node)s", node="Grassroots")
        greeting = i18n.gettext("Hello %(name)s,", name="Lena")
    assert message["Subject"] == subject
    assert body(message).startswith(greeting)
    assert '<html lang="de">' in message.get_body(("html",)).get_content()
    assert message["List-Unsubscribe"] is None  # account security: always sent
    lena = account_of(run_db, "lena@example.org")
    assert (lena.language, lena.email_verified) == ("de", False)

    path = link_in(message)
    assert path.startswith("/account/verify/")
    page = visitor().get(path)  # a link preview: shows a button, confirms nothing
    assert page.status_code == 200 and "Confirm my address" in page.text
    assert not account_of(run_db, "lena@example.org").email_verified
    assert b.post(path, page=path).status_code == 303
    assert account_of(run_db, "lena@example.org").email_verified
    assert b.post(path, page=path).status_code == 303  # once more: no harm done


def test_a_forged_or_foreign_verification_link_confirms_nothing(visitor, open_node, smtp_server,
                                                                run_db):
    b = register(visitor, "Kai", "kai@example.org")
    path = link_in(mails_to(smtp_server, "kai@example.org")[0])
    forged = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert b.get(forged).status_code == 400
    reset_purpose = path.replace("/account/verify/", "/login/reset/")  # signed for another use
    assert b.get(reset_purpose).status_code == 400
    assert b.post(forged, page="/account").status_code == 400
    assert not account_of(run_db, "kai@example.org").email_verified


def test_an_unconfirmed_member_cannot_join_until_they_open_the_link(
        admin, visitor, open_node, smtp_server, run_db):
    assert admin.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    b = register(visitor, "Ada", "ada@example.org")
    r = b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}, page=f"/groups/{SLUG}")
    assert r.status_code == 403
    assert "Confirm your email address first" in r.text and "Send the link again" in r.text
    ada = account_of(run_db, "ada@example.org")
    assert run_db(lambda db: db.fetchval(
        "SELECT count(*) FROM memberships WHERE account_id = ?", (ada.id,))) == 0

    verify(b, smtp_server, "ada@example.org")
    r = b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}, page=f"/groups/{SLUG}")
    assert r.status_code == 303
    assert run_db(lambda db: db.fetchval(
        "SELECT count(*) FROM memberships WHERE account_id = ?", (ada.id,))) == 1


def test_sending_the_link_again_is_rate_limited(visitor, open_node, smtp_server, run_db):
    b = register(visitor, "Bo", "bo@example.org")
    bo = account_of(run_db, "bo@example.org")
    for _ in range(3):
        r = b.post("/account/verify", {"next": f"/groups/{SLUG}"}, page="/account")
        assert r.status_code == 303 and r.headers["location"] == f"/groups/{SLUG}"
    assert len(outbox(run_db, "account_id = ?", (bo.id,))) == 4  # registration's, and 3 more
    r = b.post("/account/verify", {"next": f"/groups/{SLUG}"}, page="/account")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "Try again in" in r.text
    assert len(outbox(run_db, "account_id = ?", (bo.id,))) == 4
    mails_to(smtp_server, "bo@example.org", 4)
    # Every link sent works: the address is what they are bound to.
    assert b.post(link_in(mails_to(smtp_server, "bo@example.org", 4)[1]),
                  page="/account").status_code == 303
    assert account_of(run_db, "bo@example.org").email_verified


def test_accounts_from_before_and_the_first_admin_count_as_confirmed(tmp_path, admin, run_db):
    assert run_db(accounts.first_admin).email_verified
    conn = connect_sync(tmp_path / "older.db")
    migrate(conn, upto=11)
    conn.execute("INSERT INTO accounts (email, display_name, created_at)"
                 " VALUES ('old@example.org', 'Old', '2024-01-01T00:00:00Z')")
    migrate(conn)
    assert conn.execute("SELECT email_verified_at IS NOT NULL, pending_email, join_reason"
                        " FROM accounts").fetchone() == (1, None, "")
    conn.close()


# Password reset -----------------------------------------------------------------

def test_reset_answers_the_same_and_mails_nothing_for_an_unknown_address(
        visitor, open_node, smtp_server, run_db):
    register(visitor, "Cy", "cy@example.org")
    before = len(outbox(run_db))
    known = visitor().post("/login/reset", {"email": "cy@example.org"}, page="/login/reset")
    unknown = visitor().post("/login/reset", {"email": "nobody@example.org"},
                             page="/login/reset")
    assert known.status_code == unknown.status_code == 200

    def page(r, email: str) -> str:
        return re.sub(r'name="csrf_token" value="[^"]+"', "", r.text.replace(email, "ADDRESS"))

    assert page(known, "cy@example.org") == page(unknown, "nobody@example.org")
    assert "If an account on this node uses" in known.text
    rows = outbox(run_db)
    assert [r["to_address"] for r in rows[before:]] == ["cy@example.org"]
    assert not outbox(run_db, "to_address = ?", ("nobody@example.org",))
    mails_to(smtp_server, "cy@example.org", about="Reset your password")


def test_a_reset_link_works_once_ends_every_session_and_the_notice_arrives(
        visitor, open_node, smtp_server, run_db):
    register(visitor, "Dee", "dee@example.org")
    elsewhere = visitor()
    assert elsewhere.login("dee@example.org").status_code == 303
    b = visitor()
    b.post("/login/reset", {"email": "dee@example.org"}, page="/login/reset")
    [message] = mails_to(smtp_server, "dee@example.org", about="Reset your password")
    assert message["List-Unsubscribe"] is None
    path = link_in(message)
    for _ in range(2):  # showing the form does not use the link
        form = b.get(path)
        assert form.status_code == 200 and 'name="new_password"' in form.text
    short = b.post(path, {"new_password": "short"}, page=path)
    assert short.status_code == 400 and 'id="e-new_password"' in short.text
    r = b.post(path, {"new_password": NEW_PASSWORD}, page=path)
    assert r.status_code == 303 and r.headers["location"] == "/account"
    assert b.get("/account").status_code == 200  # logged in here
    assert elsewhere.get("/account", follow_redirects=False).status_code == 303

    again = visitor().get(path)
    assert again.status_code == 400 and 'href="/login/reset"' in again.text
    assert visitor().post(path, {"new_password": "yet another secret"},
                          page="/login/reset").status_code == 400
    assert visitor().login("dee@example.org", NEW_PASSWORD).status_code == 303
    assert visitor().login("dee@example.org", PASSWORD).status_code == 400
    [notice] = mails_to(smtp_server, "dee@example.org", about="was changed")
    assert "was changed just now" in body(notice)
    assert link_in(notice) == "/login/reset"


def test_a_reset_link_expires_after_an_hour(visitor, open_node, smtp_server, monkeypatch):
    register(visitor, "Eli", "eli@example.org")
    b = visitor()
    b.post("/login/reset", {"email": "eli@example.org"}, page="/login/reset")
    path = link_in(mails_to(smtp_server, "eli@example.org", about="Reset your password")[0])
    monkeypatch.setattr(account_links, "clock", lambda: time.time() + 59 * 60)
    assert b.get(path).status_code == 200
    monkeypatch.setattr(account_links, "clock", lambda: time.time() + 61 * 60)
    expired = b.get(path)
    assert expired.status_code == 400
    assert "older than an hour" in expired.text and "Ask for a new link" in expired.text
    assert b.post(path, {"new_password": NEW_PASSWORD}, page="/login").status_code == 400
    assert visitor().login("eli@example.org").status_code == 303  # unchanged


def test_changing_the_password_on_the_account_page_sends_the_notice(
        visitor, open_node, smtp_server):
    b = register(visitor, "Fin", "fin@example.org")
    r = b.post("/account", {"action": "password", "current_password": PASSWORD,
                            "new_password": NEW_PASSWORD}, page="/account")
    assert r.status_code == 200
    [notice] = mails_to(smtp_server, "fin@example.org", about="was changed")
    assert "Fin" in body(notice)


# Changing the address -------------------------------------------------------------

def test_a_new_address_is_confirmed_there_and_the_old_one_told(
        visitor, open_node, smtp_server, run_db):
    b = register(visitor, "Gil", "gil@example.org")
    r = b.post("/account", {"action": "profile", "display_name": "Gil",
                            "email": "gil.new@example.org"}, page="/account")
    assert r.status_code == 200 and "gil.new@example.org" in r.text
    gil = account_of(run_db, "gil@example.org")
    assert (gil.email, gil.pending_email) == ("gil@example.org", "gil.new@example.org")
    [confirmation] = mails_to(smtp_server, "gil.new@example.org")
    [notice] = mails_to(smtp_server, "gil@example.org", about="change your email")
    assert "gil.new@example.org" not in notice.as_string()
    assert link_in(notice) == "/login/reset"

    # Until confirmed, the old address logs in and the new one does not.
    assert visitor().login("gil.new@example.org").status_code == 400
    assert visitor().login("gil@example.org").status_code == 303
    path = link_in(confirmation)
    assert path.startswith("/account/email/")
    assert visitor().get(path).status_code == 200
    assert account_of(run_db, "gil@example.org") is not None  # a GET changes nothing
    assert visitor().post(path, page=path).status_code == 303
    assert account_of(run_db, "gil@example.org") is None
    moved = account_of(run_db, "gil.new@example.org")
    assert (moved.id, moved.pending_email, moved.email_verified) == (gil.id, None, True)
    assert visitor().login("gil.new@example.org").status_code == 303
    assert visitor().login("gil@example.org").status_code == 400
    assert visitor().post(path, page=path).status_code == 400  # used


def test_keeping_the_current_address_kills_the_link_sent_to_the_new_one(
        visitor, open_node, smtp_server, run_db):
    b = register(visitor, "Hana", "hana@example.org")
    b.post("/account", {"action": "profile", "display_name": "Hana",
                        "email": "hana.new@example.org"}, page="/account")
    assert "Keep my current address" in b.get("/account").text
    path = link_in(mails_to(smtp_server, "hana.new@example.org")[0])
    assert b.post("/account", {"action": "cancel_email"}, page="/account").status_code == 200
    assert account_of(run_db, "hana@example.org").pending_email is None
    assert visitor().get(path).status_code == 400
    assert account_of(run_db, "hana.new@example.org") is None


def test_links_to_new_addresses_are_rate_limited(visitor, open_node, run_db):
    b = register(visitor, "Ines", "ines@example.org")
    for n in range(3):
        assert b.post("/account", {"action": "profile", "display_name": "Ines",
                                   "email": "ines.new@example.org"},
                      page="/account").status_code == 200
    limited = b.post("/account", {"action": "profile", "display_name": "Ines",
                                  "email": "ines.new@example.org"}, page="/account")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert 'id="e-email"' in limited.text
    assert len(outbox(run_db, "to_address = 'ines.new@example.org'")) == 3


def test_the_first_admin_sets_an_address_at_once(admin, run_db):
    r = admin.post("/account", {"action": "profile", "display_name": "Admin",
                                "email": "admin@example.org"}, page="/account")
    assert r.status_code == 200 and "Your profile is saved." in r.text
    first = run_db(accounts.first_admin)
    assert (first.email, first.pending_email, first.email_verified) == (
        "admin@example.org", None, True)
    assert not outbox(run_db)  # no old address to tell, none to confirm


def test_an_address_another_account_uses_is_refused(visitor, open_node, smtp_server, run_db):
    register(visitor, "Hal", "hal@example.org")
    b = register(visitor, "Ivy", "ivy@example.org")
    r = b.post("/account", {"action": "profile", "display_name": "Ivy",
                            "email": "hal@example.org"}, page="/account")
    assert r.status_code == 400 and "Another account uses this email" in r.text
    assert account_of(run_db, "ivy@example.org").pending_email is None
    assert not outbox(run_db, "kind LIKE 'email_change%'")


# Registration by approval -------------------------------------------------------------

def test_approval_asks_a_reason_tells_admins_and_mails_the_applicant(
        admin, visitor, smtp_server, run_db):
    settings(run_db, registration=RegistrationMode.APPROVAL)
    first = run_db(accounts.first_admin)
    run_db(lambda db: accounts.update_profile(db, first.id, display_name="Admin",
                                              email="admin@example.org"))
    missing = visitor().post("/register", {"display_name": "Jo", "email": "jo@example.org",
                                           "password": PASSWORD}, page="/register")
    assert missing.status_code == 400 and 'id="e-reason"' in missing.text
    assert account_of(run_db, "jo@example.org") is None

    register(visitor, "Jo", "jo@example.org", reason="I am looking for a grief group.")
    register(visitor, "Kim", "kim@example.org", reason="Cheap watches.")
    jo, kim = account_of(run_db, "jo@example.org"), account_of(run_db, "kim@example.org")
    assert jo.join_reason == "I am looking for a grief group."
    first_admin = run_db(accounts.first_admin)

    def told_admin() -> list[int] | None:
        """Whom the admin was told of: notices waiting, or already written as mail."""
        waiting = [json.loads(n["data"])["applicant_id"] for n in run_db(lambda db: db.fetchall(
            "SELECT data FROM notices WHERE kind = 'account_review' AND account_id = ?",
            (first_admin.id,)))]
        written = [{"Jo": jo.id, "Kim": kim.id}[name] for row in outbox(
            run_db, "kind = 'account_review' AND account_id = ?", (first_admin.id,))
            for name in ("Jo", "Kim") if name in row["body_text"]]
        return sorted(waiting + written) if len(waiting + written) == 2 else None

    assert wait_for(told_admin, "the admin told of both") == [jo.id, kim.id]
    listing = admin.get("/admin/accounts").text
    assert "I am looking for a grief group." in listing

    def act(action: str, target: int):
        return admin.post("/admin/accounts", {"action": action, "account_id": str(target),
                                              "confirmed": "yes"}, page="/admin/accounts")

    assert act("approve", jo.id).status_code == 200
    [approved] = mails_to(smtp_server, "jo@example.org", about="approved")
    assert link_in(approved) == "/login"
    assert account_of(run_db, "jo@example.org").join_reason == ""  # served its purpose

    assert act("reject", kim.id).status_code == 200
    [rejected] = mails_to(smtp_server, "kim@example.org", about="Your registration")
    assert "removed" in body(rejected)
    assert account_of(run_db, "kim@example.org") is None
    audit = [dict(r) for r in run_db(lambda db: db.fetchall(
        "SELECT action, target FROM audit_log WHERE action = 'account.reject'"))]
    assert audit == [{"action": "account.reject", "target": f"account {kim.id}"}]
    assert_private(smtp_server, {"jo@example.org", "kim@example.org", "admin@example.org"})


# Rate limits ---------------------------------------------------------------------------

def test_registration_is_rate_limited_per_address_and_per_client(visitor, open_node, run_db):
    register(visitor, "Lou", "lou@example.org")
    for _ in range(2):
        again = visitor().post("/register", {"display_name": "Lou", "email": "lou@example.org",
                                             "password": PASSWORD}, page="/register")
        assert again.status_code == 400
    limited = visitor().post("/register", {"display_name": "Lou", "email": "lou@example.org",
                                           "password": PASSWORD}, page="/register")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Try again in" in limited.text
    for n in range(17):  # 20 from one network in an hour, the three above included
        register(visitor, f"Member {n}", f"member{n}@example.org")
    sent_before = len(outbox(run_db))
    refused = visitor().post("/register", {"display_name": "One more",
                                           "email": "one.more@example.org",
                                           "password": PASSWORD}, page="/register")
    assert refused.status_code == 429
    assert account_of(run_db, "one.more@example.org") is None
    assert len(outbox(run_db)) == sent_before


def test_reset_requests_are_rate_limited_per_address_and_per_client(visitor, open_node,
                                                                    smtp_server, run_db):
    register(visitor, "Max", "max@example.org")
    b = visitor()
    for _ in range(3):
        assert b.post("/login/reset", {"email": "max@example.org"},
                      page="/login/reset").status_code == 200
    limited = b.post("/login/reset", {"email": "max@example.org"}, page="/login/reset")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert len(outbox(run_db, "kind = 'password_reset'")) == 3
    for n in range(7):  # 10 from one network in an hour
        assert b.post("/login/reset", {"email": f"x{n}@example.org"},
                      page="/login/reset").status_code == 200
    assert b.post("/login/reset", {"email": "max.other@example.org"},
                  page="/login/reset").status_code == 429
    assert len(outbox(run_db, "kind = 'password_reset'")) == 3


# A member's data ------------------------------------------------------------------------

@pytest.fixture
def group_with_members(admin, visitor, run_db, smtp_server):
    """A group by the admin with a meeting; Nia (who reported it) and Oli go to it."""
    settings(run_db, registration=RegistrationMode.OPEN, require_verified_email=False)
    assert admin.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    r = admin.post(f"/groups/{SLUG}/events/new", meeting_form(),
                   page=f"/groups/{SLUG}/events/new")
    event_id = int(r.headers["location"].removeprefix("/events/"))
    members = {}
    for name in ("Nia", "Oli"):
        b = register(visitor, name, f"{name.lower()}@example.org")
        assert b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}).status_code == 303
        assert b.post(f"/events/{event_id}/rsvp", {"on": local_key(FIRST_MEETING),
                                                   "answer": "yes"}).status_code == 303
        members[name] = b
    members["Nia"].post(f"/groups/{SLUG}/report", {"reason": "other", "comment": "Too loud."},
                        page=f"/groups/{SLUG}/report")
    return members, event_id


def test_a_member_exports_their_data_and_nobody_elses(group_with_members, run_db,
                                                     smtp_server):
    members, event_id = group_with_members
    r = members["Nia"].get("/account/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    assert "attachment" in r.headers["content-disposition"]
    data = r.json()
    nia = account_of(run_db, "nia@example.org")
    assert data["account"]["email"] == "nia@example.org" and data["account"]["id"] == nia.id
    assert [(m["group_slug"], m["role"]) for m in data["memberships"]] == [(SLUG, "member")]
    assert [(x["event_id"], x["status"]) for x in data["rsvps"]] == [(event_id, "going")]
    assert [x["comment"] for x in data["reports_filed"]] == ["Too loud."]
    assert "verify_email" in [m["kind"] for m in data["mail"]]
    assert "mail_preferences" in data
    assert "oli@example.org" not in r.text and "Oli" not in r.text
    assert "password" not in r.text and "$argon2" not in r.text
    mails_to(smtp_server, "oli@example.org")
    assert_private(smtp_server, {"nia@example.org", "oli@example.org"})

    calendar = members["Nia"].get("/account/export.ics")
    assert calendar.status_code == 200
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert "Evening circle" in calendar.text and f"event-{event_id}@" in calendar.text


def test_erasing_an_account_removes_its_records_and_audits_without_them(
        group_with_members, run_db):
    members, _ = group_with_members
    nia = account_of(run_db, "nia@example.org")

    async def more_records(db):
        async with db.transaction() as conn:
            await record_notice(conn, "welcome", nia.id, group_id=1)
            await conn.execute("INSERT INTO mail_preferences (account_id, digest) VALUES (?, 1)",
                               (nia.id,))

    run_db(more_records)
    r = members["Nia"].post("/account/delete", {"confirm": "delete"}, page="/account/delete")
    assert r.status_code == 200 and "Your account is deleted" in r.text
    assert account_of(run_db, "nia@example.org") is None
    for table in ("memberships", "rsvps", "notices", "mail_outbox", "mail_preferences",
                  "sessions"):
        left = run_db(lambda db, t=table: db.fetchval(
            f"SELECT count(*) FROM {t} WHERE account_id = ?", (nia.id,)))
        assert left == 0, table
    report = run_db(lambda db: db.fetchone("SELECT reporter_id, comment FROM reports"))
    assert (report["reporter_id"], report["comment"]) == (None, "Too loud.")  # as by a former member
    [entry] = [dict(e) for e in run_db(lambda db: db.fetchall(
        "SELECT actor_id, actor_name, action, target FROM audit_log"
        " WHERE action = 'account.erase'"))]
    assert entry == {"actor_id": None, "actor_name": "a former member",
                     "action": "account.erase", "target": f"account {nia.id}"}
    everything = run_db(lambda db: db.fetchall("SELECT * FROM audit_log"))
    assert not [row for row in everything if "nia" in " ".join(map(str, tuple(row))).lower()]
    assert members["Nia"].get("/account", follow_redirects=False).status_code == 303


def test_a_sole_facilitator_is_asked_to_hand_over_first(visitor, open_node, run_db):
    settings(run_db, registration=RegistrationMode.OPEN, require_verified_email=False)
    b = register(visitor, "Pat", "pat@example.org")
    assert b.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    page = b.get("/account/delete")
    assert "only facilitator" in page.text
    assert f'href="/groups/{SLUG}/members"' in page.text
    assert 'name="confirm"' not in page.text
    r = b.post("/account/delete", {"confirm": "delete"}, page="/account")
    assert r.status_code == 409 and f'href="/groups/{SLUG}/members"' in r.text
    assert account_of(run_db, "pat@example.org") is not None


def test_admins_export_and_erase_on_request_from_the_screen_and_the_command_line(
        group_with_members, admin, data_dir, run_db, capsys):
    nia, oli = account_of(run_db, "nia@example.org"), account_of(run_db, "oli@example.org")

    def act(action: str, target: int, **extra: str):
        return admin.post("/admin/accounts", {"action": action, "account_id": str(target),
                                              **extra}, page="/admin/accounts")

    exported = act("export", nia.id)
    assert exported.status_code == 200 and exported.json()["account"]["email"] == nia.email
    asked = act("erase", nia.id)
    assert "Are you sure?" in asked.text and account_of(run_db, nia.email) is not None
    assert act("erase", nia.id, confirmed="yes").status_code == 200
    assert account_of(run_db, nia.email) is None

    assert main(["admin", "export", oli.email, "--data", str(data_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["account"]["id"] == oli.id and "nia@example.org" not in json.dumps(printed)
    assert main(["admin", "erase", oli.email, "--data", str(data_dir)]) == 0
    assert account_of(run_db, oli.email) is None
    audit = [tuple(r) for r in run_db(lambda db: db.fetchall(
        "SELECT actor_name, action, target FROM audit_log WHERE action LIKE 'account.e%'"
        " ORDER BY id"))]
    assert audit == [("Admin", "account.export", f"account {nia.id}"),
                     ("Admin", "account.erase", f"account {nia.id}"),
                     ("command line", "account.export", f"account {oli.id}"),
                     ("command line", "account.erase", f"account {oli.id}")]

"""Members hear from their groups and meetings: notices become mail, through the real app
and a real SMTP server on loopback, as each member's preferences say."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime
from icalendar import Calendar

from node import notifier
from node.app import create_app
from node.config import load_config
from node.domain import AccountStatus, NodeSettings, RegistrationMode, ReportReason
from node.notifier import digest_due_before, read_unsubscribe_token, unsubscribe_token
from node.storage import accounts, groups, moderation
from node.storage.notices import record_notice
from node.storage.settings import save_settings
from tests.helpers import FIRST_MEETING, group_form, local_key, meeting_form, wait_for

SLUG = "tuesday-grief-circle"
AGREEMENTS = "1. What is said here stays here."
FIRST = FIRST_MEETING
key = local_key


@pytest.fixture
def app(data_dir, admin_link, smtp_server):
    smtp_server.configure(data_dir)
    return create_app(load_config(data_dir))


@pytest.fixture
def node_open(run_db):
    """Open registration; groups listed and joined without waiting for anyone."""
    run_db(lambda db: save_settings(db, NodeSettings(
        registration=RegistrationMode.OPEN, review_public_groups=False,
        require_verified_email=False)))


@pytest.fixture
def clock(monkeypatch):
    """The notice worker's clock, held still until a test moves it."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(notifier, "utcnow", lambda: now[0])
    return now


def address(name: str) -> str:
    return f"{name.lower()}@example.org"


def register(visitor, name: str, language: str = "en"):
    b = visitor()
    b.cookies.set("lang", language)
    b.register(name, address(name))
    return b


@pytest.fixture
def fay(visitor, node_open):
    """A facilitator of an open group with agreements."""
    b = register(visitor, "Fay")
    assert b.post("/groups/new", group_form(agreements=AGREEMENTS),
                  page="/groups/new").status_code == 303
    return b


def join(b, slug: str = SLUG):
    r = b.post(f"/groups/{slug}/join", {"accept_agreements": "yes"}, page=f"/groups/{slug}")
    assert r.status_code == 303, r.text


def member(visitor, name: str, language: str = "en"):
    b = register(visitor, name, language)
    join(b)
    return b


def schedule(b, **overrides: object) -> int:
    r = b.post(f"/groups/{SLUG}/events/new", meeting_form(**overrides),
               page=f"/groups/{SLUG}/events/new")
    assert r.status_code == 303, r.text
    return int(r.headers["location"].removeprefix("/events/"))


def rsvp(b, event_id: int, answer: str = "yes", on: datetime = FIRST) -> None:
    r = b.post(f"/events/{event_id}/rsvp", {"on": key(on), "answer": answer})
    assert r.status_code == 303, r.text


def account_id(run_db, name: str) -> int:
    return run_db(lambda db: accounts.find_account(db, address(name))).id


# Reading what the SMTP server received ----------------------------------------------

def inbox(server, name: str) -> list[EmailMessage]:
    """The notices ``name`` received (account security mail, which has no unsubscribe
    link, is another story)."""
    return [r.message for r in server.received
            if r.rcpt_tos == (address(name),) and r.message["List-Unsubscribe"]]


def mail_to(server, name: str, subject: str, timeout: float = 20) -> EmailMessage:
    """The first message to ``name`` whose subject has ``subject``, once it came."""
    return wait_for(lambda: next((m for m in inbox(server, name) if subject in m["Subject"]),
                                 None), f"{subject!r} to {name}", timeout)


def subjects(server, name: str) -> list[str]:
    return [m["Subject"] for m in inbox(server, name)]


def count_of(server, name: str, subject: str) -> int:
    """How many of the notices ``name`` received have ``subject`` in their subject."""
    return len([s for s in subjects(server, name) if subject in s])


def text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def everything(message: EmailMessage) -> str:
    """Headers and every part decoded: whatever a reader could find in the message."""
    parts = [str(value) for value in message.values()]
    for part in message.walk():
        if not part.is_multipart():
            parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
    return "\n".join(parts)


def assert_addresses_private(server, names: list[str]) -> None:
    """Each member's address appears in their own messages and in no one else's."""
    assert server.received
    for got in server.received:
        found = everything(got.message).lower()
        for name in names:
            if address(name) in found:
                assert got.rcpt_tos == (address(name),), (name, got.message["Subject"])


def unsubscribe_path(message: EmailMessage) -> str:
    return urlsplit(message["List-Unsubscribe"].strip("<>")).path


def pending_notices(run_db) -> int:
    return run_db(lambda db: db.fetchval("SELECT count(*) FROM notices"))


# Groups -------------------------------------------------------------------------------

def test_a_join_request_reaches_every_facilitator_and_the_answer_reaches_the_member(
        fay, visitor, run_db, smtp_server):
    cy = member(visitor, "Cy")
    r = fay.post(f"/groups/{SLUG}/members",
                 {"action": "make_facilitator", "account_id": str(account_id(run_db, "Cy"))},
                 page=f"/groups/{SLUG}/members")
    assert r.status_code == 303
    fay.post(f"/groups/{SLUG}/edit", group_form(join_policy="approval", agreements=AGREEMENTS),
             page=f"/groups/{SLUG}/edit")
    ola, pat = register(visitor, "Ola"), register(visitor, "Pat")
    join(ola)
    join(pat)

    for facilitator in ("Fay", "Cy"):
        wait_for(lambda f=facilitator: count_of(smtp_server, f, "A request to join") == 2,
                 f"the requests to {facilitator}")
        requests = [m for m in inbox(smtp_server, facilitator)
                    if m["Subject"].startswith("A request")]
        for request, name in zip(requests, ("Ola", "Pat"), strict=True):
            assert request["Subject"] == "A request to join Tuesday Grief Circle"
            assert f"{name} asks to join Tuesday Grief Circle" in text(request)
            assert f"http://testserver/groups/{SLUG}/members" in text(request)
            assert address(name) not in everything(request).lower()

    fay.post(f"/groups/{SLUG}/members",
             {"action": "approve", "account_id": str(account_id(run_db, "Ola"))},
             page=f"/groups/{SLUG}/members")
    cy.post(f"/groups/{SLUG}/members",
            {"action": "decline", "account_id": str(account_id(run_db, "Pat"))},
            page=f"/groups/{SLUG}/members")
    approved = mail_to(smtp_server, "Ola", "You are a member of Tuesday Grief Circle now")
    assert "approved your request" in text(approved) and AGREEMENTS in text(approved)
    declined = mail_to(smtp_server, "Pat", "Your request to join Tuesday Grief Circle")
    assert "declined your request" in text(declined)
    assert_addresses_private(smtp_server, ["Fay", "Cy", "Ola", "Pat"])


def test_joining_an_open_group_brings_a_welcome_with_its_agreements(fay, visitor, smtp_server):
    member(visitor, "Ada")
    welcome = mail_to(smtp_server, "Ada", "Welcome to Tuesday Grief Circle")
    assert AGREEMENTS in text(welcome)
    assert f"http://testserver/groups/{SLUG}" in text(welcome)
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'<a href="http://testserver/groups/{SLUG}">' in welcome.get_body(
        ("html",)).get_content()


# Meetings -----------------------------------------------------------------------------

ONLINE = "https://meet.example.org/room-7f3a9c"


def calendar_of(message: EmailMessage) -> Calendar:
    [ics] = [part for part in message.iter_attachments()
             if part.get_content_type() == "text/calendar"]
    return Calendar.from_ical(ics.get_payload(decode=True))


def test_an_rsvp_is_confirmed_with_a_calendar_file_of_that_occurrence(fay, visitor,
                                                                      smtp_server):
    event_id = schedule(fay, repeat="weekly", format="hybrid", online_url=ONLINE)
    ada = member(visitor, "Ada")
    second = FIRST + timedelta(weeks=1)
    rsvp(ada, event_id, on=second)
    confirmed = mail_to(smtp_server, "Ada", "You are going: Evening circle")
    assert f"{second:%A} {second.day} {second:%B %Y}" in confirmed["Subject"]
    assert f"{second:%a} {second.day} {second:%b %Y, %H:%M}–20:30" in text(confirmed)
    [meeting] = calendar_of(confirmed).walk("VEVENT")
    assert meeting.start == second.replace(tzinfo=ZoneInfo("Europe/London"))
    assert meeting.end == meeting.start + timedelta(minutes=90)
    assert str(meeting["SUMMARY"]) == "Evening circle"
    assert ONLINE in str(meeting["DESCRIPTION"])  # she is a member: only members answer
    assert key(second) in str(meeting["UID"])
    assert calendar_of(confirmed).walk("VTIMEZONE")


def test_a_waitlisted_member_is_mailed_when_a_place_opens_up(fay, visitor, smtp_server):
    event_id = schedule(fay, capacity="1")
    ada, ben = member(visitor, "Ada"), member(visitor, "Ben")
    rsvp(ada, event_id)
    rsvp(ben, event_id)
    waiting = mail_to(smtp_server, "Ben", "On the waiting list: Evening circle")
    assert not list(waiting.iter_attachments())
    rsvp(ada, event_id, "no")
    promoted = mail_to(smtp_server, "Ben", "A place opened up")
    assert "you are going" in text(promoted)
    [meeting] = calendar_of(promoted).walk("VEVENT")
    assert meeting.start == FIRST.replace(tzinfo=ZoneInfo("Europe/London"))


def test_a_moved_then_cancelled_meeting_is_told_to_all_going_or_waiting_in_their_language(
        fay, visitor, smtp_server):
    zone = ZoneInfo("America/New_York")
    event_id = schedule(fay, capacity="1", timezone="America/New_York")
    ada, udo = member(visitor, "Ada"), member(visitor, "Udo", "de")
    rsvp(ada, event_id)
    rsvp(udo, event_id)  # waitlisted
    moved = FIRST + timedelta(days=1, hours=1, minutes=30)
    r = fay.post(f"/events/{event_id}/occurrence",
                 {"on": key(FIRST), "action": "move", "new_start": key(moved)})
    assert r.status_code == 303

    english = mail_to(smtp_server, "Ada", "Moved: Evening circle")
    was_zone, new_zone = FIRST.replace(tzinfo=zone).tzname(), moved.replace(tzinfo=zone).tzname()
    assert (f"on {FIRST:%a} {FIRST.day} {FIRST:%b %Y, 19:00}–20:30 {was_zone}"
            " (America/New_York) is moved") in text(english)
    assert (f"now on {moved:%a} {moved.day} {moved:%b %Y, 20:30}–22:00 {new_zone}"
            " (America/New_York)") in text(english)
    german = mail_to(smtp_server, "Udo", "Evening circle")
    german_time = format_datetime(moved, "EEE, d. MMMM y, HH:mm", locale="de")
    assert f"{german_time}–22:00 {new_zone} (America/New_York)" in text(german)
    assert '<html lang="de">' in german.get_body(("html",)).get_content()

    fay.post(f"/events/{event_id}/occurrence", {"on": key(FIRST), "action": "cancel"})
    for name, subject, says in (("Ada", "Cancelled: Evening circle", "is cancelled"),
                                ("Udo", "Abgesagt: Evening circle", "abgesagt")):
        cancelled = mail_to(smtp_server, name, subject)
        assert says in text(cancelled)
    assert_addresses_private(smtp_server, ["Fay", "Ada", "Udo"])


def test_a_series_edited_in_time_or_cancelled_is_told_and_a_new_title_is_not(
        fay, visitor, smtp_server):
    event_id = schedule(fay, repeat="weekly")
    ada = member(visitor, "Ada")
    rsvp(ada, event_id)
    mail_to(smtp_server, "Ada", "You are going")
    fay.post(f"/events/{event_id}/edit", meeting_form(repeat="weekly", title="Renamed"),
             page=f"/events/{event_id}/edit")
    fay.post(f"/events/{event_id}/edit",
             meeting_form(repeat="weekly", title="Renamed", place="The garden room"),
             page=f"/events/{event_id}/edit")
    changed = mail_to(smtp_server, "Ada", "Changed: Renamed")
    assert "The garden room" in text(changed)
    fay.post(f"/events/{event_id}/cancel", {"action": "cancel", "confirmed": "yes"})
    mail_to(smtp_server, "Ada", "Cancelled: every meeting of Renamed")
    assert count_of(smtp_server, "Ada", "Changed") == 1


# Moderation ---------------------------------------------------------------------------

def test_a_report_and_a_peers_flag_reach_the_admins(fay, visitor, run_db, smtp_server):
    admin_id = run_db(lambda db: accounts.first_admin(db)).id
    run_db(lambda db: accounts.update_profile(db, admin_id, display_name="Admin",
                                              email=address("Admin")))
    ada = member(visitor, "Ada")
    r = ada.post(f"/groups/{SLUG}/report", {"reason": "spam", "comment": ""},
                 page=f"/groups/{SLUG}/report")
    assert r.status_code == 200
    local = mail_to(smtp_server, "Admin", "New report about Tuesday Grief Circle")
    assert "A member reported" in text(local) and "Spam or advertising" in text(local)
    assert "http://testserver/admin/reports" in text(local)

    group_id = run_db(lambda db: groups.get_group(db, SLUG)).id
    run_db(lambda db: moderation.record_flag(
        db, flag_id="https://peer.example/flags/1", peer_host="peer.example", body="{}",
        group_id=group_id, event_id=None, target_name="Tuesday Grief Circle",
        reason=ReportReason.UNSAFE, comment=""))
    forwarded = wait_for(lambda: len(inbox(smtp_server, "Admin")) == 2 and
                         inbox(smtp_server, "Admin")[1], "the forwarded report")
    assert "The admins of peer.example reported" in text(forwarded)
    assert_addresses_private(smtp_server, ["Fay", "Ada", "Admin"])


def test_the_review_notices_are_written_from_the_data_recorded_with_them(
        fay, run_db, smtp_server):
    admin_id = run_db(lambda db: accounts.first_admin(db)).id
    run_db(lambda db: accounts.update_profile(db, admin_id, display_name="Admin",
                                              email=address("Admin")))
    fay_id, group_id = account_id(run_db, "Fay"), run_db(lambda db: groups.get_group(db, SLUG)).id
    run_db(lambda db: accounts.create_account(  # its admins are told in its transaction
        db, email=address("Ivy"), display_name="Ivy", password_hash=None,
        status=AccountStatus.PENDING, join_reason="A friend told me about the grief circle."))

    async def record(db):
        async with db.transaction() as conn:
            await record_notice(conn, "group_review", admin_id, group_id=group_id)
            await record_notice(conn, "group_approved", fay_id, group_id=group_id)
            await record_notice(conn, "group_refused", fay_id, group_id=group_id,
                                reason="Please add a contact address.")

    run_db(record)
    review = mail_to(smtp_server, "Admin", "Tuesday Grief Circle waits for approval")
    assert "http://testserver/admin/groups" in text(review)
    account = mail_to(smtp_server, "Admin", "A new account waits for approval")
    assert "Ivy asks for an account" in text(account)
    assert "A friend told me about the grief circle." in text(account)
    assert "http://testserver/admin/accounts" in text(account)
    assert address("Ivy") not in everything(account).lower()
    mail_to(smtp_server, "Fay", "Tuesday Grief Circle is approved as a public group")
    refused = mail_to(smtp_server, "Fay", "Tuesday Grief Circle is not approved")
    assert "Please add a contact address." in text(refused)


# Preferences --------------------------------------------------------------------------

def test_the_preferences_page_saves_each_choice_and_needs_the_csrf_token(fay, visitor,
                                                                          run_db):
    ada = register(visitor, "Ada")
    page = ada.get("/account/mail").text
    assert 'name="kinds" value="rsvp_confirmed" checked' in page
    assert 'name="reminders" value="yes" aria-describedby="h-reminders">' in page  # off
    assert "07:00 UTC" in page and 'value="report"' not in page  # admins' kinds: admins only
    assert 'href="/account/mail"' in ada.get("/account").text
    chosen = [k for k in notifier.KINDS if k not in ("meeting_changed", "meeting_reminder")
              and notifier.KINDS[k].audience != "admin"]
    r = ada.post("/account/mail", {"kinds": chosen, "reminders": "yes", "delivery": "digest"},
                 page="/account/mail", follow=True)
    assert "Your mail settings are saved." in r.text
    assert 'name="kinds" value="meeting_changed">' in r.text
    assert 'name="reminders" value="yes" aria-describedby="h-reminders" checked' in r.text
    stored = run_db(lambda db: db.fetchall(
        "SELECT p.digest, p.reminders, k.kind FROM mail_preferences p"
        " JOIN mail_kinds_off k USING (account_id)"))
    assert [tuple(row) for row in stored] == [(1, 1, "meeting_changed")]
    refused = ada.request("POST", "/account/mail", data={"delivery": "each"},
                          follow_redirects=False)
    assert refused.status_code == 403


def test_a_kind_turned_off_is_not_sent(fay, visitor, run_db, smtp_server):
    event_id = schedule(fay, repeat="weekly")
    ada = member(visitor, "Ada")
    mail_to(smtp_server, "Ada", "Welcome")
    on = [k for k in notifier.KINDS if k not in ("rsvp_confirmed", "meeting_reminder")
          and notifier.KINDS[k].audience != "admin"]
    ada.post("/account/mail", {"kinds": on, "delivery": "each"}, page="/account/mail")
    rsvp(ada, event_id)
    fay.post(f"/events/{event_id}/occurrence", {"on": key(FIRST), "action": "cancel"})
    mail_to(smtp_server, "Ada", "Cancelled: Evening circle")  # recorded after the RSVP
    assert count_of(smtp_server, "Ada", "You are going") == 0
    assert pending_notices(run_db) == 0


def test_the_digest_gathers_a_days_notices_into_one_message(fay, visitor, run_db, smtp_server,
                                                           clock, data_dir):
    event_id = schedule(fay, repeat="weekly")
    ada = register(visitor, "Ada")
    ada.post("/account/mail", {"kinds": list(notifier.KINDS), "delivery": "digest"},
             page="/account/mail")
    join(ada)
    rsvp(ada, event_id)
    fay.post(f"/events/{event_id}/occurrence",
             {"on": key(FIRST), "action": "move", "new_start": key(FIRST + timedelta(hours=1))})
    # A moved meeting cannot wait for tomorrow's digest: it comes at once.
    moved = mail_to(smtp_server, "Ada", "Moved: Evening circle")
    member(visitor, "Ben")  # not on the digest: mailed at once, after Ada's were looked at
    mail_to(smtp_server, "Ben", "Welcome")
    assert inbox(smtp_server, "Ada") == [moved]
    assert pending_notices(run_db) == 2

    clock[0] = datetime.combine(clock[0].date() + timedelta(days=1), time(7, 0, 30), UTC)
    digest = mail_to(smtp_server, "Ada", "Your daily summary: 2 messages")
    body = text(digest)
    for subject in ("== Welcome to Tuesday Grief Circle ==", "== You are going: Evening"):
        assert subject in body
    assert "Moved" not in body
    assert body.count("Hello Ada") == 1
    assert len(calendar_of(digest).walk("VEVENT")) == 1
    token = unsubscribe_path(digest).rsplit("/", 1)[1]
    assert read_unsubscribe_token(load_config(data_dir).secret_key, token) == (
        account_id(run_db, "Ada"), "all")
    assert len(inbox(smtp_server, "Ada")) == 2 and pending_notices(run_db) == 0


def test_the_digest_hour_is_seven_utc():
    assert digest_due_before(datetime(2026, 3, 3, 6, 59, tzinfo=UTC)) == datetime(
        2026, 3, 2, 7, tzinfo=UTC)
    assert digest_due_before(datetime(2026, 3, 3, 7, 0, tzinfo=UTC)) == datetime(
        2026, 3, 3, 7, tzinfo=UTC)


def test_the_reminder_goes_once_the_day_before_to_members_who_chose_it(
        fay, visitor, run_db, smtp_server, clock):
    event_id = schedule(fay, repeat="weekly")
    ada, ben = member(visitor, "Ada"), member(visitor, "Ben")
    ada.post("/account/mail", {"kinds": list(notifier.KINDS), "reminders": "yes",
                               "delivery": "each"}, page="/account/mail")
    starts = FIRST.replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)

    clock[0] = starts - timedelta(hours=26)  # too early
    rsvp(ada, event_id)
    rsvp(ben, event_id)
    mail_to(smtp_server, "Ben", "You are going")
    mail_to(smtp_server, "Ada", "You are going")

    clock[0] = starts - timedelta(hours=24, minutes=30)
    reminder = mail_to(smtp_server, "Ada", "Tomorrow: Evening circle")
    assert f"{FIRST:%a} {FIRST.day} {FIRST:%b %Y, %H:%M}" in text(reminder)

    clock[0] = starts - timedelta(hours=24, minutes=10)  # still the day before
    rsvp(ada, event_id, on=FIRST + timedelta(weeks=1))
    wait_for(lambda: count_of(smtp_server, "Ada", "You are going") == 2,
             "the second confirmation")
    assert count_of(smtp_server, "Ada", "Tomorrow") == 1
    assert count_of(smtp_server, "Ben", "Tomorrow") == 0
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM reminders_sent")) == 1


# Unsubscribing ------------------------------------------------------------------------

def test_unsubscribing_from_the_page_turns_the_kind_off(fay, visitor, run_db, smtp_server):
    event_id = schedule(fay, repeat="weekly")
    ada = member(visitor, "Ada")
    rsvp(ada, event_id)
    path = unsubscribe_path(mail_to(smtp_server, "Ada", "You are going"))
    stranger = visitor()  # not logged in: the link is enough
    page = stranger.get(path)
    assert page.status_code == 200 and "Stop this mail" in page.text
    assert "when you say you are coming to a meeting" in page.text
    done = stranger.post(path, page=path)
    assert done.status_code == 200 and "Done" in done.text
    rsvp(ada, event_id, on=FIRST + timedelta(weeks=1))
    fay.post(f"/events/{event_id}/occurrence", {"on": key(FIRST), "action": "cancel"})
    mail_to(smtp_server, "Ada", "Cancelled: Evening circle")
    assert count_of(smtp_server, "Ada", "You are going") == 1


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"),
    ("multipart/form-data; boundary=x",
     (b'--x\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
      b"One-Click\r\n--x--\r\n")),
])
def test_a_one_click_unsubscribe_needs_no_cookie_nor_csrf_token(
        fay, visitor, run_db, smtp_server, content_type, body):
    event_id = schedule(fay, repeat="weekly")
    ada = member(visitor, "Ada")
    rsvp(ada, event_id)
    confirmed = mail_to(smtp_server, "Ada", "You are going")
    assert confirmed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    provider = visitor()  # what a mail provider sends: no cookies, no token
    assert not provider.cookies
    r = provider.request("POST", unsubscribe_path(confirmed), content=body,
                         headers={"Content-Type": content_type})
    assert r.status_code == 200 and "Done" in r.text
    off = run_db(lambda db: db.fetchall("SELECT account_id, kind FROM mail_kinds_off"))
    assert [tuple(row) for row in off] == [(account_id(run_db, "Ada"), "rsvp_confirmed")]
    rsvp(ada, event_id, on=FIRST + timedelta(weeks=1))
    fay.post(f"/events/{event_id}/occurrence", {"on": key(FIRST), "action": "cancel"})
    mail_to(smtp_server, "Ada", "Cancelled: Evening circle")
    assert count_of(smtp_server, "Ada", "You are going") == 1


@pytest.mark.parametrize("path", ["/account/mail", "/unsubscribe", "/unsubscribe/a/b",
                                  "/unsubscribed/abc", f"/groups/{SLUG}/join"])
def test_every_other_path_still_needs_the_csrf_token(fay, visitor, path):
    r = fay.request("POST", path, content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False)
    assert r.status_code == 403


def test_a_tampered_or_foreign_token_is_400_and_changes_nothing(fay, visitor, run_db,
                                                                smtp_server, data_dir):
    event_id = schedule(fay)
    ada = member(visitor, "Ada")
    rsvp(ada, event_id)
    path = unsubscribe_path(mail_to(smtp_server, "Ada", "You are going"))
    token = path.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    other_account = unsubscribe_token("another node's key", account_id(run_db, "Ada"),
                                      "rsvp_confirmed")
    unknown_kind = unsubscribe_token(load_config(data_dir).secret_key,
                                     account_id(run_db, "Ada"), "everything_forever")
    for bad in (tampered, other_account, unknown_kind, "garbage"):
        page = visitor().get(f"/unsubscribe/{bad}")
        assert page.status_code == 400 and "not valid" in page.text
        assert "Stop this mail" not in page.text
        r = visitor().request("POST", f"/unsubscribe/{bad}",
                              content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM mail_kinds_off")) == 0
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM mail_preferences")) == 0


# Nothing lost, nothing leaked -----------------------------------------------------------

def test_a_notice_recorded_in_a_transaction_that_rolls_back_sends_nothing(
        fay, visitor, run_db, smtp_server):
    ada = register(visitor, "Ada")
    ada_id = account_id(run_db, "Ada")
    group_id = run_db(lambda db: groups.get_group(db, SLUG)).id

    async def change_that_fails(db):
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await record_notice(conn, "join_declined", ada_id, group_id=group_id)
                raise RuntimeError("the change failed")

    run_db(change_that_fails)
    join(ada)
    mail_to(smtp_server, "Ada", "Welcome")
    assert subjects(smtp_server, "Ada") == ["Welcome to Tuesday Grief Circle"]
    assert pending_notices(run_db) == 0

"""Agreements written together, through the real app: versions, proposals shown as a
diff, discussion, objections, adoption by consent or by a facilitator, and members
accepting a new version. None of it reaches visitors or peers."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from node.agreement_diff import word_diff
from node.db import stamp
from node.domain import AgreementDecision, Practice
from node.notifier import KINDS
from node.storage import accounts, agreements, groups
from node.storage.practice import save_practice
from tests.helpers import group_form, wait_for

SLUG = "tuesday-grief-circle"
FIRST = "1. What is said here stays here."
CHANGED = "1. What is said here stays here.\n2. We listen without fixing."
AP = {"Accept": "application/activity+json"}
PAGE = f"/groups/{SLUG}/agreements"


def register(visitor, name: str):
    b = visitor()
    b.register(name, f"{name.lower()}@example.org")
    return b


def join(b) -> None:
    r = b.post(f"/groups/{SLUG}/join", {"accept_agreements": "yes"}, page=f"/groups/{SLUG}")
    assert r.status_code == 303, r.text


@pytest.fixture
def fay(visitor, open_registration):
    """The facilitator of an open public group with agreements (version 1)."""
    b = register(visitor, "Fay")
    assert b.post("/groups/new", group_form(agreements=FIRST),
                  page="/groups/new").status_code == 303
    return b


@pytest.fixture
def ada(visitor, fay):
    b = register(visitor, "Ada")
    join(b)
    return b


@pytest.fixture
def ben(visitor, fay):
    b = register(visitor, "Ben")
    join(b)
    return b


def account_id(run_db, name: str) -> int:
    return run_db(lambda db: accounts.find_account(db, f"{name.lower()}@example.org")).id


def group_id(run_db) -> int:
    return run_db(lambda db: groups.get_group(db, SLUG)).id


def propose(b, text: str = CHANGED, reason: str = "Listening matters.", base: str = "1"):
    return b.post(f"{PAGE}/propose", {"text": text, "reason": reason, "base_version": base},
                  page=f"{PAGE}/propose")


def proposed(b, **kwargs) -> str:
    r = propose(b, **kwargs)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def act(b, url: str, action: str, **fields: str):
    return b.post(url, {"action": action, **fields}, page=url)


def proposal_row(run_db, url: str):
    proposal_id = int(url.rsplit("/", 1)[1])
    return run_db(lambda db: db.fetchone("SELECT * FROM agreement_proposals WHERE id = ?",
                                         (proposal_id,)))


def close_discussion(run_db) -> int:
    """The discussion period is over: settle as the worker does a week later."""
    later = datetime.now(UTC) + timedelta(days=8)
    return run_db(lambda db: agreements.settle_due(db, later))


def accepted(run_db, name: str) -> int:
    """The version of the agreements ``name`` last accepted."""
    member_id, gid = account_id(run_db, name), group_id(run_db)
    return run_db(lambda db: agreements.accepted_version(db, gid, member_id))


def agreements_now(run_db) -> str:
    return run_db(lambda db: groups.get_group(db, SLUG)).agreements


# Versions --------------------------------------------------------------------------

def test_a_new_group_has_version_1_and_an_edit_writes_the_next(fay, ada, run_db):
    gid = group_id(run_db)
    assert [(v.number, v.text, v.how) for v in run_db(lambda db: agreements.versions(db, gid))] \
        == [(1, FIRST, "written")]
    form = group_form(agreements=CHANGED)
    assert fay.post(f"/groups/{SLUG}/edit", form, page=f"/groups/{SLUG}/edit"
                    ).status_code == 303
    fay.post(f"/groups/{SLUG}/edit", form, page=f"/groups/{SLUG}/edit")  # no change: no version
    found = run_db(lambda db: agreements.versions(db, gid))
    assert [(v.number, v.text, v.how) for v in found] == [(2, CHANGED, "written"),
                                                         (1, FIRST, "written")]
    # The facilitator who wrote it accepted it; Ada is asked.
    assert accepted(run_db, "Fay") == 2
    assert "changed since you accepted them" not in fay.get(f"/groups/{SLUG}").text
    assert "changed since you accepted them" in ada.get(f"/groups/{SLUG}").text


def test_history_and_version_pages_show_each_version_with_its_diff(fay, ada, run_db):
    fay.post(f"/groups/{SLUG}/edit", group_form(agreements=CHANGED), page=f"/groups/{SLUG}/edit")
    page = ada.get(PAGE).text
    assert "Version 2" in page and "Version 1" in page and "written by a facilitator" in page
    assert f'href="{PAGE}/versions/1"' in page and f'href="{PAGE}/versions/2"' in page
    second = ada.get(f"{PAGE}/versions/2").text
    assert "What changed from version 1" in second
    assert re.search(r'<ins><span class="visually-hidden">added: </span>[^<]*We listen',
                     second)
    first = ada.get(f"{PAGE}/versions/1").text
    assert "The first version" in first and "<del>" not in first
    assert ada.get(f"{PAGE}/versions/3").status_code == 404


# Proposals -------------------------------------------------------------------------

def test_a_member_proposes_and_members_see_the_diff_reason_and_proposer(fay, ada, ben, run_db):
    url = proposed(ada)
    row = proposal_row(run_db, url)
    assert (row["text"], row["reason"], row["base_version"], row["state"]) == (
        CHANGED, "Listening matters.", 1, "open")
    created = datetime.strptime(row["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    closes = datetime.strptime(row["closes_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert closes - created == timedelta(days=7)  # the default discussion period
    page = ben.get(url).text
    assert '<ins><span class="visually-hidden">added: </span>' in page
    assert "We listen without fixing." in page
    assert "Listening matters." in page and "Ada" in page
    assert "If no member objects by the end of the discussion" in page
    # Listed on the agreements page, and pointed to from the group page.
    assert url in ben.get(PAGE).text
    assert "1 change proposed" in ben.get(f"/groups/{SLUG}").text


def test_the_proposal_form_is_prefilled_and_refuses_an_unchanged_text(fay, ada, run_db):
    form = ada.get(f"{PAGE}/propose").text
    assert FIRST in form and 'name="base_version" value="1"' in form
    r = propose(ada, text=FIRST + "\n")
    assert r.status_code == 400
    assert "This is the text of the agreements as they are now" in r.text
    r = propose(ada, text="x" * 10001)
    assert r.status_code == 400 and "10000 characters or fewer" in r.text
    r = propose(ada, reason="y" * 2001)
    assert r.status_code == 400 and "2000 characters or fewer" in r.text
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM agreement_proposals")) == 0


def test_members_discuss_with_sanitized_markdown_and_names(fay, ada, ben, run_db):
    url = proposed(ada)
    r = act(ben, url, "comment", body="I **agree**. <script>alert(1)</script>")
    assert r.status_code == 303
    page = ben.get(url).text
    assert "<strong>agree</strong>" in page and "<script>alert" not in page
    assert "Ben" in page[page.index("comments-heading"):]
    assert act(ben, url, "comment", body="z" * 2001).status_code == 400
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM agreement_comments")) == 1


def test_the_diff_escapes_what_a_member_wrote(fay, ada, ben):
    url = proposed(ada, text=FIRST + '\n<img src=x onerror="alert(1)"> <b>bold</b>')
    page = ben.get(url).text
    assert "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;img src=x" in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_word_diff_marks_removed_and_added_words_line_by_line():
    diff = word_diff("We meet on Tuesday.\nTea is free.", "We meet on Thursday.\nTea is free.")
    assert (diff.removed, diff.added) == (1, 1)
    first, second = diff.lines
    assert [(p.change, p.text) for p in first] == [
        ("same", "We meet on "), ("removed", "Tuesday."), ("added", "Thursday.")]
    assert [(p.change, p.text) for p in second] == [("same", "Tea is free.")]
    assert not word_diff("a\r\nb", "a\nb").changed


# Objections and consent --------------------------------------------------------------

def test_an_objection_blocks_consent_until_it_is_withdrawn(fay, ada, ben, run_db):
    url = proposed(ada)
    assert act(ben, url, "object", objection="Too soon, let us talk first.").status_code == 303
    page = ben.get(url).text
    assert "You object to this change." in page and "1 objection stands" in page
    # Others see the reason and the count, never who.
    seen = fay.get(url).text
    assert "Too soon, let us talk first." in seen and "1 objection stands" in seen
    assert "You object" not in seen
    assert "Ben" not in seen[seen.index("reasons-heading"):seen.index("comments-heading")]

    assert close_discussion(run_db) == 0
    assert proposal_row(run_db, url)["state"] == "open" and agreements_now(run_db) == FIRST
    assert "While an objection stands" in ada.get(url).text

    assert act(ben, url, "withdraw_objection").status_code == 303
    assert run_db(lambda db: db.fetchval("SELECT count(*) FROM agreement_objections")) == 0
    assert close_discussion(run_db) == 1
    row = proposal_row(run_db, url)
    assert row["state"] == "adopted" and agreements_now(run_db) == CHANGED
    gid = group_id(run_db)
    latest = run_db(lambda db: agreements.versions(db, gid))[0]
    assert (latest.number, latest.how, latest.text) == (2, "consent", CHANGED)
    assert "adopted by consent" in ada.get(PAGE).text
    # The adopted text is the group's public agreements, served to peers as ever.
    assert fay.get(f"/groups/{SLUG}", headers=AP).json()["agreements"] == CHANGED


def test_consent_waits_for_the_end_of_the_discussion(fay, ada, run_db):
    url = proposed(ada)
    assert run_db(lambda db: agreements.settle_due(db, datetime.now(UTC))) == 0
    assert proposal_row(run_db, url)["state"] == "open"


def test_the_proposer_withdraws_and_a_facilitator_declines(fay, ada, ben, run_db):
    url = proposed(ada)
    assert act(ben, url, "withdraw").status_code == 303  # not Ben's to withdraw
    assert proposal_row(run_db, url)["state"] == "open"
    act(ada, url, "withdraw")
    assert proposal_row(run_db, url)["state"] == "withdrawn"
    second = proposed(ada)
    assert act(ben, second, "decline").status_code == 403
    act(fay, second, "decline")
    assert proposal_row(run_db, second)["state"] == "declined"
    assert close_discussion(run_db) == 0 and agreements_now(run_db) == FIRST


def test_facilitator_mode_adopts_or_declines_at_any_time(fay, ada, ben, run_db):
    gid = group_id(run_db)
    run_db(lambda db: save_practice(db, gid, Practice(
        agreement_decision=AgreementDecision.FACILITATOR)))
    url = proposed(ada)
    act(ben, url, "object", objection="Not like this.")
    assert close_discussion(run_db) == 0  # nothing by consent in this mode
    page = fay.get(url).text
    assert "Adopt this change" in page and "Not like this." in page
    assert act(ben, url, "adopt").status_code == 403
    assert act(fay, url, "adopt").status_code == 303
    assert proposal_row(run_db, url)["state"] == "adopted"
    latest = run_db(lambda db: agreements.versions(db, gid))[0]
    assert (latest.number, latest.how) == (2, "facilitator")
    assert "adopted by a facilitator after discussion" in ada.get(PAGE).text
    declined = proposed(ada, text=CHANGED + "\n3. Phones away.", base="2")
    act(fay, declined, "decline")
    assert proposal_row(run_db, declined)["state"] == "declined"
    assert agreements_now(run_db) == CHANGED


def test_adoption_supersedes_proposals_on_the_older_version(fay, ada, ben, run_db):
    first = proposed(ada)
    other = proposed(ben, text=FIRST + "\n2. Phones away.")
    assert close_discussion(run_db) == 1
    assert proposal_row(run_db, first)["state"] == "adopted"
    assert proposal_row(run_db, other)["state"] == "superseded"
    # A text proposed against the old version is refused, kept in the form.
    r = propose(ben, text=FIRST + "\n2. Phones away.", base="1")
    assert r.status_code == 400 and "The agreements changed while you were writing" in r.text


# Accepting a new version -------------------------------------------------------------

def test_a_member_under_an_older_version_is_asked_and_accepting_records_it(
        fay, ada, ben, run_db):
    url = proposed(ada)
    close_discussion(run_db)
    assert accepted(run_db, "Ben") == 1
    page = ben.get(f"/groups/{SLUG}").text
    box = page[page.index("agreements-ask-heading"):page.index("join-heading")]
    assert "agreements changed since you accepted them" in box
    assert "We listen without fixing." in box and "<ins>" in box
    assert "I accept the new agreements" in box
    # The proposer accepted their own text when it was adopted.
    assert "agreements-ask-heading" not in ada.get(f"/groups/{SLUG}").text
    r = ben.post(f"{PAGE}/accept", {"version": "2"}, page=f"/groups/{SLUG}")
    assert r.status_code == 303
    assert accepted(run_db, "Ben") == 2
    assert "agreements-ask-heading" not in ben.get(f"/groups/{SLUG}").text
    assert proposal_row(run_db, url)["state"] == "adopted"


def test_a_new_member_joins_at_the_current_version(fay, ada, visitor, run_db):
    proposed(ada)
    close_discussion(run_db)
    cai = register(visitor, "Cai")
    join(cai)
    assert accepted(run_db, "Cai") == 2
    page = cai.get(f"/groups/{SLUG}").text
    assert "agreements-ask-heading" not in page
    assert f'href="{PAGE}"' in page


# Notices -----------------------------------------------------------------------------

def mails_to(data_dir, name: str) -> list:
    found = []
    for eml in sorted((data_dir / "mail").glob("*.eml")):
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        if message["To"] == f"{name.lower()}@example.org":
            found.append(message)
    return found


def mail_with(data_dir, name: str, subject: str):
    return wait_for(lambda: next((m for m in mails_to(data_dir, name)
                                  if subject in m["Subject"]), None), f"{subject} to {name}")


def test_members_are_told_of_a_proposal_and_of_a_new_version(fay, ada, ben, run_db, data_dir):
    url = proposed(ada)
    told = mail_with(data_dir, "Ben",
                     "A change to the agreements of Tuesday Grief Circle is proposed")
    body = told.get_body(("plain",)).get_content()
    assert "Ada proposes a change" in body and url in body and "UTC" in body
    close_discussion(run_db)
    changed = mail_with(data_dir, "Fay", "The agreements of Tuesday Grief Circle changed")
    assert "We listen without fixing." in changed.get_body(("plain",)).get_content()
    # The proposer is not told of their own proposal, nor asked to accept their own text.
    assert not [m for m in mails_to(data_dir, "Ada") if "agreements of" in m["Subject"]]
    assert KINDS["agreement_proposed"].audience == KINDS["agreements_changed"].audience \
        == "member"


# Who sees what -----------------------------------------------------------------------

def test_non_members_get_404_and_nothing_is_stored(fay, ada, visitor, run_db):
    url = proposed(ada)
    stranger = register(visitor, "Sam")
    anonymous = visitor()
    for who in (stranger, anonymous):
        for path in (PAGE, f"{PAGE}/versions/1", f"{PAGE}/propose", url):
            assert who.get(path).status_code == 404, path
    assert propose(stranger).status_code == 404
    assert act(stranger, url, "comment", body="hello").status_code == 404
    assert act(stranger, url, "object", objection="no").status_code == 404
    assert stranger.post(f"{PAGE}/accept", {"version": "1"},
                         page=f"/groups/{SLUG}").status_code == 404
    counts = run_db(lambda db: db.fetchone(
        "SELECT (SELECT count(*) FROM agreement_proposals),"
        " (SELECT count(*) FROM agreement_comments),"
        " (SELECT count(*) FROM agreement_objections)"))
    assert tuple(counts) == (1, 0, 0)
    assert "agreements-ask-heading" not in stranger.get(f"/groups/{SLUG}").text
    assert f'href="{PAGE}"' not in stranger.get(f"/groups/{SLUG}").text


def test_visitors_and_peers_never_see_proposals_comments_or_objections(
        fay, ada, ben, visitor, run_db):
    secret_text = FIRST + "\n2. Secretproposaltext stays with us."
    url = proposed(ada, text=secret_text, reason="Secretreason for it.")
    act(ben, url, "comment", body="Secretcomment here.")
    act(ben, url, "object", objection="Secretobjection reason.")
    secrets = ("Secretproposaltext", "Secretreason", "Secretcomment", "Secretobjection")
    anonymous = visitor()
    bodies = [anonymous.get(path).text for path in (
        f"/groups/{SLUG}", "/groups", "/", "/feed.atom", f"/groups/{SLUG}/events.ics")]
    bodies += [anonymous.get(path, headers=AP).text for path in (
        f"/groups/{SLUG}", f"/groups/{SLUG}/outbox?page=1", "/actor/outbox?page=1")]
    bodies += [row[0] for row in run_db(lambda db: db.fetchall("SELECT body FROM activities"))]
    for body in bodies:
        for secret in secrets:
            assert secret not in body
    # The adopted text is public only as the group's agreements, as before.
    act(ben, url, "withdraw_objection")
    close_discussion(run_db)
    actor = anonymous.get(f"/groups/{SLUG}", headers=AP).json()
    assert actor["agreements"] == secret_text
    public = anonymous.get(f"/groups/{SLUG}").text
    assert "Secretproposaltext" in public and "Secretreason" not in public
    assert "Secretcomment" not in public


def test_closes_at_in_the_past_is_settled_by_the_worker_clock(fay, ada, run_db):
    url = proposed(ada)
    proposal_id = int(url.rsplit("/", 1)[1])
    past = stamp(datetime.now(UTC) - timedelta(minutes=1))

    async def end(db):
        async with db.transaction() as conn:
            await conn.execute("UPDATE agreement_proposals SET closes_at = ? WHERE id = ?",
                               (past, proposal_id))
        return await agreements.settle_due(db, datetime.now(UTC))
    assert run_db(end) == 1
    assert agreements_now(run_db) == CHANGED

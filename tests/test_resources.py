"""A group's resources through the real app: members add them, the one who added one or a
facilitator changes it, only facilitators make one public, and the public page shows only
those, without names."""
from __future__ import annotations

import re

import pytest

from node.domain import NodeSettings, RegistrationMode, Visibility
from node.storage import groups
from node.storage.settings import save_settings
from tests.helpers import set_visibility
from tests.test_pulses import SLUG, group_started_by_fay, joined, register

RESOURCES = f"/groups/{SLUG}/resources"


@pytest.fixture
def facilitator(visitor, open_registration):
    return group_started_by_fay(visitor)


def resource(**overrides: str) -> dict[str, str]:
    form = {"kind": "hotline", "title": "Night line", "url": "https://nightline.example/",
            "note": "Open **every night** from 8pm."}
    form.update(overrides)
    return form


def add(b, **overrides: str) -> int:
    r = b.post(RESOURCES, resource(**overrides), page=RESOURCES)
    assert r.status_code == 303, r.text
    return newest(b)


def newest(b) -> int:
    return max(int(n) for n in re.findall(r"/resources/(\d+)/edit", b.get(RESOURCES).text))


def stored(run_db) -> list[dict]:
    return [dict(r) for r in run_db(lambda db: db.fetchall(
        "SELECT id, account_id, kind, title, url, note, public FROM group_resources"
        " ORDER BY id"))]


def test_member_adds_a_resource_members_see_it_with_who_and_when(facilitator, visitor, run_db):
    sam = joined(visitor, "Sam")
    r = sam.post(RESOURCES, resource(), page=RESOURCES)
    assert r.status_code == 303 and r.headers["location"] == RESOURCES
    [row] = stored(run_db)
    assert (row["kind"], row["title"], row["url"], row["public"]) == (
        "hotline", "Night line", "https://nightline.example/", 0)
    page = facilitator.get(RESOURCES).text
    assert '<a href="https://nightline.example/" rel="noopener noreferrer nofollow">Night line</a>' in page
    assert "<strong>every night</strong>" in page
    assert "Added by Sam on" in page and "Helplines" in page
    [added] = sam.get("/account/export").json()["resources_added"]
    assert (added["group_name"], added["title"]) == ("Tuesday Grief Circle", "Night line")


def test_crisis_notice_stays_on_top_of_the_resources(facilitator, run_db):
    run_db(lambda db: save_settings(db, NodeSettings(
        registration=RegistrationMode.OPEN, review_public_groups=False,
        require_verified_email=False, crisis_notice="In danger now? Call **999**.")))
    add(facilitator)
    page = facilitator.get(RESOURCES).text
    assert '<aside class="crisis"' in page
    assert page.index('<aside class="crisis"') < page.index("Night line")
    assert "<strong>999</strong>" in page


def test_a_bad_link_or_long_title_is_refused_and_the_values_kept(facilitator, visitor, run_db):
    sam = joined(visitor, "Sam")
    for fields, error in (
            ({"url": "javascript:alert(1)"}, "Enter a full link starting with https://"),
            ({"url": "ftp://files.example/x"}, "Enter a full link starting with https://"),
            ({"url": "https://x.example/" + "a" * 500}, "at most 500 characters"),
            ({"title": "T" * 121}, "Keep a title to 120 characters or fewer"),
            ({"title": ""}, "Enter a title."),
            ({"note": "n" * 1001}, "Keep the note to 1000 characters or fewer"),
            ({"kind": "gossip"}, "Choose what kind of resource it is.")):
        r = sam.post(RESOURCES, resource(**fields), page=RESOURCES)
        assert r.status_code == 400, fields
        assert error in r.text, fields
        assert 'value="Night line"' in r.text or "title" in fields
    assert stored(run_db) == []


def test_only_the_adder_or_a_facilitator_changes_a_resource(facilitator, visitor, run_db):
    sam, kim = joined(visitor, "Sam"), joined(visitor, "Kim")
    resource_id = add(sam)
    edit, delete = f"{RESOURCES}/{resource_id}/edit", f"{RESOURCES}/{resource_id}/delete"
    before = stored(run_db)
    assert f"/resources/{resource_id}/edit" not in kim.get(RESOURCES).text
    assert kim.get(edit).status_code == 403
    assert kim.post(edit, resource(title="Spam"), page=RESOURCES).status_code == 403
    assert kim.post(delete, {"confirmed": "yes"}, page=RESOURCES).status_code == 403
    assert stored(run_db) == before
    # The one who added it edits it; a facilitator may too.
    assert sam.post(edit, resource(title="Night line (Leith)"), page=edit).status_code == 303
    assert facilitator.post(edit, resource(title="Night line, Leith", kind="service"),
                            page=edit).status_code == 303
    assert [(r["title"], r["kind"]) for r in stored(run_db)] == [("Night line, Leith", "service")]
    # Deleting asks first, then deletes.
    asked = sam.post(delete, page=edit)
    assert asked.status_code == 200 and "Are you sure?" in asked.text
    assert stored(run_db) != []
    assert sam.post(delete, {"confirmed": "yes"}, page=edit).status_code == 303
    assert stored(run_db) == []


def test_an_edit_that_fails_keeps_the_values(facilitator, visitor, run_db):
    resource_id = add(facilitator)
    edit = f"{RESOURCES}/{resource_id}/edit"
    r = facilitator.post(edit, resource(title="Still here", url="not a link"), page=edit)
    assert r.status_code == 400
    assert 'value="Still here"' in r.text and 'value="not a link"' in r.text
    assert stored(run_db)[0]["title"] == "Night line"


def test_only_facilitators_make_a_resource_public(facilitator, visitor, run_db):
    sam = joined(visitor, "Sam")
    resource_id = add(sam)
    public = f"{RESOURCES}/{resource_id}/public"
    assert "Show on the public page" not in sam.get(RESOURCES).text
    assert sam.post(public, {"public": "yes"}, page=RESOURCES).status_code == 403
    assert stored(run_db)[0]["public"] == 0
    r = facilitator.post(public, {"public": "yes"}, page=RESOURCES)
    assert r.status_code == 303
    assert "Night line” now shows on the group" in facilitator.get(RESOURCES).text
    assert stored(run_db)[0]["public"] == 1
    # A member's edit of a public resource takes it back to members until a facilitator looks.
    edit = f"{RESOURCES}/{resource_id}/edit"
    assert sam.post(edit, resource(url="https://elsewhere.example/"), page=edit).status_code == 303
    assert stored(run_db)[0]["public"] == 0
    facilitator.post(public, {"public": "yes"}, page=RESOURCES)
    facilitator.post(edit, resource(note="Free and confidential."), page=edit)
    assert stored(run_db)[0]["public"] == 1
    assert facilitator.post(public, {"public": "no"}, page=RESOURCES).status_code == 303
    assert stored(run_db)[0]["public"] == 0


def test_group_page_shows_public_resources_to_everyone_without_names(facilitator, visitor,
                                                                     run_db):
    sam = joined(visitor, "Sam")
    shown_id = add(sam, title="Samaritans", note="Free, any time.")
    add(sam, title="Private reading list", kind="reading", url="")
    facilitator.post(f"{RESOURCES}/{shown_id}/public", {"public": "yes"}, page=RESOURCES)
    anonymous = visitor().get(f"/groups/{SLUG}").text
    assert "Samaritans" in anonymous and "Free, any time." in anonymous
    assert "Private reading list" not in anonymous
    assert "Sam" not in anonymous.replace("Samaritans", "")
    assert "All resources" not in anonymous
    assert "All resources (2)" in sam.get(f"/groups/{SLUG}").text


def test_the_resources_page_is_for_members(facilitator, visitor, run_db):
    add(facilitator, title="Kept inside")
    for outsider in (visitor(), register(visitor, "Olu")):
        r = outsider.get(RESOURCES, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/groups/{SLUG}#resources"
        assert "Kept inside" not in outsider.get(f"/groups/{SLUG}").text
    olu = register(visitor, "Ola")
    assert olu.post(RESOURCES, resource(), page="/groups").status_code == 403
    assert len(stored(run_db)) == 1
    # A private group's resources are not there at all for those outside it.
    group_id = run_db(lambda db: groups.get_group(db, SLUG)).id
    run_db(lambda db: set_visibility(db, group_id, Visibility.PRIVATE))
    assert visitor().get(RESOURCES).status_code == 404
    assert olu.get(RESOURCES).status_code == 404

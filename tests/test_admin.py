"""Admin screens through the real app: settings, accounts, approval, invites, suspension."""
from __future__ import annotations

import re

import pytest

from node.domain import AccountStatus, NodeSettings
from node.storage import accounts
from node.storage.settings import load_settings
from tests.helpers import group_form

PASSWORD = "correct horse battery"

SETTINGS_FORM = {
    "name": "Leith Peer Support",
    "description": "Groups for **Leith** and around.",
    "registration": "open",
    "default_language": "en",
    "crisis_notice": "If you are in crisis, call your local emergency number (999).",
}


def account_id(run_db, email: str) -> int:
    found = run_db(lambda db: accounts.find_account(db, email))
    assert found is not None, email
    return found.id


def act(admin, action: str, target_id: int, confirmed: bool = True):
    """An action on the accounts screen, confirmed when the screen asks first."""
    form = {"action": action, "account_id": str(target_id)}
    return admin.post("/admin/accounts", form | ({"confirmed": "yes"} if confirmed else {}),
                      page="/admin/accounts")


def set_registration(admin, mode: str) -> None:
    response = admin.post("/admin/settings", {**SETTINGS_FORM, "registration": mode},
                          page="/admin/settings")
    assert response.status_code == 200, response.text


def test_saved_settings_show_on_pages(admin, visitor):
    response = admin.post("/admin/settings", SETTINGS_FORM, page="/admin/settings")
    assert response.status_code == 200
    assert "The settings are saved." in response.text
    assert admin.post("/groups/new", group_form(), follow=True).status_code == 200

    anyone = visitor()
    home = anyone.get("/")
    assert "<title>Welcome · Leith Peer Support</title>" in home.text
    assert "<strong>Leith</strong>" in home.text
    assert 'lang="en"' in home.text
    group_page = anyone.get("/groups/tuesday-grief-circle")
    assert group_page.status_code == 200
    assert 'class="crisis"' in group_page.text
    assert "call your local emergency number (999)" in group_page.text


def test_bad_settings_rerender_with_errors_and_store_nothing(admin, run_db):
    before = run_db(load_settings)
    response = admin.post("/admin/settings", {
        **SETTINGS_FORM, "name": "", "default_language": "not a language",
        "registration": "everyone",
    }, page="/admin/settings")
    assert response.status_code == 400
    page = response.text
    assert re.search(r'<p class="error" id="e-name">Enter the node&#39;s name.</p>\s*'
                     r'<input id="f-name" name="name"', page)
    assert 'id="e-default_language"' in page and 'id="e-registration"' in page
    assert "Groups for **Leith** and around." in page  # the visitor's input is kept
    assert run_db(load_settings) == before


@pytest.mark.parametrize("path", ["/admin/settings", "/admin/accounts"])
def test_admin_pages_are_closed_to_members_and_anonymous(path, visitor, open_registration):
    anonymous = visitor()
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"

    member = visitor()
    member.register("River", "river@example.org")
    assert member.get(path).status_code == 403
    posted = member.post(path, {**SETTINGS_FORM, "action": "invite", "uses": "5"})
    assert posted.status_code == 403


def test_member_cannot_change_settings_by_post(visitor, open_registration, run_db):
    member = visitor()
    member.register("River", "river@example.org")
    assert member.post("/admin/settings", SETTINGS_FORM).status_code == 403
    assert run_db(load_settings).name == NodeSettings().name


def test_approval_registration_waits_for_an_admin(admin, visitor, run_db):
    set_registration(admin, "approval")
    newcomer = visitor()
    response = newcomer.post("/register", {"display_name": "Ash", "email": "ash@example.org",
                                           "password": PASSWORD, "reason": "A grief group."},
                             page="/register")
    assert response.status_code == 200
    assert "waiting for an admin" in response.text
    refused = newcomer.login("ash@example.org")
    assert refused.status_code == 403
    assert "waiting for an admin" in refused.text

    listing = admin.get("/admin/accounts").text
    assert listing.index("ash@example.org") < listing.index("Admin (you)")  # pending first
    assert act(admin, "approve", account_id(run_db, "ash@example.org")).status_code == 200
    assert newcomer.login("ash@example.org").status_code == 303
    assert newcomer.get("/account").status_code == 200


def test_rejecting_a_registration_deletes_the_pending_account(admin, visitor, run_db):
    set_registration(admin, "approval")
    newcomer = visitor()
    newcomer.post("/register", {"display_name": "Spam", "email": "spam@example.org",
                                "password": PASSWORD, "reason": "Buy now."}, page="/register")
    response = act(admin, "reject", account_id(run_db, "spam@example.org"))
    assert "rejected and removed" in response.text
    assert run_db(lambda db: accounts.find_account(db, "spam@example.org")) is None
    assert newcomer.login("spam@example.org").status_code == 400


def test_invite_registration_needs_a_valid_code_and_spends_it(admin, visitor):
    set_registration(admin, "invite")
    made = admin.post("/admin/accounts", {"action": "invite", "uses": "1"},
                      page="/admin/accounts")
    code = re.search(r"New invite code (\S+), for 1 person", made.text).group(1)
    assert f"<code>{code}</code>" in made.text  # listed as live

    def register(b, email: str, invite: str):
        return b.post("/register", {"display_name": "Kit", "email": email, "password": PASSWORD,
                                    "invite_code": invite}, page="/register")

    assert "Enter the invite code" in register(visitor(), "a@example.org", "").text
    wrong = register(visitor(), "b@example.org", "not-a-code")
    assert wrong.status_code == 400 and "not valid or has been used up" in wrong.text
    invited = visitor()
    assert register(invited, "c@example.org", code).status_code == 303
    assert invited.get("/account").status_code == 200
    again = register(visitor(), "d@example.org", code)
    assert again.status_code == 400 and "used up" in again.text
    assert f"<code>{code}</code>" not in admin.get("/admin/accounts").text


def test_invite_code_needs_a_sensible_number_of_uses(admin):
    response = admin.post("/admin/accounts", {"action": "invite", "uses": "0"},
                          page="/admin/accounts")
    assert response.status_code == 400
    assert 'id="e-uses"' in response.text and "from 1 to 100" in response.text
    assert "No invite codes are usable now." in response.text


def test_suspending_ends_the_members_session(admin, visitor, open_registration, run_db):
    member = visitor()
    member.register("River", "river@example.org")
    assert member.get("/account").status_code == 200
    river = account_id(run_db, "river@example.org")

    asked = act(admin, "suspend", river, confirmed=False)  # asks first, changes nothing
    assert "Are you sure?" in asked.text and 'name="confirmed" value="yes"' in asked.text
    assert member.get("/account").status_code == 200
    assert "suspended and logged out" in act(admin, "suspend", river).text
    assert member.get("/account", follow_redirects=False).status_code == 303
    assert "suspended" in member.login("river@example.org").text

    act(admin, "unsuspend", river)
    assert member.login("river@example.org").status_code == 303


def test_last_admin_cannot_be_revoked(admin, visitor, open_registration, run_db):
    me = run_db(accounts.first_admin)
    response = act(admin, "revoke", me.id)
    assert response.status_code == 400
    assert "only active admin" in response.text
    assert admin.get("/admin/settings").status_code == 200

    helper = visitor()
    helper.register("Noor", "noor@example.org")
    noor = account_id(run_db, "noor@example.org")
    assert "Noor is now an admin." in act(admin, "grant", noor).text
    assert helper.get("/admin/accounts").status_code == 200
    revoked = act(admin, "revoke", me.id)
    assert revoked.status_code == 303 and revoked.headers["location"] == "/account"
    assert admin.get("/admin/settings").status_code == 403
    assert act(helper, "revoke", noor).status_code == 400


def test_admin_cannot_suspend_themselves(admin, run_db):
    me = run_db(accounts.first_admin)
    response = act(admin, "suspend", me.id)
    assert response.status_code == 400
    assert run_db(lambda db: accounts.get_account(db, me.id)).status is AccountStatus.ACTIVE


def test_login_link_for_account_recovery_works_once(admin, visitor, open_registration, run_db):
    member = visitor()
    member.register("River", "river@example.org")
    response = act(admin, "link", account_id(run_db, "river@example.org"))
    link = re.search(r"<code>http://testserver(/login/link/[^<]+)</code>", response.text).group(1)
    assert link not in admin.get("/admin/accounts").text  # shown once only

    recovering = visitor()
    assert recovering.post(link, page=link).status_code == 303
    assert "River" in recovering.get("/account").text
    assert visitor().post(link, page=link).status_code == 400


def test_emails_are_listed_for_admins(admin, visitor, open_registration):
    visitor().register("River", "river@example.org")
    page = admin.get("/admin/accounts").text
    assert "river@example.org" in page
    assert page.count('name="csrf_token"') >= 4
    assert 'aria-label="Admin"' in page


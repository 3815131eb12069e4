"""Registration, login, sessions and account deletion through the real app."""
from __future__ import annotations

from node.storage import accounts
from tests.helpers import group_form


def test_open_registration_logs_the_member_in(visitor, open_registration):
    b = visitor()
    b.register("River", "river@example.org")
    page = b.get("/account")
    assert page.status_code == 200
    assert "River" in page.text


def test_registration_errors_sit_beside_fields_and_keep_values(visitor, open_registration, run_db):
    b = visitor()
    r = b.post("/register", {"display_name": "Kai", "email": "not-an-email",
                             "password": "short"}, page="/register")
    assert r.status_code == 400
    assert 'id="e-email"' in r.text and 'id="e-password"' in r.text
    assert 'value="Kai"' in r.text
    assert "short" not in r.text  # the password is never echoed back
    assert run_db(lambda db: accounts.find_account(db, "not-an-email")) is None


def test_duplicate_email_is_refused(visitor, open_registration):
    visitor().register("A", "same@example.org")
    r = visitor().post("/register", {"display_name": "B", "email": "SAME@example.org",
                                     "password": "correct horse battery"}, page="/register")
    assert r.status_code == 400
    assert "exists" in r.text


def test_login_and_logout_end_the_server_session(visitor, open_registration):
    visitor().register("Ash", "ash@example.org")
    b = visitor()
    assert b.login("ash@example.org").status_code == 303
    stolen = dict(b.cookies)
    assert b.get("/account").status_code == 200
    b.post("/logout", page="/account")
    assert b.get("/account", follow_redirects=False).status_code == 303
    # A copy of the old cookie is useless once logged out.
    thief = visitor()
    for name, value in stolen.items():
        thief.cookies.set(name, value)
    assert thief.get("/account", follow_redirects=False).status_code == 303


def test_login_issues_a_fresh_session(visitor, open_registration):
    """Session fixation: a cookie planted before login is not the one after."""
    visitor().register("Bo", "bo@example.org")
    b = visitor()
    b.get("/login")
    before = b.cookies.get("grassroots_session")
    b.login("bo@example.org")
    after = b.cookies.get("grassroots_session")
    assert before and after and before != after
    attacker = visitor()
    attacker.cookies.set("grassroots_session", before)
    assert attacker.get("/account", follow_redirects=False).status_code == 303


def test_wrong_password_is_refused_without_saying_which_part(visitor, open_registration):
    visitor().register("Cy", "cy@example.org")
    r = visitor().login("cy@example.org", "wrong password!")
    assert r.status_code == 400
    assert "email or password is not right" in r.text
    r = visitor().login("nobody@example.org", "wrong password!")
    assert "email or password is not right" in r.text


def test_login_is_rate_limited_per_account(visitor, open_registration):
    visitor().register("Dee", "dee@example.org")
    b = visitor()
    for _ in range(5):
        assert b.login("dee@example.org", "wrong password!").status_code == 400
    r = b.login("dee@example.org")  # even the right password waits now
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0


def test_login_redirect_stays_on_this_site(visitor, open_registration):
    visitor().register("Eve", "eve@example.org")
    b = visitor()
    r = b.post("/login?next=//evil.example/x", {"email": "eve@example.org",
               "password": "correct horse battery", "next": "//evil.example/x"}, page="/login")
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_post_without_csrf_token_is_refused(visitor, open_registration):
    b = visitor()
    b.get("/register")
    r = b.request("POST", "/register", data={"display_name": "X", "email": "x@example.org",
                                             "password": "correct horse battery"})
    assert r.status_code == 403
    r = b.request("POST", "/register", data={"display_name": "X", "email": "x@example.org",
                                             "password": "correct horse battery",
                                             "csrf_token": "forged"})
    assert r.status_code == 403


def test_admin_login_link_works_once(visitor, admin_link):
    path = admin_link.removeprefix("http://testserver")
    first = visitor()
    assert first.post(path, page=path).status_code == 303
    assert "Set an email and a password" in first.get("/account").text
    second = visitor()
    r = second.post(path, page=path)
    assert r.status_code == 400
    assert "not valid" in r.text


def test_password_change_needs_the_current_one_and_ends_other_sessions(visitor, open_registration):
    a = visitor()
    a.register("Fin", "fin@example.org")
    other = visitor()
    other.login("fin@example.org")
    r = a.post("/account", {"action": "password", "current_password": "nope",
                            "new_password": "a brand new secret"}, page="/account")
    assert r.status_code == 400
    r = a.post("/account", {"action": "password", "current_password": "correct horse battery",
                            "new_password": "a brand new secret"}, page="/account")
    assert r.status_code == 200
    assert other.get("/account", follow_redirects=False).status_code == 303
    assert visitor().login("fin@example.org", "a brand new secret").status_code == 303


def test_deleting_an_account_removes_personal_data_but_keeps_groups(
    visitor, open_registration, run_db
):
    b = visitor()
    b.register("Gil", "gil@example.org")
    assert b.post("/groups/new", group_form(), page="/groups/new").status_code == 303
    joiner = visitor()
    joiner.register("Hal", "hal@example.org")
    joiner.post("/groups/tuesday-grief-circle/join", {"accept_agreements": "yes"},
                page="/groups/tuesday-grief-circle")
    r = joiner.post("/account/delete", {"confirm": "delete"}, page="/account/delete")
    assert r.status_code == 200
    assert run_db(lambda db: accounts.find_account(db, "hal@example.org")) is None
    count = run_db(lambda db: db.fetchval(
        "SELECT count(*) FROM memberships m JOIN groups g ON g.id = m.group_id"
        " WHERE g.slug = 'tuesday-grief-circle'"))
    assert count == 1  # only the facilitator is left
    assert visitor().get("/groups/tuesday-grief-circle").status_code == 200


def test_the_login_page_offers_a_password_reset(visitor):
    page = visitor().get("/login").text
    assert '<a href="/login/reset">' in page
    assert visitor().get("/login/reset").status_code == 200

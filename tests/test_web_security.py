"""Headers, cookies and request limits every page gets."""
from __future__ import annotations

from starlette.testclient import TestClient

from node.app import create_app
from node.cli import initialise
from node.config import load_config


def test_pages_carry_a_content_security_policy_and_no_sniffing(visitor):
    r = visitor().get("/groups")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_session_cookie_is_httponly_and_samesite_lax(visitor):
    r = visitor().get("/login")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain-http development URL


def test_session_cookie_is_secure_behind_an_https_public_url(tmp_path):
    initialise(tmp_path / "n", "https://grassroots.example")
    app = create_app(load_config(tmp_path / "n"))
    with TestClient(app, base_url="https://grassroots.example") as c:
        assert "secure" in c.get("/login").headers["set-cookie"].lower()


def test_oversized_form_is_refused_before_it_is_read_whole(visitor):
    b = visitor()
    token = b.token("/login")
    r = b.request("POST", "/login", data={"csrf_token": token, "email": "x" * 300_000})
    assert r.status_code == 413


def test_non_form_posts_are_refused(visitor):
    r = visitor().request("POST", "/login", content=b'{"email": "x"}',
                          headers={"content-type": "application/json"})
    assert r.status_code == 415


def test_unknown_page_is_a_friendly_404(visitor):
    r = visitor().get("/groups/no-such-group")
    assert r.status_code == 404
    assert "Not found" in r.text and "Traceback" not in r.text

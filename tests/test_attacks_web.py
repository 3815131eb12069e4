"""Web attacks in-process: CSRF on every form, and a form field built to backtrack.
Counted in the attack tally.
"""
from __future__ import annotations

import re
import time

import pytest

from node.app import ROUTES
from node.web.middleware import CSRF_EXEMPT
from tests.attacks import TALLY, report_tally


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> None:
    report_tally(request.config)


# --- web: CSRF on every form ----------------------------------------------------------------


def _post_routes() -> list[str]:
    paths = []
    for route in ROUTES:
        methods = getattr(route, "methods", None) or set()
        path = re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m.group(2) else "x", route.path)
        # One-click unsubscribe answers to its signed token instead (tests/test_notices.py).
        if "POST" in methods and not path.endswith("inbox") and not CSRF_EXEMPT.fullmatch(path):
            paths.append(path)
    return paths


def test_every_form_post_without_the_csrf_token_is_403(visitor, admin) -> None:
    paths = _post_routes()
    assert len(paths) >= 15, paths
    for path in paths:
        for who, browser in (("anonymous", visitor()), ("admin", admin)):
            browser.get("/login")  # a session that has a token of its own
            for label, form in (("no token", {"x": "1"}),
                                ("a wrong token", {"x": "1", "csrf_token": "forged"})):
                with TALLY.trying("web", f"POST {path} as {who} with {label}", outcome="403"):
                    response = browser.request("POST", path, data=form)
                    assert response.status_code == 403, (path, who, label,
                                                          response.status_code)
                    assert response.headers["content-type"].startswith("text/plain")
    assert admin.get("/admin/settings").status_code == 200  # the session still works


def test_a_huge_email_on_the_register_form_is_refused_at_once(visitor, open_registration) -> None:
    browser = visitor()
    with TALLY.trying("web", "a 30 KB email built to make the email regex backtrack",
                      outcome="400"):
        started = time.perf_counter()
        response = browser.post("/register", {"display_name": "x",
                                              "email": "a@" + "." * 30_000 + "@",
                                              "password": "correct horse battery"},
                                page="/register")
        assert response.status_code == 400
        assert time.perf_counter() - started < 1



"""Shared fixtures: a real data directory, the real ASGI app, real SQLite."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from node import cli
from node.app import create_app
from node.cli import initialise
from node.config import CONFIG_FILE, load_config
from node.storage import accounts
from tests import helpers
from tests.helpers import ENGINE, run_on
from tests.mailserver import MailServer
from tests.postgres import INSTALL, Cluster, server_binaries

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """One visitor with its own cookies, submitting forms as a browser does.

    Every visitor shares the one TestClient (and so the one running app and
    database); cookies are swapped in per request.
    """

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookies = httpx.Cookies()

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        self.client.cookies = self.cookies
        try:
            return self.client.request(method, url, **kwargs)
        finally:
            self.cookies = httpx.Cookies(self.client.cookies)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def token(self, page_url: str = "/groups") -> str:
        found = CSRF.search(self.get(page_url).text)
        assert found, f"no CSRF token on {page_url}"
        return found.group(1)

    def post(self, url: str, data: dict | list | None = None, *, page: str = "/login",
             follow: bool = False) -> httpx.Response:
        """POST a form, with the CSRF token of ``page`` as a browser would send it."""
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        fields.append(("csrf_token", self.token(page)))
        form: dict[str, list[str]] = {}
        for key, value in fields:
            form.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        return self.request("POST", url, data=form, follow_redirects=follow)

    def register(self, name: str, email: str, password: str = "correct horse battery") -> None:
        response = self.post("/register", {"display_name": name, "email": email,
                                           "password": password}, page="/register")
        assert response.status_code == 303, response.text

    def login(self, email: str, password: str = "correct horse battery") -> httpx.Response:
        return self.post("/login", {"email": email, "password": password}, page="/login")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, the tests about SQLite itself are left out; on SQLite, those that
    use PostgreSQL whatever the engine (they run in the PostgreSQL run). Both are listed
    as deselected."""
    other = "sqlite_only" if ENGINE == "postgresql" else "postgresql_run"
    left = [item for item in items if item.get_closest_marker(other)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if not item.get_closest_marker(other)]


@pytest.fixture
def smtp_server() -> Iterator[MailServer]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd): what it accepted is in ``.received``."""
    with MailServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL server for the session (tests.postgres); no skipping."""
    binaries = server_binaries()
    if binaries is None:
        pytest.fail(INSTALL)
    cluster = Cluster(binaries)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine under test (tests.helpers.ENGINE). On PostgreSQL every data directory a
    test initialises names a fresh database of its own in its config, as an operator's
    would (``database_url``), and every standalone database file has one too."""
    if ENGINE == "postgresql":
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        monkeypatch.setattr(helpers, "NEW_POSTGRES_DATABASE", [cluster.new_node_database])
        plain = cli.write_config

        def write_config(data_dir: Path, public_url: str, derived: bool = False) -> None:
            plain(data_dir, public_url, derived)
            with open(data_dir / CONFIG_FILE, "a", encoding="utf-8") as f:
                f.write(f'database_url = "{cluster.new_node_database()}"\n')
        monkeypatch.setattr(cli, "write_config", write_config)
    return ENGINE


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a fresh empty database of its own for the test."""
    return pg_cluster.new_database()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def admin_link(data_dir: Path) -> str:
    return initialise(data_dir, "http://testserver")


@pytest.fixture
def app(data_dir: Path, admin_link: str):
    return create_app(load_config(data_dir))


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def visitor(client: TestClient):
    """A factory of independent visitors (own cookies) of the one running app."""
    return lambda: Browser(client)


@pytest.fixture
def admin(visitor, admin_link: str) -> Browser:
    """The node's first admin, logged in through the one-time link."""
    b = visitor()
    path = admin_link.removeprefix("http://testserver")
    assert b.post(path, page=path).status_code == 303
    return b


@pytest.fixture
def run_db(data_dir: Path, client):
    """Run ``fn(db)`` against the node's real database file (setup and checks)."""
    return lambda fn: run_on(data_dir, fn)


@pytest.fixture
def open_registration(run_db):
    """Switch the node to open registration, as an admin would, with new public groups
    listed at once (tests/test_group_review.py turns the review of them on) and members
    joining groups before confirming their address (tests/test_account_mail.py requires it)."""
    from node.domain import NodeSettings, RegistrationMode
    from node.storage.settings import save_settings

    run_db(lambda db: save_settings(db, NodeSettings(registration=RegistrationMode.OPEN,
                                                     review_public_groups=False,
                                                     require_verified_email=False)))


@pytest.fixture
def facilitator_id(visitor, open_registration, run_db) -> int:
    """A registered account that creates groups in a test; its id."""
    visitor().register("Fay Quietly", "fay@example.org")
    return run_db(lambda db: accounts.find_account(db, "fay@example.org")).id

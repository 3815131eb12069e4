"""Attacks on a node without --dev: keyIds on private addresses, our host in other forms.

The victim is a real `grassroots serve` process on 127.0.0.1 whose public URL
is `https://xn--bcher-kva.test` (bücher.test). Without --dev it must refuse a
keyId on a private address before any lookup or connection, which a listener
on 127.0.0.1 proves by seeing none; the names used are IP literals and
`localhost` only, so nothing is ever asked of DNS. Counted in the attack tally.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import idna
import pytest
from starlette.testclient import TestClient

from node.app import create_app
from node.cli import initialise
from node.config import load_config
from tests.attacks import AS, TALLY, Stub, Victim, refused, report_tally
from tests.helpers import serving


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> None:
    report_tally(request.config)


# --- keyIds on private addresses, host names in other forms (a victim without --dev) --------


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections: it must see none."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


# bücher.test, never resolved: each case is refused before any lookup
PRODUCTION_URL = "https://xn--bcher-kva.test"


@pytest.fixture(scope="module")
def loner() -> Stub:
    """A peer that is only a key to sign with: never served, so every fetch of it must fail."""
    return Stub("127.0.0.1", "loner")


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Victim, Listener]]:
    data = tmp_path_factory.mktemp("production") / "node"
    initialise(data, PRODUCTION_URL)
    listener = Listener()
    try:
        with serving(data) as (url, _):
            victim = Victim(data, url)
            victim.cli("peers", "block", "böse.test")
            yield victim, listener
    finally:
        listener.close()
    assert listener.connections == 0


PRIVATE_KEY_HOSTS = [
    "127.0.0.1:{port}", "127.1.2.3:{port}", "localhost:{port}", "[::1]:{port}",
    "[::ffff:127.0.0.1]:{port}", "[::ffff:7f00:1]:{port}", "0.0.0.0:{port}", "[::]:{port}",
    "[::ffff:0.0.0.0]:{port}", "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "[::ffff:a9fe:a9fe]", "100.64.0.1", "198.18.0.1", "[fc00::1]",
    "[fd12:3456::1]", "[fe80::1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
]


@pytest.mark.parametrize("host", PRIVATE_KEY_HOSTS)
def test_a_key_id_on_a_private_address_is_401_without_a_connection(production, loner,
                                                                   host) -> None:
    victim, listener = production
    actor = f"https://{host.format(port=listener.port)}/actor"
    follow = {"@context": AS, "id": f"{actor}/follows/1", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox", key_id=f"{actor}#main-key")
    refused(victim, "keys", f"keyId on {host.format(port='port')}", 401,
            lambda: victim.post("/inbox", body, headers), "not public")
    assert listener.connections == 0


@pytest.mark.parametrize("key_id,reason", [
    ("file:///etc/passwd", "scheme"), ("data:application/activity+json,{}", "scheme"),
    ("gopher://127.0.0.1:70/_", "scheme"), ("ftp://127.0.0.1/key", "scheme"),
    ("http://127.0.0.1/actor#main-key", "scheme"),
    ("https://user:pw@127.0.0.1/actor#main-key", "credentials"),
])
def test_a_key_id_with_another_scheme_is_401(production, loner, key_id: str,
                                             reason: str) -> None:
    victim, _ = production
    actor = "https://127.0.0.1/actor"
    follow = {"@context": AS, "id": f"{actor}/follows/2", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox", key_id=key_id)
    refused(victim, "keys", f"keyId {key_id.split(':')[0]}: ({reason})", 401,
            lambda: victim.post("/inbox", body, headers), reason)


OUR_HOST_FORMS = ["https://BÜCHER.TEST/actor", "https://bücher.test./actor",
                  "https://XN--BCHER-KVA.test/actor", "https://xn--bcher-kva.TEST.:443/actor"]
BLOCKED_FORMS = ["https://BÖSE.test/users/x", "https://böse.test./users/x",
                 f"https://{idna.encode('böse.test', uts46=True).decode().upper()}/users/x",
                 "https://böse.test:8443/users/x"]


@pytest.mark.parametrize("actor,status,reason", [
    *[(a, 403, "this node's host") for a in OUR_HOST_FORMS],
    *[(a, 403, "blocked") for a in BLOCKED_FORMS],
    # decomposed "ü" (u + U+0308): httpx will not parse it, so it never names any host
    ("https://bu\u0308cher.test/actor", 400, "not an http(s) URL"),
])
def test_host_names_differing_by_case_dot_or_idn_form_are_the_same_host(
        production, loner, actor: str, status: int, reason: str) -> None:
    victim, _ = production
    follow = {"@context": AS, "id": f"{actor}/follows/3", "type": "Follow", "actor": actor,
              "object": f"{PRODUCTION_URL}/actor"}
    body, headers = loner.sign(follow, victim.url + "/inbox",
                               key_id="https://127.0.0.1/actor#main-key")  # never reached
    refused(victim, "origin", f"host in another form: {actor}", status,
            lambda: victim.post("/inbox", body, headers), reason)


def test_a_node_at_an_idn_host_answers_a_key_it_cannot_fetch_with_401(tmp_path: Path,
                                                                     loner: Stub) -> None:
    initialise(tmp_path / "n", "https://bücher.test")
    actor = "https://localhost:1/actor"  # resolved from /etc/hosts to loopback: refused
    follow = {"@context": AS, "id": f"{actor}/follows/1", "type": "Follow", "actor": actor,
              "object": "https://bücher.test/actor"}
    body, headers = loner.sign(follow, "http://testserver/inbox", key_id=f"{actor}#main-key")
    app = create_app(load_config(tmp_path / "n"))
    with TALLY.trying("keys", "keyId on loopback, sent to a node at an IDN host", outcome="401"),\
            TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/inbox", content=body, headers=headers).status_code == 401



"""The README's "Try it with two local nodes", pasted in one go into ``bash -e``.

Only what must differ is changed: the data directories (a fresh temporary one each)
and the ports (free ones, as another run may hold 8001 and 8002). Its two ``serve``
commands run in the background, as the README says, against real node processes on
loopback; the follow must end accepted on both sides.
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Try it with two local nodes", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def peer_state(data: Path, host: str) -> tuple[str, str] | None:
    """(following, follower) of ``host`` in the node's database."""
    uri = (data / "grassroots.db").resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        row = conn.execute("SELECT following, follower FROM peers WHERE host = ?",
                           (host,)).fetchone()
    return None if row is None else tuple(row)


def test_the_readme_two_node_walkthrough_works_pasted_in_one_go(tmp_path):
    script = walkthrough()
    assert "/tmp/a" in script and "8001" in script and "&\n" in script
    port_a, port_b = free_port("127.0.0.1"), free_port("127.0.0.2")
    a, b = tmp_path / "a", tmp_path / "b"
    script = (script.replace("/tmp/a", str(a)).replace("/tmp/b", str(b))
              .replace("8001", str(port_a)).replace("8002", str(port_b)))
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the README runs .venv/bin/grassroots

    log = tmp_path / "walkthrough.log"
    with open(log, "w") as out:
        # Its own process group: the background nodes are stopped with it at the end.
        shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert shell.wait(timeout=120) == 0, log.read_text()
        host_a, host_b = f"127.0.0.1:{port_a}", f"127.0.0.2:{port_b}"
        wait_for(lambda: peer_state(a, host_b) == ("accepted", "none"),
                 f"A's follow of B accepted\n{log.read_text()}", timeout=30)
        assert peer_state(b, host_a) == ("none", "approved")
        # What the README says next: B's demo groups are listed on A, marked as B's.
        directory = f"http://{host_a}/groups?origin=federated"
        listed = wait_for(lambda: "Tuesday Grief Circle" in (page := httpx.get(directory).text)
                          and page, "B's groups on A", timeout=30)
        assert host_b in listed
        group = httpx.get(f"http://{host_a}/groups/tuesday-grief-circle@{host_b}")
        assert group.status_code == 200
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=10)

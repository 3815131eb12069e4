"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temporary
directory, 127.0.0.1 on a free port and a unix socket beside the data, trust for local
connections only; stopped and removed at the end of the session."""
from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import free_port

INSTALL = ("PostgreSQL's server is not installed: install Debian's postgresql package"
           " (apt-get install postgresql), as .ci/run does")


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(directory) / "initdb", os.X_OK):
            return Path(directory)
    return None


class Cluster:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="grassroots-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.names = itertools.count(1)
        self.migrated = ""  # the database new_node_database copies, once made
        # The server refuses to run as root: as the postgres user, in a directory it owns.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.binaries / program), *args],
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                   f" -c unix_socket_directories={self.root} -c fsync=on")
        try:
            # --auth=trust: for the socket and loopback, the only addresses listened on.
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                      "-o", options, "-w", "start")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, template: str = "template0") -> str:
        """A fresh database, empty or a copy of ``template``; its URL."""
        name = f"t_{next(self.names)}"
        pg(self.url(), lambda conn: conn.execute(
            f"CREATE DATABASE {name} TEMPLATE {template} ENCODING 'UTF8' LOCALE 'C.UTF-8'"))
        return self.url(name)

    def new_node_database(self) -> str:
        """A fresh database with every migration applied (copied from one migrated once)."""
        if not self.migrated:
            from node.postgres import migrate

            url = self.new_database()
            in_thread(migrate(url))
            self.migrated = url.rsplit("/", 1)[1]
        return self.new_database(self.migrated)


def pg(url: str, work):
    """``await work(conn)`` on a connection to ``url``; its result. It runs in a thread of
    its own, so a test may call it from inside a running event loop."""
    import asyncpg

    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await work(conn)
        finally:
            await conn.close()
    return in_thread(go())


def in_thread(coroutine):
    """``asyncio.run(coroutine)`` in a thread of its own: callable inside a running loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()

"""The real ``grassroots`` command: init, admin verbs, backup and restore, demo data."""
from __future__ import annotations

import hashlib
import io
import re
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from node.domain import AccountStatus
from node.storage import accounts
from tests.helpers import (
    draft,
    free_port,
    group_form,
    publish_listing,
    run_on,
    serving,
    wait_for,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(r"(https?://\S+/login/link/\S+)")


def grassroots(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def admin_link(data_dir: Path) -> str:
    """The conftest app fixtures, on a data directory made by ``grassroots init``."""
    result = grassroots("init", "--data", data_dir, "--url", "http://testserver")
    assert result.returncode == 0, result.stderr
    return LINK.search(result.stdout).group(1)


def link_path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def use_link(browser, link: str) -> int:
    path = link_path(link)
    return browser.post(path, page=path).status_code


def test_init_prints_a_login_link_that_works_once(admin_link, visitor, data_dir):
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    first = visitor()
    assert use_link(first, admin_link) == 303
    assert first.get("/admin/settings").status_code == 200
    assert use_link(visitor(), admin_link) == 400
    assert grassroots("init", "--data", data_dir).returncode == 1


def test_admin_verbs_list_link_grant_and_revoke(admin_link, visitor, data_dir, run_db):
    noor = run_db(lambda db: accounts.create_account(
        db, email="noor@example.org", display_name="Noor", password_hash=None))
    listed = grassroots("admin", "list", "--data", data_dir)
    assert listed.returncode == 0
    assert re.search(r"^1\s+admin\s+active\s.*\bAdmin$", listed.stdout, re.M)
    assert re.search(rf"^{noor}\s+-\s+active\s.*noor@example\.org\s+Noor$", listed.stdout, re.M)

    assert grassroots("admin", "grant", "noor@example.org", "--data", data_dir).returncode == 0
    assert re.search(rf"^{noor}\s+admin\s", grassroots("admin", "list", "--data", data_dir).stdout,
                     re.M)
    linked = grassroots("admin", "link", "noor@example.org", "--data", data_dir)
    assert linked.returncode == 0
    as_noor = visitor()
    assert use_link(as_noor, LINK.search(linked.stdout).group(1)) == 303
    assert "Noor" in as_noor.get("/admin/accounts").text

    default = grassroots("admin", "link", "--data", data_dir)
    as_first_admin = visitor()
    assert use_link(as_first_admin, LINK.search(default.stdout).group(1)) == 303
    assert as_first_admin.get("/admin/settings").status_code == 200

    assert grassroots("admin", "revoke", "noor@example.org", "--data", data_dir).returncode == 0
    assert as_noor.get("/admin/accounts").status_code == 403
    again = grassroots("admin", "revoke", "noor@example.org", "--data", data_dir)
    assert again.returncode == 1 and "is not an admin" in again.stderr


def test_last_admin_cannot_be_revoked_from_the_command_line(admin_link, data_dir, run_db):
    first = run_db(accounts.first_admin)
    run_db(lambda db: accounts.update_profile(db, first.id, display_name="Admin",
                                              email="admin@example.org"))
    result = grassroots("admin", "revoke", "admin@example.org", "--data", data_dir)
    assert result.returncode == 1
    assert "only active admin" in result.stderr
    assert run_db(accounts.first_admin).id == first.id


def test_admin_verbs_refuse_bad_input_with_one_line(admin_link, data_dir, run_db, tmp_path):
    for args in (("admin", "link", "nobody@example.org"), ("admin", "grant", "nobody@example.org"),
                 ("admin", "revoke", "nobody@example.org")):
        result = grassroots(*args, "--data", data_dir)
        assert result.returncode == 1
        assert result.stderr == "grassroots: No account has the email nobody@example.org.\n"
    suspended = run_db(lambda db: accounts.create_account(
        db, email="gone@example.org", display_name="Gone", password_hash=None,
        status=AccountStatus.SUSPENDED))
    assert suspended
    result = grassroots("admin", "link", "gone@example.org", "--data", data_dir)
    assert result.returncode == 1 and "suspended" in result.stderr
    missing = grassroots("admin", "list", "--data", tmp_path / "nowhere")
    assert missing.returncode == 1 and "not a Grassroots data directory" in missing.stderr
    assert not (tmp_path / "nowhere").exists()


def form_post(client: httpx.Client, path: str, data: dict, page: str = "/groups"):
    token = CSRF.search(client.get(page).text).group(1)
    return client.post(path, data={**data, "csrf_token": token})


def rows(db: Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def tables(db: Path) -> list[str]:
    return [r[0] for r in rows(db, "(SELECT name FROM sqlite_master WHERE type = 'table')")
            if not r[0].startswith("sqlite_")]


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def test_backup_while_serving_restores_identical_data(tmp_path):
    live = tmp_path / "live"
    with serving(live) as (url, output):
        login = LINK.search("".join(output)).group(1)
        with httpx.Client(base_url=url, timeout=10) as client:
            path = link_path(login)
            assert form_post(client, path, {}, page=path).status_code == 303
            created: list[str] = []
            failures: list[str] = []
            stop = threading.Event()

            def write_groups() -> None:
                while not stop.is_set():
                    name = f"Peer Group {len(created) + 1}"
                    response = form_post(client, "/groups/new", group_form(name=name))
                    if response.status_code != 303:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                        return
                    created.append(name)

            writer = threading.Thread(target=write_groups)
            writer.start()
            try:
                deadline = time.monotonic() + 30
                while len(created) < 5 and not failures and time.monotonic() < deadline:
                    time.sleep(0.05)
                before = len(created)
                under_load = grassroots("backup", tmp_path / "busy.tar.gz", "--data", live)
                during = len(created) - before
                time.sleep(0.3)
            finally:
                stop.set()
                writer.join(timeout=30)
            assert not failures and before >= 5, failures
            assert under_load.returncode == 0, under_load.stderr
            assert during > 0, "no writes happened while the backup ran"

            # Idle but still running: this snapshot must equal the live database.
            # (Idle once the publisher has turned every change into activities.)
            live_db = live / "grassroots.db"
            deadline = time.monotonic() + 30
            while rows(live_db, "listing_changes") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            quiet = grassroots("backup", tmp_path / "quiet.tar.gz", "--data", live)
            assert quiet.returncode == 0, quiet.stderr
            live_tables = {t: rows(live_db, t) for t in tables(live_db)}

    archive = tmp_path / "busy.tar.gz"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as t:
        assert sorted(t.getnames()) == ["config.toml", "grassroots.db", "secret.key"]

    busy = tmp_path / "busy"
    assert grassroots("restore", archive, "--data", busy).returncode == 0
    snapshot = busy / "grassroots.db"
    assert rows(snapshot, "pragma_integrity_check") == [("ok",)]
    groups = rows(snapshot, "groups")
    assert before <= len(groups) <= len(created)
    assert set(groups) <= set(live_tables["groups"])
    # Each group arrived whole: its tags, search row and facilitator with it.
    for table in ("memberships", "group_tags"):
        assert {r[0] for r in rows(snapshot, table)} == {g[0] for g in groups}
    assert len(rows(snapshot, "groups_fts")) == len(groups)

    restored = tmp_path / "restored"
    result = grassroots("restore", tmp_path / "quiet.tar.gz", "--data", restored)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
    restored_db = restored / "grassroots.db"
    assert tables(restored_db) == list(live_tables)
    for table, live_rows in live_tables.items():
        assert rows(restored_db, table) == live_rows, table
    assert len(live_tables["groups"]) == len(created)
    for name in ("config.toml", "secret.key"):
        assert (restored / name).read_bytes() == (live / name).read_bytes()
        assert stat.S_IMODE((restored / name).stat().st_mode) == 0o600

    before_refusal = fingerprint(live)
    refused = grassroots("restore", tmp_path / "quiet.tar.gz", "--data", live)
    assert refused.returncode == 1
    assert "is not empty" in refused.stderr
    assert fingerprint(live) == before_refusal
    assert grassroots("backup", archive, "--data", live).returncode == 1  # never overwrites

    # The restored node serves the copied groups.
    with serving(restored) as (url, _):
        assert "Peer Group 1" in httpx.get(url + "/groups?q=Peer").text


def real_backup(tmp_path: Path) -> dict[str, bytes]:
    data = tmp_path / "source"
    assert grassroots("init", "--data", data).returncode == 0
    assert grassroots("backup", tmp_path / "good.tar.gz", "--data", data).returncode == 0
    with tarfile.open(tmp_path / "good.tar.gz") as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def write_archive(path: Path, members: dict[str, bytes], symlink: str = "") -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            t.addfile(info)
    return path


@pytest.mark.parametrize("tamper", ["dotdot", "absolute", "symlink", "missing", "corrupt_db"])
def test_tampered_archives_are_refused_and_nothing_is_written(tamper, tmp_path):
    good = real_backup(tmp_path)
    members = dict(good)
    symlink = ""
    if tamper == "dotdot":
        members["../escaped.txt"] = b"gotcha"
    elif tamper == "absolute":
        members[str(tmp_path / "escaped.txt")] = b"gotcha"
    elif tamper == "symlink":
        del members["secret.key"]
        symlink = "secret.key"
    elif tamper == "missing":
        del members["config.toml"]
    else:
        members["grassroots.db"] = good["grassroots.db"][:4096] + b"\x00garbage" * 2000
    archive = write_archive(tmp_path / "tampered.tar.gz", members, symlink)
    before = sorted(p.name for p in tmp_path.iterdir())

    target = tmp_path / "target"
    result = grassroots("restore", archive, "--data", target)
    assert result.returncode == 1
    assert result.stderr.startswith("grassroots: ") and result.stderr.count("\n") == 1
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging left behind


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    (tmp_path / "notes.tar.gz").write_text("not an archive")
    result = grassroots("restore", tmp_path / "notes.tar.gz", "--data", tmp_path / "t")
    assert result.returncode == 1 and "not a Grassroots backup" in result.stderr
    missing = grassroots("restore", tmp_path / "missing.tar.gz", "--data", tmp_path / "t")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "t").exists()


def test_serve_demo_seeds_groups_once(tmp_path):
    data = tmp_path / "demo"
    with serving(data, "--demo") as (url, output):
        assert "Added demo groups and meetings." in "".join(output)
        directory = httpx.get(url + "/groups").text
        for name in ("Tuesday Grief Circle", "Calm Minds: Anxiety Peer Support",
                     "Recuperación Juntos", "Rainbow Circle", "Men&#39;s Shed Talk",
                     "Sunday Sharing Circle"):
            assert name in directory
        assert "Carers" not in directory and "Survivors" not in directory  # unlisted, private
        assert "Riverside Peer Support (demo)" in directory
        assert "local emergency number" in httpx.get(url + "/groups/rainbow-circle").text
        home = httpx.get(url + "/").text
        assert "Upcoming meetings" in home and "No meetings are scheduled yet." not in home
        assert httpx.get(url + "/groups/carers-coffee-hour").status_code == 200

    db = data / "grassroots.db"
    assert len(rows(db, "groups")) == 9
    assert rows(db, "event_exceptions WHERE cancelled = 1")
    assert not rows(db, "notices") and not rows(db, "mail_outbox")  # no mail about examples
    rrules = {r[0] for r in rows(db, "(SELECT rrule FROM events)")}
    assert {"FREQ=WEEKLY;BYDAY=TU", "FREQ=MONTHLY;BYDAY=1SA", None} <= rrules

    with serving(data, "--demo") as (_, output):
        assert "Added demo" not in "".join(output)
    assert len(rows(db, "groups")) == 9


# Peers: waiting for a request, and saying when it has not come -------------------------

def test_approve_of_a_request_that_has_not_arrived_says_so_with_exit_code_3(tmp_path):
    data = tmp_path / "b"
    assert grassroots("init", "--data", data).returncode == 0
    started = time.monotonic()
    result = grassroots("peers", "approve", "127.0.0.1:8001", "--wait", "0.5", "--data", data)
    assert result.returncode == 3
    assert result.stderr == ("grassroots: No follow request from 127.0.0.1:8001 has arrived"
                             " (waited 0.5 s). If its admin has just asked, wait a minute and"
                             " try again.\n")
    assert time.monotonic() - started >= 0.5


def test_follow_from_a_node_that_is_not_serving_says_the_request_waits_with_exit_code_3(
        tmp_path):
    a = tmp_path / "a"
    assert grassroots("init", "--data", a).returncode == 0
    with serving(tmp_path / "b", "--dev", host="127.0.0.2") as (b_url, _):
        result = grassroots("peers", "follow", b_url, "--dev", "--wait", "1", "--data", a)
    assert result.returncode == 3
    host = b_url.removeprefix("http://")
    assert f"The follow request has not reached {host} yet (not tried yet: the running" \
           " node sends it; is it serving?)" in result.stderr
    assert rows(a / "grassroots.db", "(SELECT following FROM peers)") == [("requested",)]


# Migrations -----------------------------------------------------------------------------

def test_migrate_status_lists_applied_and_pending_and_migrate_applies_them(tmp_path):
    from node.config import write_config
    from node.db import connect_sync, migrate, migration_files

    data = tmp_path / "node"
    write_config(data, "http://127.0.0.1:8000")
    conn = connect_sync(data / "grassroots.db")
    migrate(conn, upto=12)  # as an older version left it
    conn.close()
    names = [name for _, name, _ in migration_files()]

    status = grassroots("migrate", "--status", "--data", data)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "MIGRATION", "APPLIED"]
    assert lines[1].startswith("0001") and "0001_core.sql" in lines[1] \
        and "pending" not in lines[1]
    assert [line.split()[1] for line in lines[1:] if line.endswith("pending")] == names[12:]
    assert lines[-1].startswith(f"12 applied, {len(names) - 12} pending.")
    assert rows(data / "grassroots.db", "(SELECT max(version) FROM schema_migrations)") == [
        (12,)]  # --status applies nothing

    applied = grassroots("migrate", "--data", data)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [f"Applied {name}." for name in names[12:]] + [
        f"The database in {data} is up to date."]
    after = grassroots("migrate", "--status", "--data", data)
    assert after.stdout.splitlines()[-1] == f"{len(names)} applied, 0 pending."


def test_a_database_from_a_newer_version_refuses_to_start(tmp_path):
    data = tmp_path / "node"
    assert grassroots("init", "--data", data).returncode == 0
    conn = sqlite3.connect(data / "grassroots.db")
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES"
                     " (9001, '9001_from_the_future.sql', '2031-01-01T00:00:00Z')")
    conn.close()
    files = ("config.toml", "secret.key", "grassroots.db")
    before = {name: digest for name, digest in fingerprint(data).items() if name in files}
    message = ("The database was written by a newer version of Grassroots: it has"
               " 9001_from_the_future.sql, which this version does not know.")
    for command in (("serve", "--port", str(free_port())), ("migrate",), ("admin", "list")):
        result = grassroots(*command, "--data", data)
        assert result.returncode == 1, command
        assert result.stderr.startswith(f"grassroots: {message}"), result.stderr
        assert "restore a backup taken before the upgrade" in result.stderr
    status = grassroots("migrate", "--status", "--data", data)
    assert status.returncode == 1
    assert "9001_from_the_future.sql" in status.stdout and "unknown to this version" in \
        status.stdout
    assert {name: digest for name, digest in fingerprint(data).items() if name in files} == before


# Backups on a schedule -------------------------------------------------------------------

def backup_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_running_node_backs_up_on_schedule_and_keeps_the_newest(tmp_path):
    data, kept = tmp_path / "node", tmp_path / "backups"
    assert grassroots("init", "--data", data).returncode == 0
    run_on(data / "grassroots.db", lambda db: publish_listing(db, draft()))
    with open(data / "config.toml", "a", encoding="utf-8") as f:
        f.write(f'backup_every_hours = 24\nbackup_dir = "{kept}"\nbackup_keep = 3\n')
    kept.mkdir()
    old = [f"grassroots-2024010{day}T030000Z.tar.gz" for day in range(1, 5)]
    for name in old:
        (kept / name).write_bytes(b"an old backup")
    (kept / "notes.txt").write_text("not a backup: left alone")

    with serving(data):
        # Due at once (the newest is years old); then not again for a day.
        wait_for(lambda: len(backup_names(kept)) == 4 and not any(
            name.startswith(".") for name in backup_names(kept)), "a scheduled backup")
        names = backup_names(kept)
    new = [name for name in names if name not in old and name != "notes.txt"]
    assert len(new) == 1 and re.fullmatch(r"grassroots-\d{8}T\d{6}Z\.tar\.gz", new[0])
    assert names == sorted([*old[2:], new[0], "notes.txt"])  # the two oldest went
    assert stat.S_IMODE((kept / new[0]).stat().st_mode) == 0o600

    restored = tmp_path / "restored"
    result = grassroots("restore", kept / new[0], "--data", restored)
    assert result.returncode == 0, result.stderr
    assert rows(restored / "grassroots.db", "(SELECT name FROM groups)") == [
        (draft().name,)]

    # A restart a moment later takes none: the newest is not a day old.
    with serving(data):
        time.sleep(1)
    assert backup_names(kept) == names


def test_backup_without_a_file_writes_into_backup_dir_and_rotates(tmp_path):
    data = tmp_path / "node"
    assert grassroots("init", "--data", data).returncode == 0
    with open(data / "config.toml", "a", encoding="utf-8") as f:
        f.write("backup_keep = 2\n")
    for day in (1, 2):
        (data / "backups").mkdir(exist_ok=True)
        (data / "backups" / f"grassroots-2024010{day}T030000Z.tar.gz").write_bytes(b"old")
    result = grassroots("backup", "--data", data)
    assert result.returncode == 0, result.stderr
    names = backup_names(data / "backups")
    assert names[0] == "grassroots-20240102T030000Z.tar.gz" and len(names) == 2
    assert f"Backed up {data} to {data / 'backups' / names[1]}" in result.stdout
    assert grassroots("restore", data / "backups" / names[1], "--data",
                      tmp_path / "restored").returncode == 0


def test_several_processes_on_one_database_are_refused_on_sqlite(admin_link, data_dir,
                                                                 monkeypatch):
    """grassroots worker and serve --workers share a database between processes: on the
    SQLite file they are refused, saying why, and nothing starts."""
    monkeypatch.setenv("GRASSROOTS_DATABASE_URL", "")  # the data directory's SQLite file
    for command in (("worker",), ("serve", "--workers", "2", "--port", str(free_port()))):
        done = grassroots(*command, "--data", data_dir)
        assert done.returncode == 1, done.stdout
        assert "needs PostgreSQL: set database_url" in done.stderr
        assert "Serving" not in done.stdout and "Working" not in done.stdout

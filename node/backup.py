"""Backups: one tar.gz of a database snapshot, the config and the secret key; taken on
demand, or by the running node every ``backup_every_hours`` into ``backup_dir``, where
the newest ``backup_keep`` are kept."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.background import repeat
from node.config import CONFIG_FILE, DATABASE_FILE, SECRET_FILE, Config
from node.db import connect_sync

log = logging.getLogger(__name__)


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


BACKUP_MEMBERS = (DATABASE_FILE, CONFIG_FILE, SECRET_FILE)


def _add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def write_backup(config: Config, target: Path) -> None:
    """Snapshot the database (safe while the node runs) with config and secret."""
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name.")
    if config.database_url:
        raise BackupError("The node's data is in PostgreSQL (database_url): back it up with"
                          " PostgreSQL's own tools (pg_dump). grassroots backup copies the"
                          " SQLite database.")
    if not config.db_path.is_file():
        raise BackupError(f"{config.db_path} is missing; there is nothing to back up.")
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / DATABASE_FILE
        conn = connect_sync(config.db_path)
        try:
            # One consistent copy, taken beside a running node's writes.
            conn.execute("VACUUM INTO ?", (str(snapshot),))
        finally:
            conn.close()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                with tarfile.open(fileobj=out, mode="w:gz") as archive:
                    _add_file(archive, DATABASE_FILE, snapshot.read_bytes())
                    for name in (CONFIG_FILE, SECRET_FILE):
                        _add_file(archive, name, (config.data_dir / name).read_bytes())
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _unpack_backup(archive_path: Path, into: Path) -> None:
    """Write the archive's three files into ``into``, checking every member."""
    try:
        archive = tarfile.open(archive_path, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BackupError(f"{archive_path} is not a Grassroots backup ({e}).") from e
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BackupError(f"{archive_path} is damaged ({e}).") from e
        names = [m.name for m in members]
        for member in members:
            if member.name not in BACKUP_MEMBERS or not member.isreg():
                raise BackupError(f"{archive_path} holds an unexpected entry "
                                   f"{member.name!r}; refusing to restore it.")
        if sorted(names) != sorted(BACKUP_MEMBERS):
            raise BackupError(f"{archive_path} must hold exactly "
                               f"{', '.join(BACKUP_MEMBERS)}; it holds {', '.join(names)}.")
        for member in members:
            source = archive.extractfile(member)
            fd = os.open(into / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out)


def _check_restored(directory: Path) -> None:
    try:
        with open(directory / CONFIG_FILE, "rb") as f:
            public_url = tomllib.load(f).get("public_url")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BackupError(f"The backup's {CONFIG_FILE} is not valid ({e}).") from e
    if not isinstance(public_url, str):
        raise BackupError(f"The backup's {CONFIG_FILE} has no public_url.")
    if not (directory / SECRET_FILE).read_bytes().strip():
        raise BackupError(f"The backup's {SECRET_FILE} is empty.")
    uri = (directory / DATABASE_FILE).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
            conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"The backup's database cannot be read ({e}).") from e
    if result != [("ok",)]:
        raise BackupError("The backup's database fails its integrity check: "
                           + "; ".join(row[0] for row in result[:3]))


def restore_backup(source: Path, target: Path) -> None:
    """Unpack a backup into a new data directory: all of it, or nothing."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist or is not a file.")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not empty; restore into a new directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpacked beside the target, then renamed into place.
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target.parent))
    try:
        _unpack_backup(source, staging)
        _check_restored(staging)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(target, 0o700)


# Backups into backup_dir, rotated --------------------------------------------------

BACKUP_NAME = re.compile(r"grassroots-(\d{8}T\d{6}Z)\.tar\.gz")
NAME_TIME = "%Y%m%dT%H%M%SZ"
CHECK_SECONDS = 60.0  # how often a running node looks whether a backup is due
RETRY_AFTER_FAILURE = timedelta(hours=1)


def kept_backups(directory: Path) -> list[Path]:
    """The backups in ``directory`` named by their time, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if BACKUP_NAME.fullmatch(p.name))


def take_backup(config: Config, now: datetime | None = None) -> Path:
    """A backup into ``backup_dir`` named by its time; then the oldest beyond
    ``backup_keep`` are deleted. Never a half-written file under a backup's name."""
    directory = config.backup_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / f"grassroots-{(now or datetime.now(UTC)):{NAME_TIME}}.tar.gz"
    partial = directory / f".{target.name}.{os.getpid()}.partial"
    write_backup(config, partial)
    os.replace(partial, target)
    for old in kept_backups(directory)[:-config.backup_keep]:
        old.unlink()
    return target


def backup_due(config: Config, now: datetime) -> bool:
    """Whether the newest backup in ``backup_dir`` is ``backup_every_hours`` old."""
    existing = kept_backups(config.backup_path)
    if not existing:
        return True
    newest = BACKUP_NAME.fullmatch(existing[-1].name).group(1)
    taken = datetime.strptime(newest, NAME_TIME).replace(tzinfo=UTC)
    return now - taken >= timedelta(hours=config.backup_every_hours)


class BackupSchedule:
    """The running node's backups, every ``backup_every_hours``; a restart neither
    repeats one nor skips one (the newest file's name says when it was taken)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry_at = datetime.min.replace(tzinfo=UTC)

    def start(self) -> None:
        self._task = asyncio.create_task(
            repeat("backups", self._step, None, self._stopping, CHECK_SECONDS))

    async def _step(self) -> int:
        now = datetime.now(UTC)
        if now < self._retry_at or not await asyncio.to_thread(backup_due, self.config, now):
            return 0
        try:
            path = await asyncio.to_thread(take_backup, self.config)
        except (BackupError, OSError) as e:
            self._retry_at = now + RETRY_AFTER_FAILURE
            log.error("backup into %s failed, trying again in an hour: %s",
                      self.config.backup_path, e)
        else:
            log.info("backup written to %s", path)
        return 0

    async def stop(self) -> None:
        """Stop looking; a backup being written is finished first."""
        self._stopping.set()
        if self._task is not None:
            await self._task

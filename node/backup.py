"""Backups: one tar.gz of a database snapshot, the config and the secret key."""
from __future__ import annotations

import io
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

from node.config import CONFIG_FILE, DATABASE_FILE, SECRET_FILE, Config
from node.db import connect_sync


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
            with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as archive:
                _add_file(archive, DATABASE_FILE, snapshot.read_bytes())
                for name in (CONFIG_FILE, SECRET_FILE):
                    _add_file(archive, name, (config.data_dir / name).read_bytes())
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

"""The ``grassroots`` command.

Exit codes: 0 done; 1 an error, explained in one line (or one per problem);
2 a command line that does not parse; 3 not yet: what was waited for has not
happened (a follow request not delivered, or not arrived), try again later.
"""
from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import secrets
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.config import (
    BY_NAME,
    DATABASE_FILE,
    SECRET_FILE,
    Config,
    ConfigError,
    check_config,
    config_docs,
    follow_serve_address,
    is_initialised,
    load_config,
    read_settings,
    serve_url,
    unknown_variables,
    write_config,
)
from node.db import (
    Database,
    NewerDatabase,
    applied_migrations,
    check_not_newer,
    connect_sync,
    database_at,
    migrate,
    migration_files,
    stamp,
)
from node.domain import Account, AccountStatus
from node.mail import MailError, OutgoingMail, build_message
from node.storage import accounts

DEFAULT_DATA = Path("data")
EXIT_ERROR = 1
EXIT_NOT_YET = 3


async def _with_db(config: Config, work):
    db = database_at(config.database)
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


def initialise(data_dir: Path, public_url: str, derived: bool = False) -> str:
    """Create a data directory with its database and first admin; the login link.

    ``derived``: the URL was made from --host and --port, and follows them.
    """
    write_config(data_dir, public_url, derived)
    config = load_config(data_dir)

    async def first_admin(db: Database) -> str:
        admin_id = await accounts.create_account(
            db, email=None, display_name="Admin", password_hash=None, is_admin=True,
            verified=True)
        return await accounts.create_login_link(db, admin_id)

    return config.login_url(asyncio.run(_with_db(config, first_admin)))


def cmd_init(args: argparse.Namespace) -> int:
    if is_initialised(args.data):
        print(f"{args.data} is already a Grassroots data directory.", file=sys.stderr)
        return 1
    link = initialise(args.data, args.url or serve_url(args.host, args.port),
                      derived=args.url is None)
    print(f"Initialised {args.data}.\nLog in as the admin (once, within 24 hours): {link}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if not is_initialised(args.data):
        link = initialise(args.data, args.url or serve_url(args.host, args.port),
                          derived=args.url is None)
        print(f"Initialised {args.data}.")
        print(f"Log in as the admin (once, within 24 hours): {link}", flush=True)
    else:
        _check_database(args.data)
        if args.url is None and BY_NAME["public_url"].env not in os.environ:
            try:
                moved = follow_serve_address(args.data, args.host, args.port)
            except ConfigError as e:
                raise CommandError(str(e)) from e
            if moved:
                print(moved, flush=True)
    config = _config(args.data, args.url)
    if args.workers is not None:
        _shared_database(config, "serve --workers")
        if args.workers < 1:
            raise CommandError("--workers must be 1 or more")

    import uvicorn

    from node.app import WEB_PROCESS, create_app
    from node.logs import configure_logging

    if args.demo:
        from node.demo import seed_demo

        if asyncio.run(_with_db(config, seed_demo)):
            print("Added demo groups and meetings.", flush=True)
    if config.mail_settings.smtp_host is None:
        print(f"Mail is written to {config.data_dir / 'mail'} (no smtp_host in config.toml).",
              flush=True)
    # INFO: a line per request and per federation event, and the kind and subject of each
    # message written to a file (never an address).
    configure_logging(config.log_format)
    print(f"Serving {config.public_url} on http://{args.host}:{args.port}", flush=True)
    if args.workers is not None:
        print(f"{args.workers} web processes answer requests; grassroots worker does the"
              " node's work.", flush=True)
        # Each web process makes its app from these (node.app.web_process).
        os.environ[WEB_PROCESS] = json.dumps([str(args.data), config.public_url, args.dev])
    uvicorn.run(
        "node.app:web_process" if args.workers is not None else create_app(config, dev=args.dev),
        factory=args.workers is not None,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        log_config=None,  # node.logs has set the format
        access_log=False,  # node.web.observe logs each request, once
        proxy_headers=False,  # node.web.proxy does it, from trusted_proxies
        ws="none",  # no WebSocket routes; loading an implementation would cost ~1.3 MB
    )
    return 0


def _shared_database(config: Config, command: str) -> None:
    """Refuse ``command`` (several processes on one database) unless it is PostgreSQL."""
    if config.database_url is None:
        raise CommandError(f"{command} runs several processes on one database, which needs"
                           " PostgreSQL: set database_url (see Running a hub on PostgreSQL)."
                           " On SQLite, grassroots serve alone does everything.")


def cmd_worker(args: argparse.Namespace) -> int:
    _check_database(args.data)
    config = _config(args.data)
    _shared_database(config, "grassroots worker")
    from node.logs import configure_logging
    from node.work import run_worker

    configure_logging(config.log_format)
    print(f"Working for {config.public_url}; SIGTERM stops.", flush=True)
    asyncio.run(run_worker(config, args.dev))
    return 0


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


class CommandError(Exception):
    """Bad input to a command, or what it cannot do: the message is printed, and the
    exit code is ``code`` (1 unless said)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _initialised(data_dir: Path) -> None:
    if not is_initialised(data_dir):
        raise CommandError(f"{data_dir} is not a Grassroots data directory "
                           "(create one with: grassroots init --data DIR).")


def _config(data_dir: Path, public_url: str | None = None) -> Config:
    _initialised(data_dir)
    try:
        return load_config(data_dir, public_url)
    except ValueError as e:  # a mistake in config.toml, explained
        raise CommandError(str(e)) from e


# Admin accounts ------------------------------------------------------------

async def _account_by_email(db: Database, email: str) -> Account:
    account = await accounts.find_account(db, email)
    if account is None:
        raise CommandError(f"No account has the email {email}.")
    return account


def cmd_admin_list(args: argparse.Namespace) -> int:
    rows = [("ID", "ADMIN", "STATUS", "CREATED", "EMAIL", "NAME")]
    for a in asyncio.run(_with_db(_config(args.data), accounts.list_accounts)):
        rows.append((str(a.id), "admin" if a.is_admin else "-", a.status, a.created_at[:10],
                     a.email or "-", a.display_name))
    print_table(rows)
    return 0


def cmd_admin_link(args: argparse.Namespace) -> int:
    config = _config(args.data)

    async def work(db: Database) -> str:
        if args.email:
            account = await _account_by_email(db, args.email)
        else:
            account = await accounts.first_admin(db)
            if account is None:
                raise CommandError("This node has no admin account; name one by email.")
        if account.status is not AccountStatus.ACTIVE:
            raise CommandError(f"The account {account.email or account.id} is {account.status},"
                               " so it cannot log in.")
        return await accounts.create_login_link(db, account.id)

    link = config.login_url(asyncio.run(_with_db(config, work)))
    print(f"Log in (once, within 24 hours): {link}")
    return 0


def cmd_admin_grant(args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        account = await _account_by_email(db, args.email)
        if account.status is not AccountStatus.ACTIVE:
            raise CommandError(f"The account {args.email} is {account.status}; "
                               "only active accounts can be admins.")
        await accounts.set_admin(db, account.id, True)

    asyncio.run(_with_db(_config(args.data), work))
    print(f"{args.email} is now an admin.")
    return 0


def cmd_admin_revoke(args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        account = await _account_by_email(db, args.email)
        if not account.is_admin:
            raise CommandError(f"{args.email} is not an admin.")
        if not await accounts.set_admin(db, account.id, False):
            raise CommandError(f"{args.email} is the only active admin; "
                               "grant another account admin first.")

    asyncio.run(_with_db(_config(args.data), work))
    print(f"{args.email} is no longer an admin.")
    return 0


def cmd_admin_trust(args: argparse.Namespace) -> int:
    """Trust an account, so its public groups skip the review, or stop trusting it."""
    trusted = args.verb == "trust"

    async def work(db: Database) -> None:
        from node.storage.audit import record_action

        account = await _account_by_email(db, args.email)
        if await accounts.set_trusted(db, account.id, trusted):
            await record_action(db, COMMAND_LINE, f"account.{args.verb}", account.display_name)

    asyncio.run(_with_db(_config(args.data), work))
    print(f"{args.email} is trusted: their public groups skip the review." if trusted
          else f"{args.email} is no longer trusted.")
    return 0


# Who acted, in the audit log, for what is done from the command line.
COMMAND_LINE = "command line"


def cmd_admin_export(args: argparse.Namespace) -> int:
    """Everything the node holds about a member, as JSON on standard output."""
    from node.storage.account_data import account_export, export_document
    from node.storage.audit import record_action

    config = _config(args.data)

    async def work(db: Database) -> dict:
        account = await _account_by_email(db, args.email)
        await record_action(db, COMMAND_LINE, "account.export", f"account {account.id}")
        data = await account_export(db, account.id)
        assert data is not None
        return data

    sys.stdout.write(export_document(config.public_url, asyncio.run(_with_db(config, work))))
    return 0


def cmd_admin_erase(args: argparse.Namespace) -> int:
    """Erase a member's account, as they may ask; audited without what is erased."""
    async def work(db: Database) -> None:
        account = await _account_by_email(db, args.email)
        try:
            await accounts.delete_account(db, account.id, by=COMMAND_LINE)
        except accounts.HandOverFirst as e:
            raise CommandError(
                f"{args.email} is the only facilitator of: "
                + ", ".join(f"{name} (/groups/{slug}/members)" for slug, name in e.groups)
                + ". Make another member a facilitator there first.") from e
        except accounts.LastAdmin as e:
            raise CommandError(f"{args.email} is the only active admin; "
                               "grant another account admin first.") from e

    asyncio.run(_with_db(_config(args.data), work))
    print(f"The account {args.email} is erased.")
    return 0


# tarfile and the rest of node.backup are imported by these two commands only: a serving
# node need not hold them.

def cmd_backup(args: argparse.Namespace) -> int:
    """A backup to FILE, or without one into backup_dir, where the oldest beyond
    backup_keep are deleted (as the running node's scheduled backups are)."""
    from node.backup import BackupError, take_backup, write_backup

    config = _config(args.data)
    try:
        if args.file is None:
            target = take_backup(config)
        else:
            write_backup(config, target := args.file)
    except (BackupError, OSError) as e:
        raise CommandError(str(e)) from e
    kept = (f" (the newest {config.backup_keep} in {config.backup_path} are kept)"
            if args.file is None else "")
    print(f"Backed up {args.data} to {target}{kept}.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from node.backup import BackupError, restore_backup

    try:
        restore_backup(args.file, args.data)
    except BackupError as e:
        raise CommandError(str(e)) from e
    print(f"Restored {args.file} into {args.data}. "
          f"Start it with: grassroots serve --data {args.data}")
    return 0


# Configuration and database ------------------------------------------------

def cmd_config_show(args: argparse.Namespace) -> int:
    """The configuration in effect and where each value comes from; secrets never."""
    _initialised(args.data)
    settings, _ = read_settings(args.data)
    rows = [("KEY", "VALUE", "FROM")]
    rows += [(s.key.name, s.shown(), s.key.env if s.source == "environment" else s.source)
             for s in settings.values()]
    print_table(rows)
    print(f"secret key: in {args.data / SECRET_FILE} (never shown)")
    return _report(args.data)


def cmd_config_check(args: argparse.Namespace) -> int:
    _initialised(args.data)
    if _report(args.data) == 0:
        print(f"The configuration of {args.data} is valid.")
        return 0
    return EXIT_ERROR


def _report(data_dir: Path) -> int:
    """Print what is wrong with the configuration; its exit code."""
    for name in unknown_variables():
        print(f"note: {name} is not a configuration key; it is ignored")
    problems = check_config(data_dir)
    for problem in problems:
        print(f"grassroots: {problem}", file=sys.stderr)
    return EXIT_ERROR if problems else 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    print(config_docs(), end="")
    return 0


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise CommandError(f"{path} does not exist.")
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def _check_database(data_dir: Path) -> None:
    """Refuse (NewerDatabase) a database a newer version of Grassroots wrote."""
    if not (data_dir / DATABASE_FILE).exists():
        return  # made as the node starts
    conn = _read_only(data_dir / DATABASE_FILE)
    try:
        check_not_newer(conn)
    finally:
        conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    """The same command, and the same lines, on either engine (``database_url``)."""
    url = _config(args.data).database_url
    if url is not None:
        import asyncpg

        from node import postgres

        try:
            if args.status:
                return _migration_status(asyncio.run(postgres.applied_migrations(url)))
            applied = asyncio.run(postgres.migrate(url))
        except (OSError, asyncpg.PostgresError) as e:
            raise CommandError(f"database_url: PostgreSQL says: {e}") from e
    else:
        path = args.data / DATABASE_FILE
        conn = _read_only(path)
        try:
            if args.status:
                return _migration_status(applied_migrations(conn))
        finally:
            conn.close()
        conn = connect_sync(path)
        try:
            applied = migrate(conn)
        finally:
            conn.close()
    names = {version: name for version, name, _ in migration_files()}
    for version in applied:
        print(f"Applied {names[version]}.")
    print(f"The database in {args.data} is up to date.")
    return 0


def _migration_status(migrations: list[tuple[int, str, str]]) -> int:
    applied = {version: (name, at) for version, name, at in migrations}
    known = migration_files()
    rows = [("VERSION", "MIGRATION", "APPLIED")]
    rows += [(f"{version:04d}", name, applied[version][1] if version in applied else "pending")
             for version, name, _ in known]
    unknown = sorted(set(applied) - {version for version, _, _ in known})
    rows += [(f"{version:04d}", applied[version][0], applied[version][1]
              + " (unknown to this version)") for version in unknown]
    print_table(rows)
    pending = len(known) - len(set(applied) & {version for version, _, _ in known})
    if unknown:
        print("A newer version of Grassroots wrote this database; this one will not start"
              " on it.")
        return EXIT_ERROR
    print(f"{len(applied)} applied, {pending} pending." + (
        " grassroots migrate applies them (serve does too, as it starts); back up first."
        if pending else ""))
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    """Copy a node's data between SQLite and PostgreSQL, then check every table."""
    import asyncpg

    from node import dbcopy

    try:
        checks = asyncio.run(dbcopy.copy_database(args.source, args.target))
    except dbcopy.CopyRefused as e:
        raise CommandError(str(e)) from e
    except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise CommandError(f"the copy failed: {type(e).__name__}: {e}") from e
    rows = [("TABLE", "ROWS", "DIGEST")]
    for c in checks:  # a short digest; both sides' where they differ
        (count, digest), (their_count, their_digest) = c.source, c.target
        rows.append((c.table, str(count) if c.matches else f"{count} -> {their_count}",
                     digest[:16] if c.matches else f"{digest[:16]} -> {their_digest[:16]}"))
    print_table(rows)
    differ = [c.table for c in checks if not c.matches]
    if differ:
        raise CommandError("the copy does not match its source in: " + ", ".join(differ))
    print(f"{len(checks)} tables, {sum(c.source[0] for c in checks)} rows copied;"
          " every table's count and digest match.")
    return 0


# Mail ----------------------------------------------------------------------

def cmd_mail_test(args: argparse.Namespace) -> int:
    """One message through the configured transport, now, without the queue."""
    config = _config(args.data)
    settings = config.mail_settings
    try:
        mail = OutgoingMail(
            to_address=args.address, kind="test", subject="Grassroots test message",
            text=f"This is a test message from the Grassroots node at {config.public_url}."
                 "\nIf you can read it, the node can send mail.\n",
            html=f"<p>This is a test message from the Grassroots node at"
                 f" {html.escape(config.public_url)}.</p><p>If you can read it, the node can"
                 " send mail.</p>")
    except ValueError as e:
        raise CommandError(str(e)) from e
    message = build_message(mail, secrets.token_hex(16), datetime.now(UTC),
                            settings.from_address)
    try:
        outcome = asyncio.run(settings.transport(config.data_dir).send(message, mail.kind))
    except MailError as e:
        raise CommandError(f"not sent: {e}") from e
    print(f"Test message {outcome}")
    return 0


# Peers ---------------------------------------------------------------------

PEER_VERBS = {
    "follow": "follow a peer node (URL or domain)",
    "unfollow": "stop following a peer; its listings are removed",
    "approve": "let a peer that asked follow this node",
    "reject": "refuse a peer's follow request",
    "block": "refuse everything from a domain and remove its listings",
    "unblock": "lift a block",
}


# A follow waits until the peer has the request; an approve or reject, for a request
# made a moment ago on the other node and still on its way.
WAITING_VERBS = ("follow", "approve", "reject")
REQUEST_WAIT_SECONDS = 15.0


async def _peer_action(config: Config, verb: str, target: str, dev: bool,
                       **options: str | float) -> str:
    from federation import peers
    from federation.context import Federation
    from federation.documents import Urls
    from federation.fetch import Fetcher

    db = database_at(config.database)
    await db.open()
    try:
        async with Fetcher(allow_private=dev) as fetcher:
            fed = Federation(db, fetcher, Urls(config.public_url), dev)
            try:
                result = await getattr(peers, verb)(fed, target, **options)
            except peers.NotYet as e:
                raise CommandError(str(e), EXIT_NOT_YET) from e
            except peers.PeerError as e:
                raise CommandError(str(e)) from e
    finally:
        await db.close()
    if verb == "follow":
        return f"Asked {result.host} to be followed; it has the request, and its admin" \
               " approves or rejects it."
    if verb in ("unfollow", "block"):
        return f"Done; {result} listing(s) from that peer removed."
    return "Done."


def cmd_peers(args: argparse.Namespace) -> int:
    options: dict[str, str | float] = {"reason": args.reason} if args.verb == "block" else {}
    if args.verb in WAITING_VERBS:
        options["wait"] = args.wait
    print(asyncio.run(_peer_action(_config(args.data), args.verb, args.target, args.dev,
                                   **options)))
    return 0


def cmd_peers_list(args: argparse.Namespace) -> int:
    """Each peer, then each other server with deliveries waiting or failed (times UTC)."""
    from federation import peers, store

    config = _config(args.data)
    stale_before = stamp(datetime.now(UTC) - timedelta(days=config.listing_stale_days))

    async def work(db: Database):
        return await peers.overview(db, stale_before), await store.blocked_domains(db)

    hosts, blocked = asyncio.run(_with_db(config, work))
    rows = [("PEER", "WE FOLLOW", "FOLLOWS US", "LAST DELIVERY", "LAST INBOUND", "WAITING",
             "FAILING SINCE", "NEXT RETRY", "FAILED", "LISTINGS", "STALE", "BLOCKED")]
    for h in hosts:
        p, d = h.peer, h.deliveries
        rows.append((h.host, p.following if p else "-", p.follower if p else "-",
                     p and p.last_success_at or "-", p and p.last_inbound_at or "-",
                     str(d.queued), d.failing_since or "-", d.next_retry or "-", str(d.failed),
                     str(p.listings) if p else "-", str(p.stale) if p else "-",
                     "yes" if h.blocked else "-"))
    print_table(rows)
    print(f"listings are stale after {config.listing_stale_days} days without word from"
          f" their origin, retired after {config.listing_retire_days}")
    for block in blocked:
        print(f"blocked: {block.domain}" + (f" ({block.reason})" if block.reason else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grassroots", description="A Grassroots community node.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_data(cmd: argparse.ArgumentParser) -> argparse.ArgumentParser:
        cmd.add_argument("--data", type=Path, default=DEFAULT_DATA,
                         help="data directory (default: ./data)")
        return cmd

    def with_dev(cmd: argparse.ArgumentParser) -> argparse.ArgumentParser:
        cmd.add_argument("--dev", action="store_true",
                         help="allow http:// and private-address peers (local testing)")
        return cmd

    for name, help_text in (("serve", "run the node"), ("init", "create a data directory")):
        cmd = with_data(sub.add_parser(name, help=help_text))
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=8000)
        cmd.add_argument("--url", help="public URL (default: http://HOST:PORT)")
        if name == "serve":
            cmd.add_argument("--demo", action="store_true", help="add example groups and meetings")
            cmd.add_argument("--verbose", action="store_true",
                             help="log the server's start-up and shut-down too")
            with_dev(cmd)
            cmd.add_argument("--workers", type=int, metavar="N",
                             help="N web processes that answer requests only (PostgreSQL);"
                                  " grassroots worker does the node's work beside them")
        cmd.set_defaults(run=cmd_serve if name == "serve" else cmd_init)

    worker = with_dev(with_data(sub.add_parser(
        "worker", help="do the node's work (inbox, deliveries, mail) beside serve --workers")))
    worker.set_defaults(run=cmd_worker)

    admin = sub.add_parser("admin", help="manage accounts and admins").add_subparsers(
        dest="verb", required=True)
    with_data(admin.add_parser("list", help="list accounts")).set_defaults(run=cmd_admin_list)
    link = with_data(admin.add_parser("link", help="print a one-time login link"))
    link.add_argument("email", nargs="?", help="the account's email (default: the first admin)")
    link.set_defaults(run=cmd_admin_link)
    for verb, run, help_text in (
        ("grant", cmd_admin_grant, "make an account an admin"),
        ("revoke", cmd_admin_revoke, "remove an admin's rights"),
        ("trust", cmd_admin_trust, "let an account's public groups skip the review"),
        ("untrust", cmd_admin_trust, "make an account's public groups wait for review again"),
        ("export", cmd_admin_export, "print everything the node holds about an account (JSON)"),
        ("erase", cmd_admin_erase, "erase an account and its personal data, on its request"),
    ):
        cmd = with_data(admin.add_parser(verb, help=help_text))
        cmd.add_argument("email")
        cmd.set_defaults(run=run)

    peers = sub.add_parser("peers", help="federate with other nodes").add_subparsers(
        dest="verb", required=True)
    with_data(peers.add_parser("list", help="list peers and their state")).set_defaults(
        run=cmd_peers_list)
    for verb, help_text in PEER_VERBS.items():
        cmd = with_data(peers.add_parser(verb, help=help_text))
        cmd.add_argument("target", metavar="DOMAIN" if "block" in verb else "URL")
        with_dev(cmd)
        if verb == "block":
            cmd.add_argument("--reason", default="",
                             help="why, shown on /about/federation unless the list is private")
        if verb in WAITING_VERBS:
            cmd.add_argument("--wait", type=float, default=REQUEST_WAIT_SECONDS,
                             metavar="SECONDS", help="how long to wait for the request"
                             f" (default: {REQUEST_WAIT_SECONDS:g}; then exit code 3)")
        cmd.set_defaults(run=cmd_peers)

    mail = sub.add_parser("mail", help="check the node's mail").add_subparsers(
        dest="verb", required=True)
    test = with_data(mail.add_parser("test", help="send a test message now, and say how it went"))
    test.add_argument("address", help="where to send it")
    test.set_defaults(run=cmd_mail_test)

    for name, run, help_text in (
        ("backup", cmd_backup, "write the data directory to a .tar.gz, even while serving"),
        ("restore", cmd_restore, "unpack a backup into a new data directory"),
    ):
        cmd = with_data(sub.add_parser(name, help=help_text))
        if name == "backup":
            cmd.add_argument("file", type=Path, nargs="?",
                             help="where (default: a new file in backup_dir, rotated)")
        else:
            cmd.add_argument("file", type=Path)
        cmd.set_defaults(run=run)

    config = sub.add_parser("config", help="see and check the configuration").add_subparsers(
        dest="verb", required=True)
    with_data(config.add_parser(
        "show", help="print the configuration in effect and where each value comes from"
    )).set_defaults(run=cmd_config_show)
    with_data(config.add_parser(
        "check", help="check the configuration; exit code 1 when it is wrong"
    )).set_defaults(run=cmd_config_check)
    config.add_parser("docs", help="print every key as a Markdown table").set_defaults(
        run=cmd_config_docs)

    migrate_cmd = with_data(sub.add_parser(
        "migrate", help="bring the database up to this version (serve does too, as it starts)"))
    migrate_cmd.add_argument("--status", action="store_true",
                             help="list the applied and pending migrations; apply none")
    migrate_cmd.set_defaults(run=cmd_migrate)

    db = sub.add_parser("db", help="move the node's data between databases").add_subparsers(
        dest="verb", required=True)
    copy = db.add_parser("copy", help="copy every table from one database into a new, empty"
                         " one, and check each by count and digest")
    copy.add_argument("--from", dest="source", required=True, metavar="URL",
                      help="sqlite:///PATH/grassroots.db or postgresql://USER@HOST/DATABASE")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="the same forms; migrated first if empty, refused if it holds rows")
    copy.set_defaults(run=cmd_db_copy)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as e:
        print(f"grassroots: {e}", file=sys.stderr)
        return e.code
    except NewerDatabase as e:
        print(f"grassroots: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

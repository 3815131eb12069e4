"""Accounts, sessions, one-time login links and invite codes."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from node.db import Database, stamp, timestamp
from node.domain import Account, AccountStatus
from node.security import new_token, token_hash
from node.storage.rsvps import release_rsvp

SESSION_LIFETIME = timedelta(days=30)
LOGIN_LINK_LIFETIME = timedelta(hours=24)


class EmailTaken(Exception):
    pass


def _account(row: sqlite3.Row) -> Account:
    return Account(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        is_admin=bool(row["is_admin"]),
        status=AccountStatus(row["status"]),
        created_at=row["created_at"],
    )


def _later(delta: timedelta) -> str:
    return stamp(datetime.now(UTC) + delta)


async def create_account(
    db: Database,
    *,
    email: str | None,
    display_name: str,
    password_hash: str | None,
    is_admin: bool = False,
    status: AccountStatus = AccountStatus.ACTIVE,
    invite_code: str | None = None,
) -> int | None:
    """Create an account; with an invite code, spend one use of it.

    Returns None when the invite code is unknown or used up.
    """
    try:
        async with db.transaction() as conn:
            if invite_code is not None:
                cursor = await conn.execute(
                    "UPDATE invite_codes SET uses_left = uses_left - 1"
                    " WHERE code = ? AND uses_left > 0",
                    (invite_code,),
                )
                if cursor.rowcount != 1:
                    return None
            cursor = await conn.execute(
                "INSERT INTO accounts (email, display_name, password_hash, is_admin,"
                " status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (email, display_name, password_hash, int(is_admin), status, timestamp()),
            )
            return cursor.lastrowid
    except sqlite3.IntegrityError as e:
        if "accounts.email" in str(e):
            raise EmailTaken(email) from e
        raise


async def get_account(db: Database, account_id: int) -> Account | None:
    row = await db.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
    return None if row is None else _account(row)


async def credentials(db: Database, email: str) -> tuple[Account, str | None] | None:
    """The account with this email and its password hash, whatever its status."""
    row = await db.fetchone("SELECT * FROM accounts WHERE email = ?", (email,))
    return None if row is None else (_account(row), row["password_hash"])


async def password_hash_of(db: Database, account_id: int) -> str | None:
    return await db.fetchval("SELECT password_hash FROM accounts WHERE id = ?", (account_id,))


async def list_accounts(db: Database) -> list[Account]:
    rows = await db.fetchall("SELECT * FROM accounts ORDER BY status = 'pending' DESC, id")
    return [_account(r) for r in rows]


async def find_account(db: Database, email: str) -> Account | None:
    row = await db.fetchone("SELECT * FROM accounts WHERE email = ?", (email,))
    return None if row is None else _account(row)


async def first_admin(db: Database) -> Account | None:
    row = await db.fetchone("SELECT * FROM accounts WHERE is_admin = 1 ORDER BY id LIMIT 1")
    return None if row is None else _account(row)


async def update_profile(
    db: Database, account_id: int, *, display_name: str, email: str | None
) -> None:
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "UPDATE accounts SET display_name = ?, email = ? WHERE id = ?",
                (display_name, email, account_id),
            )
    except sqlite3.IntegrityError as e:
        raise EmailTaken(email) from e


async def set_password(db: Database, account_id: int, password_hash: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
        )


async def set_status(db: Database, account_id: int, status: AccountStatus) -> None:
    async with db.transaction() as conn:
        await conn.execute("UPDATE accounts SET status = ? WHERE id = ?", (status, account_id))
        if status is AccountStatus.SUSPENDED:
            await conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))


async def set_admin(db: Database, account_id: int, is_admin: bool) -> bool:
    """Grant or revoke admin; refuses to remove the last active admin."""
    async with db.transaction() as conn:
        if not is_admin:
            cursor = await conn.execute(
                "SELECT count(*) FROM accounts WHERE is_admin = 1 AND status = 'active'"
                " AND id != ?",
                (account_id,),
            )
            (others,) = await cursor.fetchone()
            if others == 0:
                return False
        await conn.execute(
            "UPDATE accounts SET is_admin = ? WHERE id = ?", (int(is_admin), account_id)
        )
        return True


async def delete_account(db: Database, account_id: int) -> None:
    """Remove every personal record of the account in one transaction.

    Seats it held at meetings go to the waitlist; groups and meetings stay
    with their group.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT event_id, occurrence FROM rsvps WHERE account_id = ?", (account_id,)
        )
        for event_id, occurrence in await cursor.fetchall():
            await release_rsvp(conn, event_id, occurrence, account_id)
        await conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


async def create_session(db: Database, account_id: int) -> str:
    token = new_token()
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM sessions WHERE expires_at < ?", (timestamp(),))
        await conn.execute(
            "INSERT INTO sessions (token_hash, account_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (token_hash(token), account_id, timestamp(), _later(SESSION_LIFETIME)),
        )
    return token


async def session_account(db: Database, token: str) -> Account | None:
    row = await db.fetchone(
        "SELECT a.* FROM sessions s JOIN accounts a ON a.id = s.account_id"
        " WHERE s.token_hash = ? AND s.expires_at > ? AND a.status = 'active'",
        (token_hash(token), timestamp()),
    )
    return None if row is None else _account(row)


async def end_session(db: Database, token: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash(token),))


async def end_other_sessions(db: Database, account_id: int, keep_token: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "DELETE FROM sessions WHERE account_id = ? AND token_hash != ?",
            (account_id, token_hash(keep_token)),
        )


async def create_login_link(db: Database, account_id: int) -> str:
    token = new_token()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO login_tokens (token_hash, account_id, expires_at) VALUES (?, ?, ?)",
            (token_hash(token), account_id, _later(LOGIN_LINK_LIFETIME)),
        )
    return token


async def use_login_link(db: Database, token: str) -> int | None:
    """The account the link logs in, spending the link; None if invalid."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM login_tokens WHERE token_hash = ? AND expires_at > ?"
            " RETURNING account_id",
            (token_hash(token), timestamp()),
        )
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def create_invite_code(db: Database, created_by: int, uses: int) -> str:
    code = new_token()[:12]
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO invite_codes (code, created_by, uses_left, created_at)"
            " VALUES (?, ?, ?, ?)",
            (code, created_by, uses, timestamp()),
        )
    return code


async def list_invite_codes(db: Database) -> list[sqlite3.Row]:
    return await db.fetchall(
        "SELECT code, uses_left, created_at FROM invite_codes WHERE uses_left > 0"
        " ORDER BY created_at DESC"
    )

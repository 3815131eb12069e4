"""Accounts, sessions, one-time login links, invite codes, and erasing an account.

The mail an account change causes (a link to confirm an address, a notice of a
new password) is passed in by the caller and committed with the change.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from node.db import Conflict, Database, Row, stamp, timestamp
from node.domain import Account, AccountStatus
from node.mail import OutgoingMail
from node.security import new_token, token_hash
from node.storage.audit import record_in
from node.storage.mail import enqueue_mail
from node.storage.notices import record_for_admins
from node.storage.rsvps import release_rsvp

SESSION_LIFETIME = timedelta(days=30)
LOGIN_LINK_LIFETIME = timedelta(hours=24)


class EmailTaken(Exception):
    pass


class HandOverFirst(Exception):
    """The account is the only facilitator of these groups, (slug, name) each."""

    def __init__(self, groups: list[tuple[str, str]]) -> None:
        super().__init__(", ".join(slug for slug, _ in groups))
        self.groups = groups


class LastAdmin(Exception):
    """The account is the node's only active admin, and a node needs one."""


# Who erased an account, as the audit log names them, when it was the member themselves.
FORMER_MEMBER = "a former member"


def _account(row: Row) -> Account:
    return Account(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        is_admin=bool(row["is_admin"]),
        status=AccountStatus(row["status"]),
        created_at=row["created_at"],
        language=row["language"],
        trusted=bool(row["trusted"]),
        email_verified=row["email_verified_at"] is not None,
        pending_email=row["pending_email"],
        join_reason=row["join_reason"],
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
    language: str = "en",
    verified: bool = False,
    join_reason: str = "",
    letter: Callable[[int], OutgoingMail] | None = None,
) -> int | None:
    """Create an account; with an invite code, spend one use of it.

    ``letter`` makes, from the new account's id, a message committed with it (the
    link to confirm its address). Every active admin is told of a pending account.
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
            now = timestamp()
            cursor = await conn.execute(
                "INSERT INTO accounts (email, display_name, password_hash, is_admin, status,"
                " created_at, language, email_verified_at, join_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (email, display_name, password_hash, int(is_admin), status, now, language,
                 now if verified else None, join_reason),
            )
            account_id = (await cursor.fetchone())[0]
            if letter is not None:
                await enqueue_mail(conn, letter(account_id))
            if status is AccountStatus.PENDING:
                await record_for_admins(conn, "account_review", applicant_id=account_id,
                                        reason=join_reason)
            return account_id
    except Conflict as e:
        if e.where == "accounts.email":
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


async def account_with_hash(db: Database, account_id: int) -> tuple[Account, str | None] | None:
    """The account and its password hash (what a reset link is bound to)."""
    row = await db.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
    return None if row is None else (_account(row), row["password_hash"])


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
    except Conflict as e:
        raise EmailTaken(email) from e


async def mark_verified(db: Database, account_id: int, email: str) -> bool:
    """Confirm the account's address if it is still ``email``; False if it is not."""
    rows = await db.write(
        "UPDATE accounts SET email_verified_at = coalesce(email_verified_at, ?)"
        " WHERE id = ? AND email = ? RETURNING id", (timestamp(), account_id, email))
    return bool(rows)


async def request_email_change(db: Database, account_id: int, new_email: str,
                               letters: Sequence[OutgoingMail]) -> None:
    """Keep ``new_email`` waiting for its confirmation, sending ``letters`` with it.

    Raises EmailTaken when another account logs in with it.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute("SELECT 1 FROM accounts WHERE email = ? AND id != ?",
                                    (new_email, account_id))
        if await cursor.fetchone() is not None:
            raise EmailTaken(new_email)
        await conn.execute("UPDATE accounts SET pending_email = ? WHERE id = ?",
                           (new_email, account_id))
        for letter in letters:
            await enqueue_mail(conn, letter)


async def queue_letter(db: Database, letter: OutgoingMail) -> None:
    """Send a message that changes nothing else (a link asked for again)."""
    async with db.transaction() as conn:
        await enqueue_mail(conn, letter)


async def cancel_email_change(db: Database, account_id: int) -> None:
    await db.write("UPDATE accounts SET pending_email = NULL WHERE id = ?", (account_id,))


async def confirm_email_change(db: Database, account_id: int, new_email: str) -> bool:
    """Log in with the waiting address from now on, if it is still ``new_email``.

    Raises EmailTaken when another account took it meanwhile.
    """
    try:
        rows = await db.write(
            "UPDATE accounts SET email = pending_email, pending_email = NULL,"
            " email_verified_at = ? WHERE id = ? AND pending_email = ? RETURNING id",
            (timestamp(), account_id, new_email))
    except Conflict as e:
        raise EmailTaken(new_email) from e
    return bool(rows)


async def change_password(db: Database, account_id: int, password_hash: str, *,
                          replacing: str | None, keep_session: str | None,
                          letter: OutgoingMail | None) -> bool:
    """Set the password, if it is still ``replacing``, and end every session of the account
    but ``keep_session``; False, changing nothing, if it is not.

    ``letter`` (the notice of the change) is committed with it.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE accounts SET password_hash = ? WHERE id = ?"
            " AND password_hash IS NOT DISTINCT FROM ?",
            (password_hash, account_id, replacing),
        )
        if cursor.rowcount != 1:
            return False
        await conn.execute(
            "DELETE FROM sessions WHERE account_id = ? AND token_hash != ?",
            (account_id, token_hash(keep_session) if keep_session else ""),
        )
        if letter is not None:
            await enqueue_mail(conn, letter)
        return True


async def set_status(db: Database, account_id: int, status: AccountStatus,
                     letter: OutgoingMail | None = None) -> None:
    """Approve, suspend or reinstate; ``letter`` tells the member, committed with it."""
    async with db.transaction() as conn:
        await conn.execute("UPDATE accounts SET status = ? WHERE id = ?", (status, account_id))
        if status is AccountStatus.ACTIVE:  # the applicant's reason has served its purpose
            await conn.execute("UPDATE accounts SET join_reason = '' WHERE id = ?",
                               (account_id,))
        if status is AccountStatus.SUSPENDED:
            await conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))
        if letter is not None:
            await enqueue_mail(conn, letter)


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


async def set_trusted(db: Database, account_id: int, trusted: bool) -> bool:
    """Trust an account, so its public groups skip the review, or stop; False if unchanged."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE accounts SET trusted = ? WHERE id = ? AND trusted != ?",
            (int(trusted), account_id, int(trusted)))
        return cursor.rowcount == 1


# The groups an account is the only active facilitator of: (slug, name), by name.
SOLE_FACILITATOR = (
    "SELECT g.slug, g.name FROM memberships m JOIN groups g ON g.id = m.group_id"
    " WHERE m.account_id = ? AND m.role = 'facilitator' AND m.status = 'active'"
    " AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.group_id = m.group_id"
    " AND o.account_id != m.account_id AND o.role = 'facilitator' AND o.status = 'active')"
    " ORDER BY g.name"
)


async def sole_facilitator_of(db: Database, account_id: int) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in await db.fetchall(SOLE_FACILITATOR, (account_id,))]


async def delete_account(db: Database, account_id: int, *, by: Account | str = FORMER_MEMBER,
                         action: str = "account.erase",
                         letter: OutgoingMail | None = None) -> None:
    """Erase the account and every personal record of it, in one transaction.

    Its memberships, RSVPs, sessions, notices, mail preferences and queued mail
    go with it (their foreign keys cascade); what it wrote in groups (reports)
    stays, no longer linked to anyone. Seats it held go to the waitlist. The
    audit log says ``action`` by ``by`` on the account's number, and nothing
    erased. ``letter`` (to the address, not the account) is sent after.

    Raises HandOverFirst when it is the only facilitator of a group, and
    LastAdmin when it is the only active admin.
    """
    async with db.transaction() as conn:
        handover = await conn.execute_fetchall(SOLE_FACILITATOR, (account_id,))
        if handover:
            raise HandOverFirst([(r[0], r[1]) for r in handover])
        cursor = await conn.execute(
            "SELECT a.is_admin = 1 AND a.status = 'active' AND NOT EXISTS (SELECT 1 FROM accounts o"
            " WHERE o.is_admin = 1 AND o.status = 'active' AND o.id != a.id)"
            " FROM accounts a WHERE a.id = ?", (account_id,))
        row = await cursor.fetchone()
        if row is not None and row[0]:
            raise LastAdmin()
        cursor = await conn.execute(
            "SELECT event_id, occurrence FROM rsvps WHERE account_id = ?", (account_id,)
        )
        for event_id, occurrence in await cursor.fetchall():
            await release_rsvp(conn, event_id, occurrence, account_id)
        await conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
        await record_in(conn, by, action, f"account {account_id}")
        if letter is not None:
            await enqueue_mail(conn, letter)


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


async def list_invite_codes(db: Database) -> list[Row]:
    return await db.fetchall(
        "SELECT code, uses_left, created_at FROM invite_codes WHERE uses_left > 0"
        " ORDER BY created_at DESC"
    )

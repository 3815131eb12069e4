"""Who is asking: the session's account, logging in and out, role checks."""
from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request

from node.domain import Account, Group, JoinPolicy, Membership
from node.i18n import gettext as _
from node.storage import accounts, groups

SESSION_KEY = "sid"


class LoginRequired(Exception):
    """Raised by handlers that need an account; answered with a redirect."""


async def current_account(request: Request) -> Account | None:
    try:
        return request.state.account
    except AttributeError:
        token = request.session.get(SESSION_KEY)
        account = await accounts.session_account(request.state.db, token) if token else None
        request.state.account = account
        return account


async def require_account(request: Request) -> Account:
    account = await current_account(request)
    if account is None:
        raise LoginRequired()
    return account


async def require_admin(request: Request) -> Account:
    account = await require_account(request)
    if not account.is_admin:
        raise HTTPException(403, _("Only the node's admins can do this."))
    return account


async def log_in(request: Request, account_id: int) -> None:
    """Start a fresh session: nothing from before login is carried over."""
    old = request.session.get(SESSION_KEY)
    if old:
        await accounts.end_session(request.state.db, old)
    request.session.clear()
    request.session[SESSION_KEY] = await accounts.create_session(request.state.db, account_id)
    request.state.account = await accounts.get_account(request.state.db, account_id)


async def log_out(request: Request) -> None:
    token = request.session.get(SESSION_KEY)
    if token:
        await accounts.end_session(request.state.db, token)
    request.session.clear()
    request.state.account = None


def can_view(group: Group, account: Account | None, membership: Membership | None) -> bool:
    """Private groups, and public ones waiting for review or refused, exist only for
    their members (and the node's admins)."""
    if not group.members_only:
        return True
    return bool(account and (account.is_admin or (membership and membership.is_active)))


def holds_invite(group: Group, code: str) -> bool:
    """Whether ``code`` is the invite code of a group joined by invite."""
    expected = group.invite_code or ""
    return (group.join_policy is JoinPolicy.INVITE and bool(code) and bool(expected)
            and hmac.compare_digest(code.encode(), expected.encode()))


def can_manage(account: Account | None, membership: Membership | None) -> bool:
    """Facilitators run their group; admins may step in."""
    return bool(account and (account.is_admin or (membership and membership.is_facilitator)))


def is_member(membership: Membership | None) -> bool:
    return bool(membership and membership.is_active)


async def visible_group(
    request: Request, slug: str, invite_code: str = ""
) -> tuple[Group, Account | None, Membership | None]:
    """The group, the viewer and their membership; 404 if the viewer may not see it.

    Whoever holds a private group's invite code sees it too, to join it.
    """
    db = request.state.db
    group = await groups.get_group(db, slug)
    account = await current_account(request)
    if group is None or not group.is_local:
        raise HTTPException(404)
    if group.suspended and not (account and account.is_admin):
        raise HTTPException(404)
    membership = await groups.get_membership(db, group.id, account.id) if account else None
    if not (can_view(group, account, membership) or holds_invite(group, invite_code)):
        raise HTTPException(404)
    return group, account, membership


async def managed_group(request: Request, slug: str) -> tuple[Group, Account, Membership | None]:
    group, account, membership = await visible_group(request, slug)
    if account is None:
        raise LoginRequired()
    if not can_manage(account, membership):
        raise HTTPException(403, _("Only this group's facilitators can do this."))
    return group, account, membership

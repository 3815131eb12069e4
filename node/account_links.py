"""The signed links of account mail: confirm an address, reset a password, confirm a new address.

A link's token carries the account's id and a fingerprint of what the link is
about (the address it confirms, the password it replaces), signed with the
node's secret key and a salt per purpose. It works until it is too old, or
until what it is about changes: a reset link dies when the password changes
(so it works once), a confirmation link when the address changes. Nothing is
stored; the token shows neither the address nor the password hash.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from itsdangerous import BadSignature, URLSafeTimedSerializer


class Purpose(StrEnum):
    VERIFY = "verify"  # the account's address is theirs: bound to that address
    RESET = "reset"  # a new password, without the old one: bound to address and password hash
    EMAIL = "email"  # the address asked for is theirs: bound to the old and the new address


LIFETIMES = {
    Purpose.VERIFY: timedelta(days=7),
    Purpose.RESET: timedelta(hours=1),
    Purpose.EMAIL: timedelta(days=1),
}

# Moved forward by tests to age links; the links' own timestamps are real time.
clock = time.time


@dataclass(frozen=True, slots=True)
class Claim:
    """What a genuine, unexpired token says: the account, and a fingerprint of its state."""

    account_id: int
    fingerprint: str


class AccountLinks:
    def __init__(self, secret_key: str) -> None:
        self._key = secret_key.encode()
        self._serializers = {purpose: URLSafeTimedSerializer(secret_key,
                                                             salt=f"grassroots.{purpose}")
                             for purpose in Purpose}

    def _fingerprint(self, purpose: Purpose, bound: tuple[str | None, ...]) -> str:
        state = "\x00".join([purpose, *(part or "" for part in bound)])
        return hmac.new(self._key, state.encode(), hashlib.sha256).hexdigest()[:32]

    def token(self, purpose: Purpose, account_id: int, *bound: str | None) -> str:
        """A link's token for the account, working while ``bound`` stays as it is."""
        return self._serializers[purpose].dumps([account_id, self._fingerprint(purpose, bound)])

    def claim(self, purpose: Purpose, token: str) -> Claim | None:
        """The token's claim if it is genuine, for ``purpose`` and young enough; else None."""
        try:
            payload, signed_at = self._serializers[purpose].loads(token, return_timestamp=True)
        except BadSignature:
            return None
        age = clock() - signed_at.timestamp()
        if not -60 <= age <= LIFETIMES[purpose].total_seconds():  # a minute of clock skew
            return None
        match payload:
            case [int(account_id), str(fingerprint)]:
                return Claim(account_id, fingerprint)
        return None

    def holds(self, purpose: Purpose, claim: Claim, *bound: str | None) -> bool:
        """Whether what the link is bound to is still as it was when it was made."""
        return hmac.compare_digest(claim.fingerprint, self._fingerprint(purpose, bound))

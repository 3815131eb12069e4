"""Passwords, tokens and login throttling."""
from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD_LENGTH = 10


@functools.cache
def _hasher() -> PasswordHasher:
    # argon2 and its cffi bindings load with the first password, not with an idle node.
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current defaults


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if not password_hash:
        # Same cost as a real check, so timing does not reveal the account.
        _hasher().hash(password)
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored hashed: a leaked database holds no usable link."""
    return hashlib.sha256(token.encode()).hexdigest()


class FailureLimiter:
    """Counts failures (or other events) per key in a sliding window; blocks at the limit."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def blocked(self, key: str, now: float | None = None) -> float:
        """Seconds until the key may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window - now

    def fail(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(key, now)
        self._failures.setdefault(key, deque()).append(now)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True, slots=True)
class SendLimit:
    """Requests that make the node mail an address: limited per that address and per client."""

    per_address: FailureLimiter
    per_client: FailureLimiter

    def wait(self, address: str, client: str) -> float:
        """Seconds until such a request may be made again; 0 when it may now."""
        return max(self.per_address.blocked(address.lower()), self.per_client.blocked(client))

    def count(self, address: str, client: str) -> None:
        self.per_address.fail(address.lower())
        self.per_client.fail(client)


def _hourly(per_address: int, per_client: int) -> SendLimit:
    return SendLimit(FailureLimiter(per_address, 3600), FailureLimiter(per_client, 3600))


@dataclass(frozen=True, slots=True)
class MailLimits:
    """How often, in an hour, a visitor may make the node send account mail.

    A client's limits allow a room of people registering together on one network.
    """

    register: SendLimit = field(default_factory=lambda: _hourly(3, 20))
    reset: SendLimit = field(default_factory=lambda: _hourly(3, 10))
    # Confirmation links: sent again, or to a new address.
    confirm: SendLimit = field(default_factory=lambda: _hourly(3, 10))

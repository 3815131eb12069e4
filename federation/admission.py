"""What the inbox remembers between requests: admitted peers and the owners of their keys.

Every inbox request asks whether its sender's host is a peer this node
admits (not blocked; followed by this node, or an approved follower) and
which actor owns the key that signed it. Answers that let a request in are
kept for `TTL` seconds, so a busy peer costs no database reads; refusals are
never kept, so a newly approved peer or a newly fetched key counts at once.
A block made in this process (`forget_all`) counts at once; a revocation
made by another process (the `grassroots peers` command) within `TTL`.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from federation.store import RemoteActor

TTL = 1.0
MAX_ENTRIES = 10_000  # per kind; past it the oldest answers go first


class Admission:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._hosts: dict[str, float] = {}  # host -> admitted until
        self._signers: dict[str, tuple[RemoteActor, float]] = {}  # key id -> owner, until

    def admits(self, host: str) -> bool:
        """True while ``host`` was lately found admitted."""
        until = self._hosts.get(host)
        return until is not None and until > self._clock()

    def admitted(self, host: str) -> None:
        _remember(self._hosts, host, self._clock() + self._ttl)

    def signer(self, key_id: str) -> RemoteActor | None:
        """The owner of ``key_id`` if it was lately looked up."""
        entry = self._signers.get(key_id)
        return entry[0] if entry is not None and entry[1] > self._clock() else None

    def signed_by(self, key_id: str, actor: RemoteActor) -> None:
        _remember(self._signers, key_id, (actor, self._clock() + self._ttl))

    def forget_all(self) -> None:
        self._hosts.clear()
        self._signers.clear()


def _remember(entries: dict, key: str, value: object) -> None:
    entries.pop(key, None)  # re-inserted last: the dict's order is the age
    entries[key] = value
    if len(entries) > MAX_ENTRIES:
        del entries[next(iter(entries))]

"""Keeping federated copies true: an origin that has gone quiet is asked again.

Every activity from its origin confirms a copy (``confirmed_at``). A group and
its meetings not confirmed for a day are refetched from their ids; what the
origin no longer has is removed, and an origin that does not answer is asked
again with backoff. Pages mark a copy stale once it is older than
``listing_stale_after``; one older than ``listing_retire_after`` is removed.
The same pass forgets inbound activities past the window a repeat is
recognised in.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from federation import store
from federation.context import Federation
from federation.fetch import FetchError
from federation.handlers import Ignored, fetch_current, store_listing
from federation.objects import ObjectError
from node.db import stamp
from node.storage import remote

log = logging.getLogger(__name__)

CHECK_AFTER = timedelta(days=1)
FIRST_RETRY = timedelta(hours=1)
BATCH = 20
INBOX_KEPT = timedelta(days=30)


def retry_delay(failures: int) -> timedelta:
    """An hour after the first failure, doubling, at most a day."""
    return min(FIRST_RETRY * 2 ** min(failures, 10), CHECK_AFTER)


async def refresh_listings(fed: Federation, now: datetime | None = None) -> int:
    """Recheck up to ``BATCH`` quiet groups, retire long-silent copies; how many were checked."""
    now = now or datetime.now(UTC)
    due = await remote.due_for_check(fed.db, stamp(now - CHECK_AFTER), stamp(now), BATCH)
    for origin, group_id, meetings in due:
        try:
            await _recheck(fed, origin, group_id, meetings)
        except (FetchError, Ignored, ObjectError) as e:
            log.info("recheck of %s failed: %s", group_id, e)
            failures = await remote.check_failures(fed.db, group_id)
            await remote.check_failed(fed.db, group_id, stamp(now + retry_delay(failures)))
    retired = await remote.retire_silent(fed.db, stamp(now - fed.listing_retire_after))
    if retired:
        log.info("retired %d federated listings their origins stopped confirming", retired)
    await store.prune_inbox(fed.db, stamp(now - INBOX_KEPT))
    return len(due)


async def _recheck(fed: Federation, origin: str, group_id: str, meetings: list[str]) -> None:
    """The group as its origin serves it now, then each of its meetings."""
    group = await fetch_current(fed, group_id)
    if group is None:
        await remote.delete_remote(fed.db, group_id, origin)
        return
    await store_listing(fed, group, origin)
    for meeting_id in meetings:
        meeting = await fetch_current(fed, meeting_id)
        if meeting is None:
            await remote.delete_remote(fed.db, meeting_id, origin)
            continue
        try:
            await store_listing(fed, meeting, origin)
        except (Ignored, ObjectError) as e:
            log.info("recheck of %s: %s", meeting_id, e)

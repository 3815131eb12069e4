"""What a group's members set in motion that comes due with time: a theme chosen ahead of
its meeting, a change to the agreements adopted when its discussion ends, reminders to
those who hold a meeting, and pulses erased when their group said so."""
from __future__ import annotations

from datetime import datetime

from node.db import Database
from node.storage import agreements, pulses, rota, themes


async def settle(db: Database, now: datetime) -> int:
    """Everything due at ``now``; how many things were done."""
    return (await themes.settle_due(db, now) + await agreements.settle_due(db, now)
            + await rota.record_due_reminders(db, now) + await pulses.erase_expired(db, now))

"""What the federation side reports as it works, for the node to count (``node.metrics``).

One call per inbox answer and per delivery attempt, with values from short fixed
lists (never an actor, an id or a body). This base reports nothing.
"""
from __future__ import annotations

# The activity types named in metrics and logs; any other is "other" (a peer
# chooses the type, and must not choose new label values or log lines).
ACTIVITY_TYPES = frozenset({"Accept", "Add", "Announce", "Block", "Create", "Delete", "Flag",
                            "Follow", "Like", "Move", "Reject", "Remove", "Undo", "Update"})


def activity_label(activity_type: object) -> str:
    return str(activity_type) if activity_type in ACTIVITY_TYPES else "other"


class FederationEvents:
    def inbox_accepted(self, activity_type: str) -> None:
        """An activity was stored (or had been) and answered 202; the type's label."""

    def inbox_refused(self, status: int, reason: str) -> None:
        """An inbox request was answered ``status``, nothing stored; ``reason`` is a word."""

    def delivery_finished(self, outcome: str) -> None:
        """One delivery's attempt ended: "sent", "retry" or "failed"."""

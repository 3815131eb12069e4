"""Small builders shared by tests."""
from __future__ import annotations

from node.domain import Cost, Format, GroupDraft, JoinPolicy, Visibility


def group_form(**overrides: object) -> dict[str, object]:
    """A valid group form as a facilitator fills it in."""
    form: dict[str, object] = {
        "name": "Tuesday Grief Circle",
        "summary": "A gentle peer group for anyone grieving.",
        "description": "We meet **weekly**. Tea provided.",
        "agreements": "1. What is said here stays here.",
        "topics": "grief, bereavement",
        "audiences": "",
        "languages": "en",
        "format": "in_person",
        "area": "Leith",
        "address": "12 Kirkgate, Edinburgh",
        "cost": "free",
        "contact": "hello@grief-circle.example",
        "visibility": "public",
        "join_policy": "open",
        "accessibility": ["step_free", "quiet_space"],
    }
    form.update(overrides)
    return form


def draft(**overrides: object) -> GroupDraft:
    values: dict[str, object] = dict(
        name="Anxiety Peer Support",
        summary="Share and listen.",
        description="",
        agreements="",
        visibility=Visibility.PUBLIC,
        join_policy=JoinPolicy.OPEN,
        format=Format.ONLINE,
        cost=Cost.FREE,
        topics=("anxiety",),
        languages=("en",),
    )
    values.update(overrides)
    return GroupDraft(**values)

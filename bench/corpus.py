"""Realistic listings, made up from a seed: peer-support groups and their meetings.

Names, summaries and descriptions are assembled from phrases a facilitator
would write; topics and languages follow a long-tailed spread (a few common,
many rare); meetings recur weekly, fortnightly, monthly or happen once, in
the time zone of their area.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.domain import (
    ACCESSIBILITY,
    Cost,
    EventDraft,
    Format,
    GroupDraft,
    JoinPolicy,
    Visibility,
)

TOPICS = [
    "grief", "anxiety", "depression", "recovery", "addiction", "carers", "bereavement",
    "loneliness", "parenting", "chronic-pain", "alcohol", "postnatal", "adhd", "autism",
    "trauma", "ptsd", "bipolar", "eating-disorders", "dementia", "cancer", "long-covid",
    "hearing-voices", "gambling", "self-harm", "ocd", "suicide-bereavement", "lgbtq",
    "domestic-abuse", "refugees", "fibromyalgia", "diabetes", "stroke", "hoarding",
    "sleep", "menopause", "miscarriage", "divorce", "unemployment", "psychosis", "tinnitus",
]
LANGUAGES = ["en", "es", "fr", "de", "pt", "it", "nl", "pl", "ar", "tr", "uk", "ro", "sv", "el",
             "cy", "ga", "eu", "ca"]
PLACES = [  # (area, time zone)
    ("Leith", "Europe/London"), ("Riverside", "Europe/London"), ("Hackney", "Europe/London"),
    ("Moss Side", "Europe/London"), ("Canton", "Europe/London"), ("Govan", "Europe/London"),
    ("Kreuzberg", "Europe/Berlin"), ("Neukölln", "Europe/Berlin"), ("Ehrenfeld", "Europe/Berlin"),
    ("Lavapiés", "Europe/Madrid"), ("Gràcia", "Europe/Madrid"), ("Triana", "Europe/Madrid"),
    ("Belleville", "Europe/Paris"), ("Croix-Rousse", "Europe/Paris"), ("Wazemmes", "Europe/Paris"),
    ("Alfama", "Europe/Lisbon"), ("Bonfim", "Europe/Lisbon"), ("Pigneto", "Europe/Rome"),
    ("Navigli", "Europe/Rome"), ("De Pijp", "Europe/Amsterdam"), ("Kazimierz", "Europe/Warsaw"),
    ("Kadıköy", "Europe/Istanbul"), ("Podil", "Europe/Kyiv"), ("Södermalm", "Europe/Stockholm"),
    ("Exarchia", "Europe/Athens"), ("Smithfield", "Europe/Dublin"), ("Brooklyn", "America/New_York"),
    ("Mission", "America/Los_Angeles"), ("Plateau", "America/Toronto"), ("Fitzroy", "Australia/Melbourne"),
]
NAME_STARTS = ["Tuesday", "Wednesday", "Thursday", "Saturday", "Sunday", "Evening", "Morning",
               "Open", "Gentle", "Together", "Safe Harbour", "Common Ground", "Kitchen Table",
               "Lighthouse", "Stepping Stones", "New Leaf", "Quiet Corner", "Second Chance"]
NAME_ENDS = ["Circle", "Peer Support", "Group", "Café", "Drop-in", "Meet-up", "Collective",
             "Network", "Walk and Talk", "Sharing Space"]
SUMMARIES = [
    "A {tone} {kind} for anyone living with {topic}.",
    "Peer support for people affected by {topic}, run by people who have been there.",
    "{Kind} for {audience} dealing with {topic}; come as you are.",
    "Share, listen and find company on the road through {topic}.",
    "A small, welcoming {kind} about {topic} and {topic2}.",
]
SENTENCES = [
    "Whether your experience is recent or years ago, you are welcome here.",
    "We sit in a circle, take turns to speak (or not), and share tea afterwards.",
    "Facilitated by volunteers with lived experience of {topic}.",
    "Cameras are optional and you can take part by chat only.",
    "We share what helps, and what does not, without judgement.",
    "Newcomers are welcome at any meeting; there is no need to book.",
    "Each meeting starts with a short check-in and ends with a grounding exercise.",
    "We talk about {topic}, {topic2} and everything in between.",
    "Family members, partners and friends are welcome at the last meeting of the month.",
    "The room is step-free and there is a quiet space if you need a break.",
    "We are not therapists: this is mutual support between equals.",
    "Some weeks we invite a guest speaker; most weeks we simply talk.",
    "Bring nothing but yourself. Biscuits are on us.",
    "Our group agreements are read aloud at the start of every meeting.",
    "Meetings are held in {language_name}, with help for those still learning.",
    "Many of us found the group after a hard winter; it has kept us going.",
    "We also keep a list of local services and crisis lines for {area}.",
    "Walks in the park replace the meeting on sunny Saturdays.",
]
TONES = ["gentle", "friendly", "drop-in", "small", "confidential", "relaxed", "weekly"]
KINDS = ["circle", "peer group", "support group", "sharing space", "meet-up"]
AUDIENCES = ["parents", "carers", "young adults", "older people", "women", "men", "students",
             "families", "partners", "veterans"]
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German"}
EVENT_TITLES = ["Weekly circle", "Open meeting", "Newcomers' evening", "Monthly sharing",
                "Walk and talk", "Online check-in", "Coffee morning", "Family evening",
                "Creative session", "Guest speaker night"]


def _weighted(rng: random.Random, items: list[str], skew: float = 1.1) -> str:
    """Long-tailed pick: the first items are much more common than the last."""
    weights = [1 / (rank + 1) ** skew for rank in range(len(items))]
    return rng.choices(items, weights)[0]


def _fill(rng: random.Random, template: str, topic: str, topic2: str, area: str,
          language: str) -> str:
    return template.format(
        tone=rng.choice(TONES), kind=rng.choice(KINDS), Kind=rng.choice(KINDS).capitalize(),
        topic=topic.replace("-", " "), topic2=topic2.replace("-", " "),
        audience=rng.choice(AUDIENCES), area=area,
        language_name=LANGUAGE_NAMES.get(language, "English"))


@dataclass(frozen=True, slots=True)
class Listing:
    """A group as a node lists it, with its area's time zone for its meetings."""

    draft: GroupDraft
    timezone: str


def group(rng: random.Random, serial: int) -> Listing:
    topics = list(dict.fromkeys(_weighted(rng, TOPICS) for _ in range(rng.randint(1, 3))))
    topic2 = topics[1] if len(topics) > 1 else _weighted(rng, TOPICS)
    languages = [_weighted(rng, LANGUAGES, 1.6)]
    if rng.random() < 0.15:
        languages.append("en" if languages[0] != "en" else _weighted(rng, LANGUAGES[1:]))
    area, zone = rng.choice(PLACES)
    fmt = rng.choices(list(Format), [0.55, 0.3, 0.15])[0]
    name = f"{rng.choice(NAME_STARTS)} {topics[0].replace('-', ' ').title()} {rng.choice(NAME_ENDS)}"
    words = {"topic": topics[0], "topic2": topic2, "area": area, "language": languages[0]}
    description = " ".join(_fill(rng, s, **words) for s in rng.sample(SENTENCES, rng.randint(3, 7)))
    draft = GroupDraft(
        name=f"{name} {area}" if serial % 3 else name,
        summary=_fill(rng, rng.choice(SUMMARIES), **words),
        description=description,
        agreements="1. What is said here stays here.\n2. Speak from your own experience.",
        visibility=rng.choices([Visibility.PUBLIC, Visibility.UNLISTED, Visibility.PRIVATE],
                               [0.9, 0.05, 0.05])[0],
        join_policy=rng.choices(list(JoinPolicy), [0.6, 0.3, 0.1])[0],
        format=fmt,
        cost=rng.choices(list(Cost), [0.7, 0.15, 0.1, 0.05])[0],
        area="" if fmt is Format.ONLINE else area,
        address="" if fmt is Format.ONLINE else f"{rng.randint(1, 200)} Mill Lane, {area}",
        topics=tuple(topics),
        languages=tuple(languages),
        accessibility=tuple(rng.sample(sorted(ACCESSIBILITY), rng.randint(0, 4))),
        audiences=tuple(rng.sample(AUDIENCES, rng.randint(0, 2))),
    )
    return Listing(draft, zone)


RULES = [  # (share, RRULE or None for a one-off); BYDAY filled from the start day
    (0.35, "FREQ=WEEKLY;BYDAY={day}"),
    (0.15, "FREQ=WEEKLY;INTERVAL=2;BYDAY={day}"),
    (0.20, "FREQ=MONTHLY;BYDAY=1{day}"),
    (0.30, None),
]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def meeting(rng: random.Random, listing: Listing, today: datetime) -> EventDraft:
    _, rule = rng.choices(RULES, [share for share, _ in RULES])[0]
    start = (today + timedelta(days=rng.randint(-60, 200))).replace(
        hour=rng.choice([10, 11, 14, 18, 19]), minute=rng.choice([0, 30]), second=0,
        microsecond=0)
    draft = listing.draft
    return EventDraft(
        title=rng.choice(EVENT_TITLES),
        description=_fill(rng, rng.choice(SENTENCES), topic=draft.topics[0],
                          topic2=draft.topics[-1], area=draft.area or "your area",
                          language=draft.languages[0]),
        starts_at=start,
        duration_minutes=rng.choice([60, 90, 120]),
        timezone=listing.timezone,
        rrule=rule.format(day=DAYS[start.weekday()]) if rule else None,
        format=draft.format,
        place="Community Centre" if draft.format is not Format.ONLINE else "",
        address=draft.address,
        capacity=rng.choice([None, None, 12, 20, 30]),
    )

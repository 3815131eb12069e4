"""Example groups and meetings, so a newcomer's node looks alive (``serve --demo``)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from node.db import Database
from node.domain import (
    AgreementDecision,
    Cost,
    EventDraft,
    Facilitation,
    Format,
    GroupDraft,
    JoinPolicy,
    MembershipStatus,
    NodeSettings,
    OccurrenceChange,
    Practice,
    RegistrationMode,
    ThemeChoice,
    Visibility,
    occurrence_key,
)
from node.storage import (
    accounts,
    agreements,
    events,
    groups,
    pulses,
    resources,
    rota,
    themes,
)
from node.storage.notices import forget_notices
from node.storage.practice import save_practice
from node.storage.resources import ResourceDraft, ResourceKind
from node.storage.rota import Holding
from node.storage.settings import save_settings

FACILITATOR_EMAIL = "facilitator@demo.invalid"
# This group's second meeting falls on a holiday: it shows a cancelled occurrence.
HOLIDAY_BREAK = "Tuesday Grief Circle"

SETTINGS = NodeSettings(
    name="Riverside Peer Support (demo)",
    description=(
        "A **demonstration** node: the groups and meetings here are examples.\n\n"
        "Peer-support groups are run by people with lived experience, for each other. "
        "Find one near you or online, join, and come along."
    ),
    registration=RegistrationMode.OPEN,
    default_language="en",
    crisis_notice=(
        "If you are in crisis or worried about your safety, call your local emergency "
        "number now (112 across Europe, 999 in the UK). In the UK and Ireland you can "
        "also call Samaritans free, any time, on **116 123**. Peer groups are not a "
        "crisis service."
    ),
)

AGREEMENTS = """\
1. **What is said here stays here.** Share what you learned, never who said it.
2. Speak from your own experience; no advice unless someone asks for it.
3. One person speaks at a time. You may always pass.
4. Arrive sober, and leave if you need to: no explanation needed.
"""


def _groups() -> list[GroupDraft]:
    return [
        GroupDraft(
            name="Tuesday Grief Circle",
            summary="A gentle, drop-in circle for anyone living with loss.",
            description=(
                "Whether your loss is recent or years ago, you are welcome. We sit in a "
                "circle, take turns to speak (or not), and share tea afterwards.\n\n"
                "Facilitated by volunteers who have been bereaved themselves."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.OPEN,
            format=Format.IN_PERSON, cost=Cost.FREE,
            area="Riverside", address="Riverside Community Centre, 4 Mill Lane (room 2)",
            contact="grief-circle@demo.invalid",
            topics=("grief", "bereavement"), languages=("en",),
            accessibility=("step_free", "wheelchair_toilet", "hearing_loop", "quiet_space"),
        ),
        GroupDraft(
            name="Calm Minds: Anxiety Peer Support",
            summary="An online group for people living with anxiety and panic.",
            description=(
                "Every Wednesday evening on video. Cameras optional; you can take part "
                "by chat only. We share what helps, and what does not, without judgement."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.APPROVAL,
            format=Format.ONLINE, cost=Cost.FREE,
            contact="calm-minds@demo.invalid",
            topics=("anxiety", "panic"), languages=("en",),
            accessibility=("captions", "quiet_space"),
        ),
        GroupDraft(
            name="Recuperación Juntos",
            summary="Grupo de apoyo entre pares para la recuperación de adicciones, en español.",
            description=(
                "Un espacio seguro para personas en recuperación de alcohol, drogas o juego. "
                "Nos reunimos en persona y por videollamada cada dos semanas."
            ),
            agreements=(
                "1. Lo que se dice aquí, se queda aquí.\n"
                "2. Hablamos desde nuestra propia experiencia.\n"
                "3. Llegamos sobrios a la reunión."
            ),
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.OPEN,
            format=Format.HYBRID, cost=Cost.DONATION,
            area="Riverside", address="Biblioteca de Riverside, sala 1",
            contact="recuperacion@demo.invalid",
            topics=("addiction-recovery",), languages=("es", "en"),
            accessibility=("step_free", "gender_neutral_toilets"),
        ),
        GroupDraft(
            name="New Parents' Morning",
            summary="Babies welcome: a friendly morning for tired new parents.",
            description=(
                "For mums, dads and co-parents of babies under two, including anyone finding "
                "it hard, or living with postnatal depression. Babies and buggies welcome; "
                "a quiet corner for feeding."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.OPEN,
            format=Format.IN_PERSON, cost=Cost.SLIDING_SCALE,
            area="Northfield", address="Northfield Family Hub, 22 Orchard Road",
            contact="new-parents@demo.invalid",
            topics=("new-parents", "postnatal-depression"), languages=("en", "pl"),
            accessibility=("step_free", "childcare", "quiet_space"),
        ),
        GroupDraft(
            name="Men's Shed Talk",
            summary="Men talking about mental health, over tea and a workbench.",
            description=(
                "Hands busy, mind open. We meet on the first Saturday of the month at the "
                "community workshop. No experience with tools needed."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.OPEN,
            format=Format.IN_PERSON, cost=Cost.FEE,
            area="Northfield", address="Northfield Community Workshop, Unit 3, Canal Yard",
            contact="mens-shed@demo.invalid",
            topics=("mens-mental-health", "depression"), languages=("en",),
            audiences=("men",),
            accessibility=("step_free", "large_print"),
        ),
        GroupDraft(
            name="Rainbow Circle",
            summary="Peer support for LGBTQ+ adults, in English and Polish.",
            description=(
                "A warm, affirming group for lesbian, gay, bi, trans, queer and questioning "
                "adults. Come as you are; use the name and pronouns you choose."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.PUBLIC, join_policy=JoinPolicy.APPROVAL,
            format=Format.HYBRID, cost=Cost.FREE,
            area="Riverside", address="The Lantern Café (upstairs room)",
            contact="rainbow-circle@demo.invalid",
            topics=("lgbtq", "identity"), languages=("en", "pl"),
            audiences=("lgbtq",),
            accessibility=("gender_neutral_toilets", "sign_language", "quiet_space"),
        ),
        GroupDraft(
            name="Carers' Coffee Hour",
            summary="An hour for unpaid carers, by link only while we find our feet.",
            description=(
                "For anyone caring for a family member or friend. This group is unlisted: "
                "share its link with carers you know."
            ),
            agreements=AGREEMENTS,
            visibility=Visibility.UNLISTED, join_policy=JoinPolicy.OPEN,
            format=Format.ONLINE, cost=Cost.FREE,
            contact="carers@demo.invalid",
            topics=("carers",), languages=("en",),
            accessibility=("captions",),
        ),
        GroupDraft(
            name="Survivors' Circle",
            summary="A closed group for survivors of domestic abuse.",
            description="Members only. A facilitator talks with each person before they join.",
            agreements=AGREEMENTS,
            visibility=Visibility.PRIVATE, join_policy=JoinPolicy.INVITE,
            format=Format.IN_PERSON, cost=Cost.FREE,
            area="Riverside", address="Given to members",
            topics=("domestic-abuse",), languages=("en",), audiences=("women",),
            accessibility=("step_free", "childcare"),
        ),
    ]


def _next_weekday(start: date, weekday: int) -> date:
    """The first date on or after ``start`` falling on ``weekday`` (Monday is 0)."""
    return start + timedelta(days=(weekday - start.weekday()) % 7)


def _next_first_saturday(start: date) -> date:
    month = start.replace(day=1)
    while True:
        first = _next_weekday(month, 5)
        if first >= start:
            return first
        month = (month + timedelta(days=32)).replace(day=1)


def _meetings(today: date) -> dict[str, list[EventDraft]]:
    """Meeting series per group name, starting in the coming days."""
    soon = today + timedelta(days=1)
    at = datetime.combine
    return {
        "Tuesday Grief Circle": [EventDraft(
            title="Grief circle", description="Drop in; tea and biscuits from 18:45.",
            starts_at=at(_next_weekday(soon, 1), time(19, 0)), duration_minutes=90,
            timezone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=TU", format=Format.IN_PERSON,
            place="Riverside Community Centre, room 2", address="4 Mill Lane", capacity=14,
        )],
        "Calm Minds: Anxiety Peer Support": [EventDraft(
            title="Calm Minds online", description="The link opens ten minutes early.",
            starts_at=at(_next_weekday(soon, 2), time(20, 0)), duration_minutes=60,
            timezone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=WE", format=Format.ONLINE,
            online_url="https://meet.demo.invalid/calm-minds", capacity=20,
        )],
        "Recuperación Juntos": [EventDraft(
            title="Reunión quincenal", description="En persona y por videollamada.",
            starts_at=at(_next_weekday(soon, 3), time(19, 30)), duration_minutes=90,
            timezone="Europe/Madrid", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TH",
            format=Format.HYBRID, place="Biblioteca de Riverside, sala 1",
            online_url="https://meet.demo.invalid/recuperacion",
        )],
        "New Parents' Morning": [EventDraft(
            title="New parents' morning", description="Babies welcome.",
            starts_at=at(_next_weekday(soon, 4), time(10, 0)), duration_minutes=120,
            timezone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=FR", format=Format.IN_PERSON,
            place="Northfield Family Hub", address="22 Orchard Road", capacity=12,
        )],
        "Men's Shed Talk": [EventDraft(
            title="Shed talk", description="First Saturday of every month. £3 towards materials.",
            starts_at=at(_next_first_saturday(soon), time(11, 0)), duration_minutes=150,
            timezone="Europe/London", rrule="FREQ=MONTHLY;BYDAY=1SA", format=Format.IN_PERSON,
            place="Northfield Community Workshop", address="Unit 3, Canal Yard", capacity=10,
        )],
        "Rainbow Circle": [
            EventDraft(
                title="Rainbow Circle", description="Fortnightly, in person and online.",
                starts_at=at(_next_weekday(soon, 0), time(19, 0)), duration_minutes=90,
                timezone="Europe/Warsaw", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
                format=Format.HYBRID, place="The Lantern Café, upstairs",
                online_url="https://meet.demo.invalid/rainbow", capacity=16,
            ),
            EventDraft(
                title="Pride picnic", description="A one-off summer picnic; bring something to share.",
                starts_at=at(today + timedelta(days=17), time(13, 0)), duration_minutes=180,
                timezone="Europe/London", rrule=None, format=Format.IN_PERSON,
                place="Riverside Park, by the bandstand",
            ),
        ],
        "Carers' Coffee Hour": [EventDraft(
            title="Carers' coffee hour", description="Bring a cuppa.",
            starts_at=at(_next_weekday(soon, 5), time(9, 30)), duration_minutes=60,
            timezone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=SA", format=Format.ONLINE,
            online_url="https://meet.demo.invalid/carers",
        )],
        "Survivors' Circle": [EventDraft(
            title="Survivors' circle", description="For members.",
            starts_at=at(_next_weekday(soon, 3), time(14, 0)), duration_minutes=90,
            timezone="Europe/London", rrule="FREQ=WEEKLY;BYDAY=TH", format=Format.IN_PERSON,
            place="Given to members", capacity=8,
        )],
    }


# A group its members run: themes they propose, a rota, agreements they change together,
# check-out pulses and resources. The node's admin is one of its members, so whoever
# starts the demo sees all of it once logged in.
SHARING_CIRCLE = GroupDraft(
    name="Sunday Sharing Circle",
    summary="A peer-run circle: members choose each week's theme and take turns holding it.",
    description=(
        "Every Sunday evening we sit in a circle and talk about one theme, chosen by the "
        "members the week before. Members take turns to hold the circle; no one is an "
        "expert here."
    ),
    agreements=AGREEMENTS,
    visibility=Visibility.PUBLIC, join_policy=JoinPolicy.OPEN,
    format=Format.IN_PERSON, cost=Cost.FREE,
    area="Riverside", address="Riverside Quaker Meeting House, 9 Ferry Road",
    contact="sharing-circle@demo.invalid",
    topics=("peer-support", "wellbeing"), languages=("en",),
    accessibility=("step_free", "hearing_loop", "quiet_space"),
)
CIRCLE_MEMBERS = ("Priya", "Jonas", "Ade", "Mei", "Tom", "Rosa")
CIRCLE_PRACTICE = Practice(
    theme_choice=ThemeChoice.MOST_SUPPORTED, themes_public=True, theme_lead_hours=48,
    facilitation=Facilitation.ROTATING, agreement_decision=AgreementDecision.CONSENT,
    discussion_days=7, pulse_keep_days=90)
ON_TIME = AGREEMENTS + "5. We start and end on time, so everyone can plan their evening.\n"
PHONES = ON_TIME + "6. Phones on silent and out of sight while we are in the circle.\n"


async def _sharing_circle(db: Database, facilitator: int, today: date) -> list[int]:
    """The group its members run, with a few weeks of their work; the accounts that
    took part (the example members, and the admin if there is one)."""
    now = datetime.now(UTC)
    slug = await groups.create_group(db, SHARING_CIRCLE, facilitator)
    group = await groups.get_group(db, slug)
    people = [await accounts.create_account(
        db, email=f"{name.lower()}@demo.invalid", display_name=f"{name} (demo member)",
        password_hash=None) for name in CIRCLE_MEMBERS]
    admin = await accounts.first_admin(db)
    for member in people + ([admin.id] if admin else []):
        await groups.add_membership(db, group.id, member, MembershipStatus.ACTIVE)
    priya, jonas, ade, mei, tom, rosa = people
    await save_practice(db, group.id, CIRCLE_PRACTICE)

    # Version 2 of the agreements was adopted by consent last week (so the admin, who
    # joined under version 1, is asked to accept it); a third is being discussed.
    await agreements.propose(
        db, group.id, priya, 1, ON_TIME, "We keep running late and people miss their bus.",
        discussion_days=7, now=now - timedelta(days=10))
    await agreements.settle_due(db, now)
    discussed = await agreements.propose(
        db, group.id, jonas, 2, PHONES, "Two phones rang during a share last week.",
        discussion_days=7, now=now - timedelta(days=2))
    await agreements.add_comment(db, discussed, mei, "Yes, please. Could carers keep theirs"
                                 " on vibrate, in case they are called?")
    await agreements.object_to(db, discussed, tom, "I am on call for my dad; I need an"
                               " exception for carers before I can agree.")

    # Weekly on Sunday evenings, three meetings ago and on.
    last_sunday = today - timedelta(days=(today.weekday() + 1) % 7 or 7)
    first = datetime.combine(last_sunday - timedelta(days=14), time(17, 0))
    event_id = await events.create_event(db, group.id, EventDraft(
        title="Sharing circle", description="Doors open at 16:45. Tea afterwards.",
        starts_at=first, duration_minutes=90, timezone="Europe/London",
        rrule="FREQ=WEEKLY;BYDAY=SU", format=Format.IN_PERSON,
        place="Riverside Quaker Meeting House", address="9 Ferry Road", capacity=16))
    past = [first + timedelta(weeks=n) for n in range(3)]
    upcoming = [first + timedelta(weeks=n) for n in range(3, 6)]
    key = occurrence_key

    # Themes: the next meeting's is chosen (and public); the one after is being proposed.
    await themes.set_theme(db, event_id, key(upcoming[0]), "Sleep, and what helps")
    for theme, by, signed in (("Talking to family about how we feel", ade, False),
                              ("The first year after a loss", priya, True),
                              ("Anger we don't show", rosa, False)):
        await themes.propose(db, event_id, key(upcoming[1]), by, theme, signed)
    proposed = await themes.proposals(db, event_id, key(upcoming[1]), None, counted=False)
    for voter, choice in zip((priya, jonas, mei, tom, rosa), (1, 1, 0, 1, 2), strict=True):
        await themes.support(db, event_id, key(upcoming[1]), voter, proposed[choice].id)

    # The rota: who holds the next meetings, and a swap asked for.
    for when, member, role in ((upcoming[0], priya, Holding.HOLDER),
                               (upcoming[0], jonas, Holding.CO_HOLDER),
                               (upcoming[1], ade, Holding.HOLDER)):
        await rota.volunteer(db, group.id, event_id, key(when), member, role, now)
    await rota.want_swap(db, group.id, event_id, key(upcoming[1]), ade, True, now)

    # Check-out pulses: six answers last week (facilitators see a summary of five), three
    # the week before (too few to show anything).
    for when, answers in ((past[1], ((4, "a bit lighter"), (5, "finally heard"), (3, ""),
                                     (4, "tired but glad"), (5, "grateful for the tea"),
                                     (2, "still raw"))),
                          (past[0], ((3, "quietly hopeful"), (4, ""),
                                     (5, "warmer than last week")))):
        ends = when.replace(tzinfo=ZoneInfo("Europe/London")) + timedelta(minutes=90)
        for member, (scale, word) in zip(people, answers, strict=False):
            await pulses.answer_pulse(
                db, event_id=event_id, occurrence=key(when), group_id=group.id,
                account_id=member, scale=scale, word=word,
                erase_after=ends + timedelta(days=CIRCLE_PRACTICE.pulse_keep_days))

    for by, public, draft in (
        (facilitator, True, ResourceDraft(
            ResourceKind.HOTLINE, "Samaritans: 116 123, free, day or night",
            "https://www.samaritans.org/", "Someone to talk to, any time.")),
        (facilitator, True, ResourceDraft(
            ResourceKind.SERVICE, "Riverside talking therapies (self-referral)",
            "", "Ask at the GP surgery on Mill Lane, or refer yourself by phone.")),
        (mei, False, ResourceDraft(
            ResourceKind.READING, "Why We Sleep, and the chapter on worry",
            "", "Mei found chapter 9 helpful before the sleep circle.")),
        (priya, False, ResourceDraft(
            ResourceKind.OTHER, "Late-night cafés open after the circle",
            "", "The Ferry Café stays open until 21:00 on Sundays.")),
    ):
        resource = await resources.add_resource(db, group.id, by, draft)
        if public:
            await resources.set_public(db, resource, True)
    return people + ([admin.id] if admin else [])


async def seed_demo(db: Database) -> bool:
    """Add the demo facilitator, groups, meetings and settings; False if already there."""
    if await accounts.find_account(db, FACILITATOR_EMAIL) is not None:
        return False
    facilitator = await accounts.create_account(
        db, email=FACILITATOR_EMAIL, display_name="Sam (demo facilitator)", password_hash=None
    )
    meetings = _meetings(date.today())
    for draft in _groups():
        slug = await groups.create_group(db, draft, facilitator)
        group = await groups.get_group(db, slug)
        for meeting in meetings.get(draft.name, []):
            event_id = await events.create_event(db, group.id, meeting)
            if draft.name == HOLIDAY_BREAK:
                await events.change_occurrence(db, event_id, OccurrenceChange(
                    original_start=meeting.starts_at + timedelta(days=7), cancelled=True))
    members = await _sharing_circle(db, facilitator, date.today())
    await forget_notices(db, [facilitator, *members])  # no mail about the examples
    await save_settings(db, SETTINGS)
    return True

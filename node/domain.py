"""Domain values of a node: enums, fixed vocabularies and records."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from node.i18n import N_


class Visibility(StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"


class JoinPolicy(StrEnum):
    OPEN = "open"
    APPROVAL = "approval"
    INVITE = "invite"


class Format(StrEnum):
    IN_PERSON = "in_person"
    ONLINE = "online"
    HYBRID = "hybrid"


class Cost(StrEnum):
    FREE = "free"
    DONATION = "donation"
    SLIDING_SCALE = "sliding_scale"
    FEE = "fee"


class Role(StrEnum):
    FACILITATOR = "facilitator"
    MEMBER = "member"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    SUSPENDED = "suspended"


class RegistrationMode(StrEnum):
    OPEN = "open"
    INVITE = "invite"
    APPROVAL = "approval"


class Review(StrEnum):
    """Where a public group made by an account the node does not yet trust stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class RsvpStatus(StrEnum):
    GOING = "going"
    WAITLIST = "waitlist"


class ThemeChoice(StrEnum):
    """Who sets a meeting's theme: a facilitator, or the proposal members support most."""

    FACILITATOR = "facilitator"
    MOST_SUPPORTED = "most_supported"


class Facilitation(StrEnum):
    FACILITATOR_LED = "facilitator_led"
    ROTATING = "rotating"  # members volunteer to hold meetings, on a rota


class AgreementDecision(StrEnum):
    """How a proposed change to the agreements is adopted."""

    CONSENT = "consent"  # when no member objects within the discussion period
    FACILITATOR = "facilitator"


class ReportReason(StrEnum):
    HARMFUL = "harmful"
    SPAM = "spam"
    UNSAFE = "unsafe"
    IMPERSONATION = "impersonation"
    OTHER = "other"


class ReportState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


LABELS: dict[str, str] = {
    "public": N_("Public: listed in the directory and shared with peer nodes"),
    "unlisted": N_("Unlisted: reachable by its link only"),
    "private": N_("Private: visible to members only"),
    "open": N_("Open: anyone can join at once"),
    "approval": N_("Approval: a facilitator approves each request"),
    "invite": N_("Invite: joining needs the group's invite code"),
    "in_person": N_("In person"),
    "online": N_("Online"),
    "hybrid": N_("Hybrid"),
    "free": N_("Free"),
    "donation": N_("Donation"),
    "sliding_scale": N_("Sliding scale"),
    "fee": N_("Fee"),
    "facilitator": N_("Facilitator"),
    "member": N_("Member"),
    "harmful": N_("Harmful or abusive content"),
    "spam": N_("Spam or advertising"),
    "unsafe": N_("Unsafe practice (for example harmful advice or pressure)"),
    "impersonation": N_("Pretends to be someone else or another organisation"),
    "other": N_("Something else"),
    "local": N_("This node"),
    "federated": N_("Peer nodes"),
}

# The fixed, filterable accessibility vocabulary, with the label people see.
ACCESSIBILITY: dict[str, str] = {
    "step_free": N_("Step-free access"),
    "wheelchair_toilet": N_("Wheelchair-accessible toilet"),
    "hearing_loop": N_("Hearing loop"),
    "sign_language": N_("Sign language interpretation"),
    "captions": N_("Live captions"),
    "quiet_space": N_("Quiet space"),
    "childcare": N_("Childcare"),
    "large_print": N_("Large-print materials"),
    "gender_neutral_toilets": N_("Gender-neutral toilets"),
    "scent_free": N_("Scent-free"),
}

# A symbol beside a label, so a need is found at a glance; decorative (the label says it).
ICONS: dict[str, str] = {
    "step_free": "\u267f", "wheelchair_toilet": "\u267f", "hearing_loop": "\U0001f9bb",
    "sign_language": "\U0001f91f", "captions": "\U0001f4ac", "quiet_space": "\U0001f92b",
    "childcare": "\U0001f9f8", "large_print": "\U0001f50d", "gender_neutral_toilets": "\U0001f6bb",
    "scent_free": "\U0001f33f", "in_person": "\U0001f4cd", "online": "\U0001f4bb",
    "hybrid": "\U0001f4cd\U0001f4bb", "free": "\U0001f49a",
}


def label(value: str) -> str:
    """The English label of a value (translated where it is shown)."""
    return LABELS.get(value) or ACCESSIBILITY.get(value) or value


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    email: str | None
    display_name: str
    is_admin: bool
    status: AccountStatus
    created_at: str
    language: str = "en"  # of the mail they receive
    trusted: bool = False  # by an admin: their public groups skip the review
    email_verified: bool = False  # they opened the link sent to their address
    pending_email: str | None = None  # asked for, not yet confirmed at that address
    join_reason: str = ""  # an applicant's, for the admins who approve accounts


@dataclass(frozen=True, slots=True)
class GroupDraft:
    """A group's listing as a facilitator writes it (validated)."""

    name: str
    summary: str
    description: str
    agreements: str
    visibility: Visibility
    join_policy: JoinPolicy
    format: Format
    cost: Cost
    area: str = ""
    address: str = ""
    contact: str = ""
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    accessibility: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    slug: str
    name: str
    summary: str
    description: str
    agreements: str
    visibility: Visibility
    join_policy: JoinPolicy
    invite_code: str | None
    format: Format
    cost: Cost
    area: str
    address: str
    contact: str
    origin: str | None
    created_at: str
    updated_at: str
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    accessibility: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    url: str | None = None  # a federated listing's page on its origin node
    ap_id: str | None = None  # a federated listing's ActivityPub id
    suspended: bool = False  # by an admin: seen by admins only, not federated
    review: Review | None = None  # None: never reviewed (not public yet, or a peer's)
    review_reason: str = ""  # why an admin last refused it

    @property
    def held(self) -> bool:
        """Public, but waiting for an admin's yes or refused: not listed, not federated."""
        return self.review in (Review.PENDING, Review.REFUSED)

    @property
    def members_only(self) -> bool:
        """Seen by its members (and admins) alone."""
        return self.visibility is Visibility.PRIVATE or self.held

    @property
    def is_local(self) -> bool:
        return self.origin is None


@dataclass(frozen=True, slots=True)
class Membership:
    group_id: int
    account_id: int
    role: Role
    status: MembershipStatus
    created_at: str

    @property
    def is_active(self) -> bool:
        return self.status is MembershipStatus.ACTIVE

    @property
    def is_facilitator(self) -> bool:
        return self.is_active and self.role is Role.FACILITATOR


@dataclass(frozen=True, slots=True)
class DirectoryQuery:
    """Filters of the /groups directory; empty values mean "any"."""

    q: str = ""
    topic: str = ""
    language: str = ""
    format: str = ""
    accessibility: tuple[str, ...] = ()
    cost: str = ""
    area: str = ""
    origin: str = ""  # "", "local" or "federated"
    date_from: str = ""  # 'YYYY-MM-DD'
    date_to: str = ""
    page: int = 1


@dataclass(frozen=True, slots=True)
class Practice:
    """How a group runs itself, as its facilitators set it (the defaults otherwise)."""

    theme_choice: ThemeChoice = ThemeChoice.FACILITATOR
    themes_public: bool = False  # shown with the meeting to anyone, and sent to peers
    theme_lead_hours: int = 48  # the theme is set this long before the meeting
    facilitation: Facilitation = Facilitation.FACILITATOR_LED
    agreement_decision: AgreementDecision = AgreementDecision.CONSENT
    discussion_days: int = 7  # how long a proposed change to the agreements is discussed
    pulse_keep_days: int = 90  # check-out pulses are erased this long after the meeting


@dataclass(frozen=True, slots=True)
class NodeSettings:
    name: str = "Grassroots"
    description: str = ""
    registration: RegistrationMode = RegistrationMode.APPROVAL
    default_language: str = "en"
    crisis_notice: str = ""
    review_public_groups: bool = True  # new public groups wait for an admin's approval
    require_verified_email: bool = True  # members confirm their address before joining
    # Shown on /about and in NodeInfo: the node's rules (Markdown), a role address for
    # its admins (never a member's own), and whether its block list stays private.
    rules: str = ""
    contact_address: str = ""
    block_list_private: bool = False


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A meeting series as a facilitator writes it (validated).

    ``starts_at`` is naive local wall time in ``timezone``; ``rrule`` is an
    RFC 5545 RRULE value (``FREQ=WEEKLY;BYDAY=TU``) or None for a one-off.
    """

    title: str
    description: str
    starts_at: datetime
    duration_minutes: int
    timezone: str
    rrule: str | None
    format: Format
    place: str = ""
    address: str = ""
    online_url: str = ""
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    group_id: int
    title: str
    description: str
    starts_at: datetime
    duration_minutes: int
    timezone: str
    rrule: str | None
    format: Format
    place: str
    address: str
    online_url: str
    capacity: int | None
    cancelled: bool
    created_at: str
    updated_at: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class OccurrenceChange:
    """One slot of a series cancelled, or moved to a new local start."""

    original_start: datetime  # naive local, as RECURRENCE-ID names it
    cancelled: bool
    starts_at: datetime | None = None
    duration_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    event_id: int
    original_start: datetime  # naive local: the key of this slot in the series
    start: datetime  # aware, in the event's zone
    end: datetime
    moved: bool = False
    cancelled: bool = False

    @property
    def key(self) -> str:
        return occurrence_key(self.original_start)


def occurrence_key(local: datetime) -> str:
    return local.strftime("%Y-%m-%dT%H:%M")

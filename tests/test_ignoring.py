"""Ignoring is cheap: what can never apply is answered 202 and kept nowhere, and a remote
document that failed or was of no use is not fetched again for a while.

Real HTTP on loopback as in tests/test_inbox.py: our node is the inbox with a real
database and fetcher, the runner's `process_inbox` applies what was stored, and every
remote server is one uvicorn whose hits are counted per URL.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.documents import AS_PUBLIC
from federation.fetch import Fetcher
from federation.negative_cache import PERMANENT_TTL, TRANSIENT_TTL, Kind, NegativeCache
from federation.runner import process_inbox
from tests.helpers import loopback_server
from tests.test_inbox import (
    AS,
    Node,
    Remote,
    actor_document,
    loopback_names,
    private_key,
)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    world = Remote()
    with loopback_server(world.app, world.port):
        yield world


@pytest.fixture
def node(tmp_path: Path, remote: Remote) -> Iterator[Node]:
    remote.documents.clear()
    remote.hits.clear()
    ours = Node(tmp_path, remote.url("ours.test", ""),
                lambda: Fetcher(allow_private=True, resolver=loopback_names))
    with ours.client:
        yield ours


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def actor(node: Node, remote: Remote, name: str, **overrides: Any) -> str:
    """An actor on peer.test, a host this node follows, served with its key."""
    url = remote.url("peer.test", f"/users/{name}")
    remote.serve(actor_document(url, private_key(name), **overrides))
    node.follows(url)
    return url


def meeting(group: str, number: int) -> dict[str, Any]:
    origin = group.split("/users/")[0]
    return {"id": f"{origin}/events/{number}", "type": "Event", "name": f"Meeting {number}",
            "startTime": "2031-05-06T18:00:00Z", "timezone": "UTC", "attributedTo": group,
            "to": [AS_PUBLIC]}


def sent(sender: str, kind: str, obj: Any, number: int) -> dict[str, Any]:
    origin = sender.split("/users/")[0]
    return {"@context": AS, "id": f"{origin}/activities/{kind}-{number}", "type": kind,
            "actor": sender, "object": obj, "to": [AS_PUBLIC]}


def deliver(node: Node, sender: str, activity: dict[str, Any]) -> str:
    """Its answer, which must be 202, as text."""
    name = sender.rsplit("/", 1)[1]
    response = node.deliver(activity, f"{sender}#main-key", private_key(name))
    assert response.status_code == 202, response.text
    return response.text


def states(node: Node) -> dict[str, str]:
    return dict(node.call(node.db.fetchall, "SELECT activity_id, state FROM inbox_items"))


def listed(node: Node, table: str) -> int:
    return node.call(node.db.fetchval,
                     f"SELECT count(*) FROM {table} WHERE ap_id IS NOT NULL")


# --- refused before anything is kept ----------------------------------------------------


def test_a_hundred_meetings_of_a_person_cost_one_fetch_and_nothing_is_stored(
        node: Node, remote: Remote) -> None:
    """A Person's own Create{Event} can never be listed (a meeting's group is a Group): its
    key's document says what it is, so every one is answered 202 and none is kept."""
    alice = actor(node, remote, "alice")
    answers = [deliver(node, alice, sent(alice, "Create", meeting(alice, n), n))
               for n in range(100)]
    assert set(answers) == {("accepted and not kept: a meeting's group must be a Group,"
                             " and its sender is a Person")}
    assert remote.hits[alice] == 1  # for its key; never again, never as a meeting's group
    assert node.stored() == []
    assert node.call(process_inbox, node.fed) == 0
    assert (listed(node, "groups"), listed(node, "events")) == (0, 0)


@pytest.mark.parametrize("obj", [
    {"type": "Note", "content": "hello"},
    {"type": "Question", "name": "Which evening?"},
    {"type": ["Event", "schema:Event"], "name": "Tea"},
], ids=["Note", "Question", "a list of types"])
def test_a_create_or_update_of_what_is_never_listed_is_202_and_kept_nowhere(
        node: Node, remote: Remote, obj: dict[str, Any]) -> None:
    alice = actor(node, remote, "alice")
    origin = alice.split("/users/")[0]
    for n, kind in enumerate(("Create", "Update")):
        text = deliver(node, alice, sent(alice, kind, {"id": f"{origin}/objects/{n}",
                                                       "attributedTo": alice, **obj}, n))
        assert text.startswith("accepted and not kept: ") and "objects are not listed" in text
    assert node.stored() == [] and remote.hits[alice] == 1


def test_a_persons_profile_update_is_not_fetched_again(node: Node, remote: Remote) -> None:
    """Mastodon sends Update{Person} when a profile changes; it lists nothing here."""
    alice = actor(node, remote, "alice")
    profile = actor_document(alice, private_key("alice"), name="Alice B.")
    assert "'Person' objects are not listed" in deliver(node, alice,
                                                      sent(alice, "Update", profile, 1))
    assert node.stored() == [] and remote.hits[alice] == 1


def test_a_persons_meeting_of_a_group_is_still_taken(node: Node, remote: Remote) -> None:
    """As Mobilizon sends it: the organiser signs, the group is the meeting's owner."""
    alice = actor(node, remote, "alice")
    group = actor(node, remote, "circle", type="Group")
    activity = sent(alice, "Create", meeting(group, 1), 1)
    assert deliver(node, alice, activity) == ""
    assert node.stored() == [activity["id"]]


# --- remembered failures, through the runner ---------------------------------------------


def test_meetings_naming_a_person_as_their_group_fetch_it_once(node: Node,
                                                               remote: Remote) -> None:
    """A group's Creates of meetings it does not own are fetched from their origin; each
    names a Person as its group, which is fetched for the first only."""
    circle = actor(node, remote, "circle", type="Group")
    alice = actor(node, remote, "alice")
    for n in range(5):
        remote.serve({"@context": AS, **meeting(alice, n)})
        deliver(node, circle, sent(circle, "Create", meeting(alice, n), n))
    assert node.call(process_inbox, node.fed) == 5
    assert set(states(node).values()) == {"ignored"}
    assert remote.hits[alice] == 1
    assert all(remote.hits[meeting(alice, n)["id"]] == 1 for n in range(5))
    failure = node.fed.negative_cache.failure(alice)
    assert failure is not None and failure.kind is Kind.UNUSABLE
    assert failure.reason == "not usable as a meeting's group: not a Group"
    assert listed(node, "events") == 0


def test_a_group_unusable_as_one_is_refused_at_the_inbox_until_it_is_stored(
        node: Node, remote: Remote) -> None:
    """Its first meeting is applied and ignored after one fetch of the group; the next are
    202 and kept nowhere; once the group sends a usable version of itself, they apply."""
    odd = actor(node, remote, "odd", type="Group", preferredUsername="odd one")
    first = sent(odd, "Create", meeting(odd, 1), 1)
    assert deliver(node, odd, first) == ""
    node.call(process_inbox, node.fed)
    assert states(node) == {first["id"]: "ignored"}
    assert remote.hits[odd] == 2  # its key, then as the meeting's group
    for n in range(2, 12):
        text = deliver(node, odd, sent(odd, "Create", meeting(odd, n), n))
        assert text == ("accepted and not kept: not usable as a meeting's group:"
                        " preferredUsername is missing or not a plain name")
    assert node.stored() == [first["id"]] and remote.hits[odd] == 2

    fixed = actor_document(odd, private_key("odd"), type="Group", preferredUsername="odd")
    assert deliver(node, odd, sent(odd, "Update", fixed, 1)) == ""  # the owner's own word
    node.call(process_inbox, node.fed)
    assert node.fed.negative_cache.failure(odd) is None
    again = sent(odd, "Create", meeting(odd, 12), 12)
    assert deliver(node, odd, again) == ""
    node.call(process_inbox, node.fed)
    assert states(node)[again["id"]] == "applied"
    assert listed(node, "events") == 1 and remote.hits[odd] == 2


def test_an_outage_is_retried_without_fetching_until_it_expires(node: Node,
                                                                remote: Remote) -> None:
    """A group's document answering 503: remembered briefly, activities kept and retried,
    and once it expires the origin is asked again, the fetch succeeds and is forgotten."""
    clock = Clock()
    node.fed.negative_cache = NegativeCache(clock=clock)
    circle = actor(node, remote, "circle", type="Group")
    first = sent(circle, "Create", meeting(circle, 1), 1)
    deliver(node, circle, first)  # its key fetched: 1
    document = remote.documents[circle]
    remote.fail(circle, 503)
    node.call(process_inbox, node.fed)  # as the meeting's group: 2, a 503
    second = sent(circle, "Create", meeting(circle, 2), 2)
    assert deliver(node, circle, second) == ""  # an outage is never decided at the inbox
    node.call(process_inbox, node.fed)
    assert remote.hits[circle] == 2
    assert states(node) == {first["id"]: "received", second["id"]: "received"}
    failure = node.fed.negative_cache.failure(circle)
    assert failure is not None and failure.kind is Kind.OUTAGE and "503" in failure.reason

    clock.now += TRANSIENT_TTL
    remote.documents[circle] = document
    node.call(node.db.write, "UPDATE inbox_items SET next_attempt_at = ''")  # due now
    node.call(process_inbox, node.fed)
    assert remote.hits[circle] == 3
    assert states(node) == {first["id"]: "applied", second["id"]: "applied"}
    assert node.fed.negative_cache.failure(circle) is None
    assert listed(node, "events") == 2


# --- the cache itself ---------------------------------------------------------------------


def test_each_kind_lasts_its_own_time_and_forget_ends_it_at_once() -> None:
    clock = Clock()
    cache = NegativeCache(clock=clock)
    cache.remember("https://a.example/1", Kind.OUTAGE, "HTTP 503")
    cache.remember("https://a.example/2", Kind.REFUSED, "HTTP 403")
    cache.remember("https://a.example/3", Kind.UNUSABLE, "not a Group")
    cache.remember("https://a.example/4", Kind.UNUSABLE, "not a Group")
    clock.now += TRANSIENT_TTL - 0.001
    assert [cache.failure(f"https://a.example/{n}") is not None for n in (1, 2, 3)] == \
        [True, True, True]
    clock.now += 0.001
    assert cache.failure("https://a.example/1") is None
    cache.forget("https://a.example/3")
    assert cache.failure("https://a.example/3") is None
    clock.now += PERMANENT_TTL - TRANSIENT_TTL - 0.001
    assert cache.failure("https://a.example/2").reason == "HTTP 403"
    clock.now += 0.001
    assert cache.failure("https://a.example/2") is None
    assert cache.failure("https://a.example/4") is None
    assert len(cache) == 0


def test_a_long_reason_is_kept_short() -> None:
    cache = NegativeCache()
    cache.remember("https://a.example/1", Kind.REFUSED, "x" * 10_000)
    assert len(cache.failure("https://a.example/1").reason) == 200


URLS = [f"https://peer.example/objects/{n}" for n in range(8)]
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("remember"), st.sampled_from(URLS), st.sampled_from(list(Kind))),
    st.tuples(st.just("forget"), st.sampled_from(URLS)),
    st.tuples(st.just("look"), st.sampled_from(URLS)),
    st.tuples(st.just("wait"), st.floats(0, 2 * PERMANENT_TTL)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(operations=OPERATIONS, max_entries=st.integers(1, 6))
def test_the_cache_is_bounded_least_recently_used_first_and_entries_expire(
        operations: list[tuple], max_entries: int) -> None:
    """Against a plain model: live entries, in the order they were last used."""
    clock = Clock()
    cache = NegativeCache(max_entries=max_entries, clock=clock)
    model: OrderedDict[str, tuple[Kind, float]] = OrderedDict()
    for operation in operations:
        name, *args = operation
        if name == "wait":
            clock.now += args[0]
        elif name == "forget":
            cache.forget(args[0])
            model.pop(args[0], None)
        elif name == "remember":
            url, kind = args
            cache.remember(url, kind, kind.value)
            model.pop(url, None)
            ttl = TRANSIENT_TTL if kind is Kind.OUTAGE else PERMANENT_TTL
            model[url] = (kind, clock.now + ttl)
            if len(model) > max_entries:
                model.popitem(last=False)
        else:
            url = args[0]
            kind, until = model.get(url, (None, 0.0))
            live = kind is not None and until > clock.now
            if live:
                model.move_to_end(url)
            else:
                model.pop(url, None)
            found = cache.failure(url)
            assert (found.kind if found else None) == (kind if live else None)
        assert len(cache) <= max_entries

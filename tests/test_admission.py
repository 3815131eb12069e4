"""What the inbox remembers between requests: admitted hosts and key owners, for a second."""
from __future__ import annotations

from federation.admission import MAX_ENTRIES, TTL, Admission
from federation.store import RemoteActor


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def actor(n: int) -> RemoteActor:
    url = f"https://peer{n}.example/actor"
    return RemoteActor(url, f"peer{n}.example", "Group", "circle", f"{url}/inbox", None, None,
                       f"{url}#main-key", "PEM")


def test_an_admitted_host_is_remembered_for_the_ttl_and_no_longer() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    assert not admission.admits("peer.example")  # nothing is known: ask the database
    admission.admitted("peer.example")
    clock.now += TTL - 0.01
    assert admission.admits("peer.example")
    assert not admission.admits("other.example")
    clock.now += 0.02
    assert not admission.admits("peer.example")


def test_a_key_owner_is_remembered_for_the_ttl_and_no_longer() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    owner = actor(1)
    assert admission.signer(owner.key_id) is None
    admission.signed_by(owner.key_id, owner)
    assert admission.signer(owner.key_id) is owner
    clock.now += TTL + 0.01
    assert admission.signer(owner.key_id) is None


def test_forget_all_drops_every_answer_at_once() -> None:
    admission = Admission(clock=Clock())
    admission.admitted("peer.example")
    admission.signed_by(actor(1).key_id, actor(1))
    admission.forget_all()
    assert not admission.admits("peer.example")
    assert admission.signer(actor(1).key_id) is None


def test_past_the_limit_the_oldest_answer_goes_first() -> None:
    admission = Admission(clock=Clock())
    for n in range(MAX_ENTRIES):
        admission.admitted(f"peer{n}.example")
    admission.admitted("peer0.example")  # seen again: now the newest
    admission.admitted("late.example")   # pushes out peer1, the oldest
    assert admission.admits("peer0.example") and admission.admits("late.example")
    assert not admission.admits("peer1.example")
    assert admission.admits(f"peer{MAX_ENTRIES - 1}.example")

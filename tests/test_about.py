"""The node's public pages about itself, /about and /about/federation, and NodeInfo's
metadata, through the real app: the settings and the peers they show, the block list
kept private on request, and never a member's address."""
from __future__ import annotations

import html
import re

import pytest

from federation import store
from node.cli import main
from node.domain import NodeSettings
from node.storage.settings import load_settings

SETTINGS_FORM = {
    "name": "Leith Peer Support",
    "description": "Groups for **Leith** and around.",
    "registration": "invite",
    "default_language": "en",
    "crisis_notice": "",
    "rules": "1. Be **kind**.\n2. What is said in a group stays there.",
    "contact_address": "Admins@Leith-Support.example",
}
MEMBER = ("Mina Member", "mina.member@example.org")
FOLLOWED, FOLLOWER, BOTH, ASKING = ("followed.example", "follower.example", "both.example",
                                    "asking.example")
BLOCKS = {"spam.example": "Sends advertising as groups.", "quiet.example": ""}


def save_settings_form(admin, **changes: str):
    return admin.post("/admin/settings", {**SETTINGS_FORM, **changes}, page="/admin/settings")


@pytest.fixture
def policy(admin, visitor, run_db, open_registration):
    """A member, settings saved by the admin, peers both ways, two blocked domains."""
    visitor().register(*MEMBER)
    assert save_settings_form(admin).status_code == 200

    async def peers(db) -> None:
        for host in (FOLLOWED, FOLLOWER, BOTH, ASKING):
            await store.save_peer(db, host, f"https://{host}/actor", f"https://{host}/inbox",
                                  None)
        for host in (FOLLOWED, BOTH):
            await store.set_following(db, host, "accepted")
        for host in (FOLLOWER, BOTH):
            await store.set_follower(db, host, "approved")
        await store.set_follower(db, ASKING, "pending")

    run_db(peers)
    for domain, reason in BLOCKS.items():
        r = admin.post("/admin/peers", {"action": "block", "target": domain, "reason": reason},
                       page="/admin/peers")
        assert r.status_code == 200 and f"{domain} is blocked." in r.text
    return admin


def nodeinfo(client) -> dict:
    return client.get("/nodeinfo/2.1").json()


def test_about_shows_the_settings_and_links_the_federation_policy(policy, visitor):
    page = visitor().get("/about")
    assert page.status_code == 200
    text = page.text
    assert "<h1>About Leith Peer Support</h1>" in text
    assert "<strong>Leith</strong>" in text  # the description, rendered
    assert '<h2 id="rules">Rules</h2>' in text and "Be <strong>kind</strong>." in text
    assert "Invite: registering needs an invite code from an admin" in text
    # The role address, as it is stored: lower case.
    assert '<a href="mailto:admins@leith-support.example">' in text
    assert re.search(r"Nodes this node follows</dt><dd>2</dd>", text)
    assert re.search(r"Nodes that follow this node</dt><dd>2</dd>", text)
    assert 'href="/about/federation"' in text
    # Every page's footer leads here.
    assert '<a href="/about">About this node</a>' in visitor().get("/groups").text


def test_federation_policy_lists_peers_both_ways_and_blocks_with_reasons(policy, visitor):
    text = visitor().get("/about/federation").text
    following = text.split("Nodes this node follows")[1].split("Nodes that follow")[0]
    followers = text.split("Nodes that follow this node")[1].split("Blocked domains")[0]
    assert re.findall(r">([a-z.]+)</a>", following) == [BOTH, FOLLOWED]
    assert re.findall(r">([a-z.]+)</a>", followers) == [BOTH, FOLLOWER]
    assert f'href="https://{FOLLOWED}/"' in following
    assert ASKING not in text  # asking is not federating
    blocks = text.split("Blocked domains")[1]
    assert "<strong>spam.example</strong>: Sends advertising as groups." in blocks
    assert "<strong>quiet.example</strong></li>" in blocks
    assert "admins@leith-support.example" in blocks  # whom to ask about it


def test_a_blocked_peer_is_no_longer_listed_as_federating(policy, visitor):
    policy.post("/admin/peers", {"action": "block", "target": FOLLOWED}, page="/admin/peers")
    text = visitor().get("/about/federation").text
    assert f">{FOLLOWED}</a>" not in text and f"<strong>{FOLLOWED}</strong>" in text


def test_nodeinfo_carries_the_same_policy(policy, client):
    meta = nodeinfo(client)["metadata"]
    assert meta["nodeName"] == "Leith Peer Support"
    assert meta["nodeDescription"] == SETTINGS_FORM["description"]
    assert meta["registrationMode"] == "invite"
    assert meta["maintainer"] == {"email": "admins@leith-support.example"}
    assert meta["rulesUrl"] == "http://testserver/about#rules"
    assert meta["federationPolicyUrl"] == "http://testserver/about/federation"
    federation = meta["federation"]
    assert (federation["following"], federation["followers"]) == (2, 2)
    assert federation["blockedDomains"] == 2 and federation["exclusions"] is False
    assert sorted(federation["mrf_simple"]["reject"]) == sorted(BLOCKS)
    assert federation["mrf_simple_info"]["reject"] == {
        "spam.example": {"reason": "Sends advertising as groups."}}


def test_a_private_block_list_is_only_counted(policy, visitor, client, run_db):
    assert save_settings_form(policy, block_list_private="yes").status_code == 200
    assert run_db(load_settings).block_list_private
    text = visitor().get("/about/federation").text
    assert "This node blocks 2 domains. Its admins keep the list private." in text
    document = client.get("/nodeinfo/2.1").text
    for domain, reason in BLOCKS.items():
        assert domain not in text and domain not in document
        assert not reason or html.escape(reason) not in text and reason not in document
    federation = nodeinfo(client)["metadata"]["federation"]
    assert federation["blockedDomains"] == 2 and federation["exclusions"] is True
    assert "mrf_simple" not in federation and "mrf_simple_info" not in federation
    # The admin still sees them all.
    admin_page = policy.get("/admin/peers").text
    assert all(domain in admin_page for domain in BLOCKS)
    assert "spam.example: Sends advertising as groups." in admin_page


def test_no_page_about_the_node_shows_a_members_address(policy, visitor, client, run_db):
    emails = [row[0] for row in run_db(lambda db: db.fetchall(
        "SELECT email FROM accounts WHERE email IS NOT NULL"))]
    assert MEMBER[1] in emails
    anyone = visitor()
    for text in (anyone.get("/about").text, anyone.get("/about/federation").text,
                 client.get("/nodeinfo/2.1").text):
        for email in emails:
            assert email not in text
        assert MEMBER[0] not in text


def test_a_members_own_address_is_refused_as_the_contact(policy, run_db):
    r = save_settings_form(policy, contact_address=MEMBER[1].upper())
    assert r.status_code == 400
    error = re.search(r'<p class="error" id="e-contact_address">([^<]+)</p>', r.text)
    assert error and "address of an account on this node" in error.group(1)
    assert run_db(load_settings).contact_address == "admins@leith-support.example"
    r = save_settings_form(policy, contact_address="not an address")
    assert r.status_code == 400 and 'id="e-contact_address"' in r.text


def test_without_settings_the_pages_say_so(visitor, client, run_db):
    text = visitor().get("/about").text
    assert "This node has not written down rules of its own." in text
    assert "This node gives no contact address yet." in text
    assert "This node blocks no domain." in visitor().get("/about/federation").text
    meta = nodeinfo(client)["metadata"]
    assert "maintainer" not in meta and meta["federation"]["mrf_simple"] == {"reject": []}
    assert run_db(load_settings) == NodeSettings()


def test_peers_block_takes_a_public_reason_on_the_command_line(data_dir, run_db, capsys,
                                                                visitor):
    assert main(["peers", "block", "spam.example", "--reason", "Advertising.",
                 "--data", str(data_dir)]) == 0
    assert main(["peers", "list", "--data", str(data_dir)]) == 0
    assert "blocked: spam.example (Advertising.)" in capsys.readouterr().out
    [block] = run_db(store.blocked_domains)
    assert (block.domain, block.reason) == ("spam.example", "Advertising.")
    assert "<strong>spam.example</strong>: Advertising." in visitor().get(
        "/about/federation").text


def test_a_reason_too_long_is_refused_beside_its_field(admin, run_db):
    r = admin.post("/admin/peers", {"action": "block", "target": "spam.example",
                                    "reason": "x" * 501}, page="/admin/peers")
    assert r.status_code == 400
    assert re.search(r'<p class="error" id="e-reason">Keep the reason to 500', r.text)
    assert run_db(store.blocked_domains) == []

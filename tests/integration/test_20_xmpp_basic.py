# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-xmpp against a real Prosody, Mosquitto, Redis and the router: messages both ways with
# the author, formatting both ways, mass mentions, attachments as XEP-0066 links, the bridge's
# own messages never bridged back (counted).

import pytest

from prosody import MUC, end_world, make_world, xmpp_barrier

pytestmark = pytest.mark.needs_router

ROOM = f"room1@{MUC}"
ROOMS = f"""[room r]
xmpp = {ROOM}
b = CB
"""


@pytest.fixture
def world(infra):
    pro, b, br, alice = make_world(infra, ROOMS, ROOM)
    yield infra, pro, b, br, alice
    end_world(br, alice)


@pytest.mark.timeout(90)
def test_muc_message_reaches_bus(world):
    s, pro, b, br, alice = world
    mid = alice.say(ROOM, "hello bridge")
    sid = alice.own_reflection(ROOM, mid).stanza_id
    (ev,) = b.expect(1)
    assert ev["type"] == "message" and ev["network"] == "xmpp" and ev["channel"] == ROOM
    assert ev["author"]["name"] == "alice" and ev["author"]["id"].startswith("occupant:")
    assert ev["msgid"] == sid and ev["id"] == f"xmpp:message:{ROOM}:{sid}"
    assert ev["text"] == "hello bridge"


@pytest.mark.timeout(90)
def test_bus_message_appears_with_prefix_and_is_acked(world):
    s, pro, b, br, alice = world
    acks = s.mqtt_client("acks")
    acks.subscribe(s.topic("ack", "xmpp"))
    b.send("CB", text="hi from the bus")
    m = alice.wait(lambda m: m.nick == "bridge" and m.body and "hi from the bus" in m.body)
    assert m.body == "<Alice> hi from the bus"
    assert m.child("origin-id", "urn:xmpp:sid:0").get("id") == m.id
    (ack,) = acks.expect_messages(s.topic("ack", "xmpp"), 1)
    assert ack.json["ok"] is True and ack.json["msgid"] == m.stanza_id
    xmpp_barrier(b, alice, ROOM)


@pytest.mark.timeout(90)
def test_formatting_both_ways(world):
    s, pro, b, br, alice = world
    b.send("CB", text="**bold** and _it_ and `code`")
    m = alice.wait(lambda m: m.nick == "bridge" and m.body and "bold" in m.body)
    assert m.body == "<Alice> *bold* and _it_ and `code`"
    alice.say(ROOM, "*strong* and _soft_")
    (ev,) = b.expect(1)
    assert ev["text"] == "**strong** and *soft*"


@pytest.mark.timeout(90)
def test_mass_mention_neutralised_and_xml_hostile_text(world):
    s, pro, b, br, alice = world
    b.send("CB", text="@room look </body><evil/> & \x01done")
    m = alice.wait(lambda m: m.nick == "bridge" and m.body and "look" in m.body)
    assert "@room" not in m.body and "@\u2060room" in m.body
    assert "</body><evil/> & " in m.body and "\x01" not in m.body
    assert m.child("evil") is None


@pytest.mark.timeout(90)
def test_attachments_as_oob_both_ways(world):
    s, pro, b, br, alice = world
    b.send("CB", text="see", attachments=[{"url": "https://files.example/cat.png",
                                           "name": "cat.png"}])
    m = alice.wait(lambda m: m.nick == "bridge" and m.body and "cat.png" in m.body)
    oob = m.child("x", "jabber:x:oob")
    assert oob is not None and oob.find("{jabber:x:oob}url").text == "https://files.example/cat.png"
    assert m.body == "<Alice> see\nhttps://files.example/cat.png"
    url = "https://files.example/dog.jpg"
    alice.say(ROOM, url, extra=f"<x xmlns='jabber:x:oob'><url>{url}</url></x>")
    (ev,) = b.expect(1)
    assert ev["attachments"][0]["url"] == url and ev["attachments"][0]["name"] == "dog.jpg"
    assert not ev.get("text")


@pytest.mark.timeout(90)
def test_own_messages_never_bridged_back(world):
    s, pro, b, br, alice = world
    for i in range(5):
        b.send("CB", text=f"count {i}")
    alice.wait(lambda m: m.nick == "bridge" and m.body == "<Alice> count 4")
    xmpp_barrier(b, alice, ROOM)
    assert alice.count(lambda m: m.nick == "bridge" and (m.body or "").startswith("<Alice> count")) == 5


@pytest.mark.timeout(90)
def test_topic_both_ways(world):
    s, pro, b, br, alice = world
    alice.say(ROOM, None, extra="<subject>new *topic*</subject>")
    (ev,) = b.expect(1)
    assert ev["type"] == "topic" and ev["text"] == "new **topic**"
    b.send("CB", type="topic", text="from the bus")
    m = alice.wait(lambda m: m.nick == "bridge" and m.subject is not None)
    assert m.subject == "from the bus" and m.body is None

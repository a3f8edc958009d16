# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-xmpp message features both ways against a real Prosody: corrections (XEP-0308),
# replies (XEP-0461), reactions (XEP-0444) and retractions (XEP-0424), each mapped through the
# router to the other side's ids.

import pytest

from prosody import MUC, end_world, make_world, xmpp_barrier

pytestmark = pytest.mark.needs_router

ROOM = f"room2@{MUC}"
ROOMS = f"""[room r]
xmpp = {ROOM}
b = CB
"""
NS_REPLY = "urn:xmpp:reply:0"


@pytest.fixture
def world(infra):
    pro, b, br, alice = make_world(infra, ROOMS, ROOM)
    yield infra, pro, b, br, alice
    end_world(br, alice)


def bridged(alice, pred):
    return alice.wait(lambda m: m.nick == "bridge" and pred(m))


def b_ack(s, b, ev, msgid):
    """b acks ev with msgid and waits until the router has stored it (so a later reference
    to msgid maps)."""
    before = s.router.metric("trestle_router_acks_total", result="ok")
    b.ack(ev, msgid)
    s.router.wait_metric("trestle_router_acks_total", before + 1, result="ok")


def bus_message(s, b, alice, text):
    """b posts text; returns (bus event, the bridged copy seen by alice) once acked."""
    acks = s.mqtt_client("acks-" + text[:8].replace(" ", ""))
    acks.subscribe(s.topic("ack", "xmpp"))
    ev = b.send("CB", text=text)
    m = bridged(alice, lambda m: m.body == f"<Alice> {text}")
    acks.wait_message(s.topic("ack", "xmpp"), lambda a: a.json.get("id") == ev["id"])
    return ev, m


@pytest.mark.timeout(90)
def test_xmpp_correction_becomes_edit(world):
    s, pro, b, br, alice = world
    mid = alice.say(ROOM, "helo")
    (orig,) = b.expect(1)
    b_ack(s, b, orig, "b-orig")
    alice.say(ROOM, "hello", extra=f"<replace xmlns='urn:xmpp:message-correct:0' id='{mid}'/>")
    (ed,) = b.expect(1)
    assert ed["type"] == "edit" and ed["target"] == orig["msgid"] and ed["text"] == "hello"
    assert ed["dest"]["target"] == "b-orig"
    assert ed["id"] != orig["id"]


@pytest.mark.timeout(90)
def test_bus_edit_becomes_correction_of_the_bridged_copy(world):
    s, pro, b, br, alice = world
    ev, m = bus_message(s, b, alice, "first version")
    b.send("CB", type="edit", target=ev["msgid"], text="second version")
    c = bridged(alice, lambda m: m.body == "<Alice> second version")
    rep = c.child("replace", "urn:xmpp:message-correct:0")
    assert rep is not None and rep.get("id") == m.id
    xmpp_barrier(b, alice, ROOM)


@pytest.mark.timeout(90)
def test_reply_keeps_its_reference_both_ways(world):
    s, pro, b, br, alice = world
    ev, m = bus_message(s, b, alice, "question?")
    fb = "> bridge: <Alice> question?\n"
    body = fb + "answer"
    alice.say(ROOM, body, extra=f"<reply xmlns='{NS_REPLY}' to='{ROOM}/bridge' id='{m.stanza_id}'/>"
              f"<fallback xmlns='urn:xmpp:fallback:0' for='{NS_REPLY}'>"
              f"<body start='0' end='{len(fb)}'/></fallback>")
    (r,) = b.expect(1)
    assert r["dest"]["reply_to"] == ev["msgid"] and r["reply_to"] == m.stanza_id
    assert r["text"] == "answer"
    b_ack(s, b, r, "b-answer")
    # The other way: a bus reply to alice's message names its stanza-id.
    b.send("CB", text="got it", reply_to="b-answer")
    back = bridged(alice, lambda m: (m.body or "").endswith("<Alice> got it"))
    rep = back.child("reply", NS_REPLY)
    sid = alice.wait(lambda m: m.nick == "alice" and m.body == body).stanza_id
    assert rep is not None, back.xml
    assert rep.get("id") == sid and rep.get("to") == f"{ROOM}/alice"
    assert back.body.startswith("> alice: ")
    fbel = back.child("fallback", "urn:xmpp:fallback:0")
    end = int(fbel.find("{urn:xmpp:fallback:0}body").get("end"))
    assert back.body[end:] == "<Alice> got it"


@pytest.mark.timeout(90)
def test_reactions_both_ways(world):
    s, pro, b, br, alice = world
    ev, m = bus_message(s, b, alice, "react to me")
    react = "<reactions xmlns='urn:xmpp:reactions:0' id='{}'>{}</reactions>"
    alice.say(ROOM, None, extra=react.format(m.stanza_id, "<reaction>👍</reaction>"))
    (r,) = b.expect(1)
    assert r["type"] == "reaction" and r["dest"]["target"] == ev["msgid"] and r["reaction"] == "👍"
    assert not r.get("removed")
    alice.say(ROOM, None, extra=react.format(m.stanza_id, ""))
    (r2,) = b.expect(1)
    assert r2["reaction"] == "👍" and r2["removed"] is True and r2["id"] != r["id"]
    # Bus -> XMPP: a reaction on alice's message from two bridged people, then one withdrawn.
    aid = alice.say(ROOM, "my message")
    (am,) = b.expect(1)
    b_ack(s, b, am, "b-am")
    asid = alice.own_reflection(ROOM, aid).stanza_id
    b.send("CB", type="reaction", target="b-am", reaction="🎉")
    x = bridged(alice, lambda m: m.child("reactions", "urn:xmpp:reactions:0") is not None)
    el = x.child("reactions", "urn:xmpp:reactions:0")
    assert el.get("id") == asid and [e.text for e in el] == ["🎉"]
    b.send("CB", type="reaction", target="b-am", reaction="🎉", removed=True)
    y = bridged(alice, lambda m: m is not x and m.child("reactions", "urn:xmpp:reactions:0")
                is not None and len(m.child("reactions", "urn:xmpp:reactions:0")) == 0)
    assert y.child("reactions", "urn:xmpp:reactions:0").get("id") == asid


@pytest.mark.timeout(90)
def test_retractions_both_ways(world):
    s, pro, b, br, alice = world
    aid = alice.say(ROOM, "oops")
    (am,) = b.expect(1)
    b_ack(s, b, am, "b-oops")
    asid = alice.own_reflection(ROOM, aid).stanza_id
    alice.say(ROOM, "retracted", extra=f"<retract xmlns='urn:xmpp:message-retract:1' id='{asid}'/>"
              "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>")
    (d,) = b.expect(1)
    assert d["type"] == "delete" and d["target"] == am["msgid"] and d["dest"]["target"] == "b-oops"
    ev, m = bus_message(s, b, alice, "to be deleted")
    b.send("CB", type="delete", target=ev["msgid"])
    r = bridged(alice, lambda m: m.child("retract", "urn:xmpp:message-retract:1") is not None)
    assert r.child("retract", "urn:xmpp:message-retract:1").get("id") == m.stanza_id


@pytest.mark.timeout(90)
def test_retraction_of_someone_elses_message_is_ignored(world):
    s, pro, b, br, alice = world
    ev, m = bus_message(s, b, alice, "not yours")
    alice.say(ROOM, "x", extra=f"<retract xmlns='urn:xmpp:message-retract:1' id='{m.stanza_id}'/>")
    xmpp_barrier(b, alice, ROOM)

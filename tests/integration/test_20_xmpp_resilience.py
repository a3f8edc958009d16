# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-xmpp when things go wrong, against a real Prosody: no room history re-bridged after
# the connector rejoins, Prosody restarted (the connector comes back, rejoins, and what the bus
# sent meanwhile arrives), kicked from a room (rejoins with backoff).

import pytest

from harness import wait_for
from prosody import MUC, XmppUser, end_world, make_world, xmpp_barrier

pytestmark = pytest.mark.needs_router

ROOM = f"room3@{MUC}"
ROOMS = f"""[room r]
xmpp = {ROOM}
b = CB
"""


@pytest.fixture
def world(infra):
    pro, b, br, alice = make_world(infra, ROOMS, ROOM)
    w = {"users": [alice]}
    yield infra, pro, b, br, alice, w
    end_world(br, *w["users"])


@pytest.mark.timeout(120)
def test_no_history_rebridged_on_rejoin(world):
    s, pro, b, br, alice, w = world
    for i in range(3):
        alice.say(ROOM, f"old {i}")
    assert [e["text"] for e in b.expect(3)] == ["old 0", "old 1", "old 2"]
    br.restart()
    br.wait_online(1)
    # The room keeps history (Prosody sends up to 20 messages to joiners that ask for it).
    xmpp_barrier(b, alice, ROOM)


@pytest.mark.timeout(150)
def test_prosody_restart_reconnects_rejoins_and_delivers(world):
    s, pro, b, br, alice, w = world
    b.send("CB", text="before")
    alice.wait(lambda m: m.body == "<Alice> before")
    pro.stop()
    br.wait_state("offline", timeout=30)
    b.send("CB", text="while prosody was down")
    pro.start_ready()
    br.wait_online(1, timeout=60)
    bob = XmppUser(pro, "bob")
    w["users"].append(bob)
    bob.join(ROOM)
    # Sent on the bus while the server was away: it reaches the room once, after the rejoin.
    # It may have been posted before bob joined, so carol joins asking for the room's history.
    carol = XmppUser(pro, "carol")
    w["users"].append(carol)
    carol.send_raw(f"<presence to='{ROOM}/carol'><x xmlns='http://jabber.org/protocol/muc'>"
                   "<history maxstanzas='20'/></x></presence>")
    got = carol.wait(lambda m: m.body == "<Alice> while prosody was down")
    assert carol.count(lambda m: m.body == "<Alice> while prosody was down") == 1
    assert got.nick == "bridge"
    # And the XMPP side reaches the bus again.
    bob.say(ROOM, "after the restart")
    ev = b.mq.wait_message(b.out_topic, lambda m: isinstance(m.json, dict) and
                           m.json.get("text") == "after the restart")[0].json
    assert ev["author"]["name"] == "bob"


@pytest.mark.timeout(120)
def test_kicked_bridge_rejoins(infra):
    s = infra
    # dave creates the room first, so he owns it and may kick the bridge.
    from prosody import Bridge, start_prosody
    pro = start_prosody(s)
    dave = XmppUser(pro, "dave")
    room = f"kick@{MUC}"
    dave.join(room)
    b = s.connector("b")
    s.start_router(f"[room k]\nxmpp = {room}\nb = CB\n", connectors=(b,))
    br = Bridge(s, pro)
    br.start()
    try:
        br.wait_online(1)
        dave.send_raw(f"<iq type='set' id='kick1' to='{room}'><query xmlns='http://jabber.org/"
                      "protocol/muc#admin'><item nick='bridge' role='none'/></query></iq>")
        br.wait_state("degraded")
        br.wait_online(1, timeout=30)
        dave.say(room, "welcome back")
        (ev,) = b.expect(1)
        assert ev["text"] == "welcome back"
    finally:
        end_world(br, dave)


@pytest.mark.timeout(60)
def test_untrusted_certificate_is_refused(infra):
    """XMPP_TLS=required (the default) without the test CA: the self-signed certificate is
    refused and the connector never logs in."""
    from prosody import Bridge, start_prosody
    s = infra
    pro = start_prosody(s)
    b = s.connector("b")
    s.start_router(ROOMS, connectors=(b,))
    br = Bridge(s, pro, env={"XMPP_CA_FILE": ""})
    br.start()
    try:
        # (The status topic cannot be asserted here: the connector core does not read the
        # bus while the network is down, so the broker connection completes only online.)
        wait_for(lambda: br.log_text().count("TLS failed (certificate not trusted?)") >= 2,
                 20, "two refused TLS attempts in the connector log")
        assert "Authenticated as bridge" not in pro.file_log.read_text()
        assert "logged in" not in br.log_text()
    finally:
        end_world(br)


@pytest.mark.timeout(60)
def test_plaintext_to_remote_server_is_a_config_error(infra):
    from prosody import Bridge, start_prosody
    s = infra
    pro = start_prosody(s)
    br = Bridge(s, pro, env={"XMPP_TLS": "off", "XMPP_SERVER": "xmpp.example.org:5222"})
    br.start()
    assert br.wait_exit(10) == 78
    assert "XMPP_TLS" in br.log_text()

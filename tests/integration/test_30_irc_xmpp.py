# SPDX-License-Identifier: AGPL-3.0-or-later
# IRC <-> XMPP end to end: real ngircd and Prosody, both connectors (trestle-irc and
# trestle-xmpp), the router, Mosquitto and Redis; people are a raw-socket IRC client and a
# slixmpp client. A line from IRC appears in the room with its author, the reverse, an XMPP
# correction arrives on IRC as a correction line, and nothing loops (counted on both sides).

import re

import pytest

from harness import wait_for
from ircd import IrcClient, IrcConnector, Ngircd, sanitizer_lines
from prosody import MUC, Bridge, XmppUser, end_world, start_prosody

pytestmark = pytest.mark.needs_router

ROOM = f"cross@{MUC}"
ROOMS = f"""[room cross]
irc = #bridge
xmpp = {ROOM}
"""
ZWJ = "\u200d"


@pytest.fixture
def cross(infra):
    s = infra
    ircd = s._retry_start(lambda: Ngircd(s.workdir))
    pro = start_prosody(s)
    s.start_router(ROOMS)
    carol = IrcClient(ircd.port, "carol")
    carol.join("#bridge")
    irc = IrcConnector(s, ircd, nick="bridge", IRC_FLOOD_RATE=20, IRC_FLOOD_BURST=20)
    irc.start()
    br = Bridge(s, pro)
    br.start()
    br.wait_online(1)
    alice = XmppUser(pro, "alice")
    alice.join(ROOM)
    # trestle-irc has joined once carol sees it.
    carol.wait_line(lambda l: re.match(r"^:bridge!\S* JOIN :?#bridge", l, re.I), 20)
    yield s, carol, alice, irc, br
    carol.close()
    end_world(br, alice)
    bad = sanitizer_lines(irc)
    assert not bad, "sanitizer reports in the trestle-irc log:\n" + "\n".join(bad[:20])


def irc_lines(carol):
    return [t for _, t in carol.privmsgs("#bridge", "bridge")]


def from_bridge(alice):
    return [m for m in alice.msgs if m.nick == "bridge" and m.body is not None]


@pytest.mark.timeout(120)
def test_irc_and_xmpp_both_ways_with_correction_and_no_loops(cross):
    s, carol, alice, irc, br = cross
    # IRC -> XMPP, with the author's name.
    carol.say("#bridge", "hello from irc")
    m = alice.wait(lambda m: m.nick == "bridge" and "hello from irc" in (m.body or ""))
    assert m.body.replace(ZWJ, "") == "<carol> hello from irc"
    # XMPP -> IRC, with the author's name (a zero-width joiner keeps it from highlighting).
    mid = alice.say(ROOM, "hello from xmpp")
    wait_for(lambda: any("hello from xmpp" in t for t in irc_lines(carol)), 15,
             lambda: f"the XMPP line on IRC; got {irc_lines(carol)!r}")
    line = next(t for t in irc_lines(carol) if "hello from xmpp" in t)
    assert "alice" in line.replace(ZWJ, "") and "alice" not in line
    # An XMPP correction arrives on IRC as a correction line.
    alice.say(ROOM, "hello from xmpp, corrected",
              extra=f"<replace xmlns='urn:xmpp:message-correct:0' id='{mid}'/>")
    wait_for(lambda: any("corrected" in t for t in irc_lines(carol)), 15,
             lambda: f"the correction line on IRC; got {irc_lines(carol)!r}")
    fix = next(t for t in irc_lines(carol) if "corrected" in t)
    assert "edited" in fix and "hello from xmpp, corrected" in fix
    # No loops: one more line each way as a barrier, then count everything.
    carol.say("#bridge", "last from irc")
    alice.wait(lambda m: m.nick == "bridge" and "last from irc" in (m.body or ""))
    alice.say(ROOM, "last from xmpp")
    wait_for(lambda: any("last from xmpp" in t for t in irc_lines(carol)), 15, "last line on IRC")
    assert len(irc_lines(carol)) == 3, irc_lines(carol)
    assert [m.body.replace(ZWJ, "") for m in from_bridge(alice)] == [
        "<carol> hello from irc", "<carol> last from irc"]
    assert alice.count(lambda m: m.nick == "alice") == 3

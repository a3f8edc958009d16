# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-irc when things go wrong, against a real ngircd: the server killed and restarted
# (reconnect, rejoin, messages sent meanwhile delivered in order), a nick collision, a kick
# (rejoin with backoff), a 200-line burst under the server's flood control, and TLS.

import re
import ssl

import pytest

from harness import wait_for
from ircd import Bridge, irc_probe, irc_stack  # noqa: F401  (fixture)

pytestmark = pytest.mark.needs_router

ZWJ = "\u200d"
PREFIX = f"<A{ZWJ}lice> "


@pytest.mark.timeout(120)
def test_server_restart_reconnects_rejoins_and_delivers_held(irc_stack):
    w = Bridge(irc_stack)
    w.wait_state("online")
    alice = w.users["alice"]
    w.wait_joined(alice)
    w.b.send("CB", text="before")
    w.wait_from_bridge(alice, 1)
    w.ircd.kill9()
    w.wait_state("offline")
    sent = [w.b.send("CB", text=f"meanwhile {i}") for i in range(5)]
    w.ircd.start_ready()
    alice2 = w.user("alice")
    alice2.join("#bridge")
    w.wait_joined(alice2, timeout=60)
    w.wait_state("online", timeout=30)
    got = w.wait_from_bridge(alice2, 5, timeout=30)
    assert got == [PREFIX + f"meanwhile {i}" for i in range(5)]
    for ev in sent:
        assert w.acked(ev["id"])["ok"] is True
    # And the other way, after the restart.
    alice2.say("#bridge", "back")
    evs = w.b.expect(1)
    assert evs[0]["text"] == "back"
    w.check_sanitizers()


@pytest.mark.timeout(60)
def test_nick_collision_takes_an_alternative(irc_stack):
    w = Bridge(irc_stack, users=("alice", "bridge"))
    st = w.wait_state("online")
    assert "bridge_" in st["detail"]
    alice = w.users["alice"]
    w.wait_joined(alice, nick="bridge_")
    w.b.send("CB", text="from the second nick")
    (line,) = w.wait_from_bridge(alice, 1, nick="bridge_")
    assert line == PREFIX + "from the second nick"
    # The user who holds the nick is not the bridge: their lines are bridged.
    w.users["bridge"].say("#bridge", "i am the real bridge")
    (ev,) = w.b.expect(1)
    assert ev["author"]["name"] == "bridge" and ev["text"] == "i am the real bridge"
    w.check_sanitizers()


@pytest.mark.timeout(60)
def test_kick_rejoins_with_backoff(irc_stack):
    w = Bridge(irc_stack)  # alice joined first: she is the channel operator
    w.wait_state("online")
    alice = w.users["alice"]
    w.wait_joined(alice)
    mark = len(alice.lines())
    alice.send("KICK #bridge bridge :out")
    w.wait_joined(alice, start=mark, timeout=30)
    w.b.send("CB", text="after the kick")
    assert w.wait_from_bridge(alice, 1)[-1] == PREFIX + "after the kick"
    w.check_sanitizers()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flood_200_lines_complete_in_order_without_kick(irc_stack):
    # The bucket (3 lines/s, burst 5) stays under ngircd's own penalty rate.
    w = Bridge(irc_stack, connector_env=dict(IRC_FLOOD_RATE=3, IRC_FLOOD_BURST=5))
    w.wait_state("online")
    alice = w.users["alice"]
    w.wait_joined(alice)
    for i in range(200):
        w.b.send("CB", text=f"flood {i}", wait=False)
    got = w.wait_from_bridge(alice, 200, timeout=200)
    assert got == [PREFIX + f"flood {i}" for i in range(200)]
    lines = alice.lines()
    assert not any(re.match(r"^:bridge!\S* (QUIT|PART|KICK)", l) for l in lines)
    assert not any(" KICK #bridge bridge" in l for l in lines)
    # Still the same session: no offline status since it came online.
    assert w.conn.alive()
    assert "Excess Flood" not in w.ircd.log_text()
    w.check_sanitizers()


@pytest.mark.timeout(90)
def test_tls_connection(irc_stack):
    w = Bridge(irc_stack, tls=True, start=False)
    w.conn.env.update(IRC_SERVER=f"127.0.0.1:{w.ircd.tls_port}", IRC_TLS="1",
                      IRC_CA_FILE=str(w.ircd.cert))
    w.conn.start()
    st = w.wait_state("online", timeout=20)
    assert "bridge" in st["detail"]
    alice = w.users["alice"]
    w.wait_joined(alice)
    w.b.send("CB", text="over tls")
    assert w.wait_from_bridge(alice, 1) == [PREFIX + "over tls"]
    alice.say("#bridge", "back over tls")
    assert w.b.expect(1)[0]["text"] == "back over tls"
    # A TLS user sees the same (the server really speaks TLS on that port).
    ctx = ssl.create_default_context(cafile=str(w.ircd.cert))
    assert irc_probe("127.0.0.1", w.ircd.tls_port, ctx)
    w.check_sanitizers()


@pytest.mark.timeout(60)
def test_tls_unknown_certificate_is_refused(irc_stack):
    w = Bridge(irc_stack, tls=True, start=False)
    w.conn.env.update(IRC_SERVER=f"127.0.0.1:{w.ircd.tls_port}", IRC_TLS="1")
    w.conn.start()
    # Logged (the status may go offline before the bus connection is up; see README).
    wait_for(lambda: "TLS handshake failed" in w.conn.log_text(), 20, "TLS refusal in the log")
    assert "self-signed" in w.conn.log_text()
    assert not any(" JOIN " in l and l.startswith(":bridge!") for l in w.users["alice"].lines())
    w.check_sanitizers()

# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-irc against a real ngircd, through real Mosquitto, Redis and the router, with a harness
# connector "b" on the far side of the room and raw-socket IRC test users: lines both ways,
# /me, formatting, splitting at 512 bytes, CR/LF injection, mass mentions, edits, no echo.

import pytest

from ircd import Bridge, irc_stack  # noqa: F401  (fixture)

pytestmark = pytest.mark.needs_router

ZWJ = "\u200d"
PREFIX = f"<A{ZWJ}lice> "  # the harness connector's author: display "Alice"


@pytest.fixture
def world(irc_stack):
    w = Bridge(irc_stack)
    st = w.wait_state("online")
    assert st["network"] == "irc" and "bridge" in st["detail"]
    w.wait_joined(w.users["alice"])
    yield w
    w.check_sanitizers()


@pytest.mark.timeout(60)
def test_irc_line_reaches_bus_with_author(world):
    alice = world.users["alice"]
    alice.say("#bridge", "hello from irc")
    (ev,) = world.b.expect(1)
    assert ev["type"] == "message" and ev["connector"] == "irc" and ev["network"] == "irc"
    assert ev["channel"] == "#bridge" and ev["dest"]["channel"] == "CB"
    assert ev["author"]["name"] == "alice" and ev["author"]["id"] == "alice"
    assert ev["text"] == "hello from irc"
    assert ev["msgid"] and ev["id"].startswith("irc:#bridge:")


@pytest.mark.timeout(60)
def test_bus_message_reaches_irc_with_prefix_and_ack(world):
    alice = world.users["alice"]
    ev = world.b.send("CB", text="hello from b")
    (line,) = world.wait_from_bridge(alice, 1)
    assert line == PREFIX + "hello from b"
    ack = world.acked(ev["id"])
    assert ack["ok"] is True and ack["msgid"]


@pytest.mark.timeout(60)
def test_me_both_ways(world):
    alice = world.users["alice"]
    alice.say("#bridge", "\x01ACTION waves\x01")
    (ev,) = world.b.expect(1)
    assert ev["text"] == "/me waves" and ev["author"]["name"] == "alice"
    world.b.send("CB", text="/me dances")
    (line,) = world.wait_from_bridge(alice, 1)
    assert line == f"\x01ACTION A{ZWJ}lice dances\x01"


@pytest.mark.timeout(60)
def test_formatting_both_ways(world):
    alice = world.users["alice"]
    world.b.send("CB", text="**bold** and *it* and `code`")
    (line,) = world.wait_from_bridge(alice, 1)
    assert "\x02bold\x02" in line and "\x1dit\x1d" in line and "\x11code\x11" in line
    alice.say("#bridge", "\x02strong\x02 \x1dslanted\x1d \x0304red\x03 plain")
    (ev,) = world.b.expect(1)
    assert "**strong**" in ev["text"]
    assert "*slanted*" in ev["text"] or "_slanted_" in ev["text"]
    assert "red" in ev["text"] and "\x03" not in ev["text"] and "04" not in ev["text"]


@pytest.mark.timeout(90)
def test_3000_byte_message_split(world):
    alice = world.users["alice"]
    words = [f"w{i}é€" for i in range(600)]
    text = " ".join(words)
    while len(text.encode()) < 3000:
        text += " more"
    ev = world.b.send("CB", text=text)
    ack = world.acked(ev["id"], timeout=30)
    assert ack["ok"] is True
    raw = [l for l in alice.lines() if " PRIVMSG #bridge " in l and l.startswith(":bridge!")]
    assert len(raw) >= 7
    # Every line as it reached the user, with the bridge's prefix and CR LF, fits in 512 bytes.
    assert all(len(l.encode()) + 2 <= 512 for l in raw), [len(l.encode()) for l in raw]
    got = world.from_bridge(alice)
    assert all(l.startswith(PREFIX) for l in got)
    assert " ".join(l[len(PREFIX):] for l in got) == text


@pytest.mark.timeout(60)
def test_crlf_quit_stays_harmless(world):
    alice = world.users["alice"]
    mark = len(alice.lines())
    world.b.send("CB", text="hi\r\nQUIT :pwned\r\nPRIVMSG #bridge :spoof")
    got = world.wait_from_bridge(alice, 3)
    assert got[0] == PREFIX + "hi"
    assert got[1] == PREFIX + "QUIT :pwned"
    assert got[2].startswith(PREFIX)
    # Still connected: a later message arrives, and the bridge never quit.
    world.b.send("CB", text="still here")
    got = world.wait_from_bridge(alice, 4)
    assert got[3] == PREFIX + "still here"
    bridge_lines = [l for l in alice.lines()[mark:] if l.startswith(":bridge!")]
    assert all(" PRIVMSG #bridge :" in l for l in bridge_lines), bridge_lines


@pytest.mark.timeout(60)
def test_mass_mentions_neutralised(world):
    alice = world.users["alice"]
    world.b.send("CB", text="hey @room and @everyone and @here")
    (line,) = world.wait_from_bridge(alice, 1)
    for tok in ("@room", "@everyone", "@here"):
        assert tok not in line, line
    assert "room" in line and "everyone" in line


@pytest.mark.timeout(60)
def test_edit_as_correction_line(world):
    alice = world.users["alice"]
    ev = world.b.send("CB", text="first version")
    ack = world.acked(ev["id"])
    world.b.send("CB", type="edit", target=ev["msgid"], text="second version")
    got = world.wait_from_bridge(alice, 2)
    assert got[0] == PREFIX + "first version"
    assert got[1] == f"A{ZWJ}lice edited: second version"
    assert ack["ok"]


@pytest.mark.timeout(60)
def test_own_lines_never_bridged_back(world):
    alice = world.users["alice"]
    for i in range(5):
        world.b.send("CB", text=f"from b {i}")
    world.wait_from_bridge(alice, 5)
    for i in range(3):
        alice.say("#bridge", f"from alice {i}")
    alice.say("#bridge", "marker")
    evs = world.b.expect(4)
    assert [e["text"] for e in evs] == ["from alice 0", "from alice 1", "from alice 2", "marker"]
    # Nothing else came back: the 5 bridged lines were not published as new events.
    assert world.b.unread() == []
    assert not any(e["author"]["name"] == "bridge" for e in evs)


@pytest.mark.timeout(60)
def test_reply_prefix_names_the_irc_author(world):
    alice = world.users["alice"]
    alice.say("#bridge", "question?")
    (ev,) = world.b.expect(1)
    world.b.ack(ev, msgid="b-question")  # the router learns b's id of alice's line
    world.b.send("CB", text="answer", reply_to="b-question")
    (line,) = world.wait_from_bridge(alice, 1)
    assert line == PREFIX + "alice: answer"

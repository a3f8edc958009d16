# SPDX-License-Identifier: AGPL-3.0-or-later
# Router fan-out (DESIGN §4): every other endpoint gets one copy with room and dest, modes are
# respected, nothing echoes to the origin, a duplicate id is dropped, order is kept per channel.

import pytest

from harness import assert_nothing_more, ids_of

pytestmark = pytest.mark.needs_router

ROOMS3 = """; three connectors in one room
[room r1]
a = CA
b = CB
c = CC
"""


@pytest.fixture
def three(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    s.start_router(ROOMS3, connectors=(a, b, c))
    return s, a, b, c


def _strip_out(ev):
    return {k: v for k, v in ev.items() if k not in ("room", "dest")}


@pytest.mark.timeout(60)
def test_fanout_to_every_other_endpoint(three):
    s, a, b, c = three
    ev = a.send("CA", text="hello **world**", x_unknown={"kept": [1, 2]})
    (ob,) = b.expect(1)
    (oc,) = c.expect(1)
    for out, conn, chan in ((ob, "b", "CB"), (oc, "c", "CC")):
        assert _strip_out(out) == ev, "out event must be the in event unchanged"
        assert out["room"] == "r1"
        assert out["dest"]["connector"] == conn and out["dest"]["channel"] == chan
        for k in ("reply_to", "thread", "target"):
            assert k not in out["dest"], f"dest.{k} must be absent when unknown: {out['dest']}"
    # No echo to the origin; exactly one copy each.
    assert_nothing_more(a, via=b, channel="CB")
    assert_nothing_more(b, via=a, channel="CA")
    assert_nothing_more(c, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_every_endpoint_reaches_the_others(three):
    s, a, b, c = three
    for src, chan, others in ((a, "CA", (b, c)), (b, "CB", (a, c)), (c, "CC", (a, b))):
        ev = src.send(chan)
        for o in others:
            assert o.expect_one()["id"] == ev["id"]
    for dest, via, chan in ((a, b, "CB"), (b, c, "CC"), (c, a, "CA")):
        assert_nothing_more(dest, via=via, channel=chan)


ROOMS_MODES = """[room r1]
a = CA
b = CB in
c = CC out
[room side]
b = CB2
d = CD
"""


@pytest.mark.timeout(60)
def test_modes_in_out_inout(infra):
    s = infra
    a, b, c, d = (s.connector(n) for n in "abcd")
    r = s.start_router(ROOMS_MODES, connectors=(a, b, c, d))
    # inout origin: reaches the out endpoint, not the in endpoint.
    e1 = a.send("CA")
    assert c.expect_one()["id"] == e1["id"]
    # in origin: its messages go out to the others.
    e2 = b.send("CB")
    assert a.expect_one()["id"] == e2["id"]
    assert c.expect_one()["id"] == e2["id"]
    # out origin: dropped and counted.
    before = r.metric("trestle_router_dropped_total", reason="out_only")
    c.send("CC")
    r.wait_metric("trestle_router_dropped_total", before + 1, reason="out_only")
    # b (in mode in r1) got nothing from r1; its side room still delivers to it.
    assert_nothing_more(b, via=d, channel="CD")
    assert_nothing_more(a, via=b, channel="CB")
    assert_nothing_more(c, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_endpoint_in_no_room_dropped(three):
    s, a, b, c = three
    before = s.router.metric("trestle_router_dropped_total", reason="no_room")
    a.send("NOT-A-CHANNEL-OF-A")
    s.router.wait_metric("trestle_router_dropped_total", before + 1, reason="no_room")
    assert_nothing_more(b, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_duplicate_id_dropped(three):
    s, a, b, c = three
    r = s.router
    before = r.metric("trestle_router_dropped_total", reason="duplicate")
    ev = a.send("CA")
    a.publish(ev)
    a.publish(dict(ev, text="same id, other text"))
    assert b.expect_one()["id"] == ev["id"]
    assert c.expect_one()["id"] == ev["id"]
    r.wait_metric("trestle_router_dropped_total", before + 2, reason="duplicate")
    assert_nothing_more(b, via=a, channel="CA")
    assert_nothing_more(c, via=a, channel="CA")


ROOMS_SHARED = """[room r1]
a = CA
b = CB
[room r2]
a = CA
b = CB
c = CC
"""


@pytest.mark.timeout(60)
def test_endpoint_in_two_shared_rooms_gets_one_copy(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    s.start_router(ROOMS_SHARED, connectors=(a, b, c))
    ev = a.send("CA")
    ob = b.expect_one()
    assert ob["id"] == ev["id"] and ob["room"] == "r1", "room is the first room holding both"
    assert c.expect_one()["id"] == ev["id"]
    assert_nothing_more(b, via=a, channel="CA")


@pytest.mark.timeout(120)
def test_thousand_events_in_order(three):
    s, a, b, c = three
    sent = [a.send("CA", text=f"n {i}")["id"] for i in range(1000)]
    for dest in (b, c):
        got = ids_of(dest.expect(1000, timeout=60))
        assert got == sent, f"order or content differs at {dest.name}: first difference at " \
            f"{next((i for i, (x, y) in enumerate(zip(got, sent)) if x != y), None)}"
    assert_nothing_more(b, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_retained_channels_per_connector(infra):
    s = infra
    rooms = """[room r1]
a = CA
b = CB
[room r2]
a = CA2
b = CB
c = CC out
"""
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    s.start_router(rooms, connectors=(a, b, c))
    assert a.wait_channels(["CA", "CA2"])["channels"] == ["CA", "CA2"]
    b.wait_channels(["CB"])
    c.wait_channels(["CC"])
    # Retained: a connector that subscribes later still gets its list.
    late = s.mqtt_client("late")
    late.subscribe(s.topic("channels", "a"))
    (m,) = late.expect_messages(s.topic("channels", "a"), 1)
    assert m.retain and m.json == {"v": 1, "channels": ["CA", "CA2"]}

# SPDX-License-Identifier: AGPL-3.0-or-later
# Rooms file reload on SIGHUP (good file: new routes and channels lists; bad file: refused
# with FILE:LINE, old rooms stay) and a bad rooms file at start (exit 78).

import json

import pytest

from harness import assert_nothing_more, wait_for

pytestmark = pytest.mark.needs_router

ROOMS1 = """[room r1]
a = CA
b = CB
"""
ROOMS2 = """[room r1]
a = CA
b = CB
[room r2]
a = CA2
c = CC
"""


def _rooms_in_redis(s):
    raw = s.redis.client().get(f"{s.prefix}:rooms")
    return None if raw is None else json.loads(raw)


@pytest.mark.timeout(60)
def test_sighup_good_file_adds_routes(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    r = s.start_router(ROOMS1, connectors=(a, b))
    assert r.metric("trestle_router_rooms") == 1
    before = r.metric("trestle_router_dropped_total", reason="no_room")
    a.send("CA2")
    r.wait_metric("trestle_router_dropped_total", before + 1, reason="no_room")

    r.write_rooms(ROOMS2)
    r.hup()
    c.wait_channels(["CC"])
    a.wait_channels(["CA", "CA2"])
    b.wait_channels(["CB"])
    r.wait_metric("trestle_router_rooms", 2, cmp="==")
    ev = a.send("CA2")
    oc = c.expect_one()
    assert oc["id"] == ev["id"] and oc["room"] == "r2" and oc["dest"]["channel"] == "CC"
    ev1 = a.send("CA")
    assert b.expect_one()["id"] == ev1["id"]
    assert_nothing_more(b, via=a, channel="CA")
    assert_nothing_more(c, via=a, channel="CA2")
    rooms = wait_for(lambda: (lambda j: j if j and len(j.get("rooms", [])) == 2 else None)(
        _rooms_in_redis(s)), what="two rooms in Redis")
    assert sorted(x["name"] for x in rooms["rooms"]) == ["r1", "r2"]
    assert r.alive()


@pytest.mark.timeout(60)
def test_sighup_removed_connector_gets_empty_channels(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    r = s.start_router(ROOMS2, connectors=(a, b, c))
    c.wait_channels(["CC"])
    r.write_rooms(ROOMS1)
    r.hup()
    c.wait_channels([])
    a.wait_channels(["CA"])
    assert c.channels() == {"v": 1, "channels": []}
    m = c.mq.latest(c.channels_topic)
    assert m is not None
    # Retained: a late subscriber sees the empty list too.
    late = s.mqtt_client("late")
    late.subscribe(s.topic("channels", "c"))
    (lm,) = late.expect_messages(s.topic("channels", "c"), 1)
    assert lm.retain and lm.json == {"v": 1, "channels": []}
    # And c no longer receives anything from a.
    before = r.metric("trestle_router_dropped_total", reason="no_room")
    a.send("CA2")
    r.wait_metric("trestle_router_dropped_total", before + 1, reason="no_room")


BAD_RELOAD = """[room r1]
a = CA
this line is not an endpoint
b = CB
[room r2]
a = CA2
c = CC
"""


@pytest.mark.timeout(60)
def test_sighup_bad_file_keeps_old_rooms(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    r = s.start_router(ROOMS1, connectors=(a, b))
    r.write_rooms(BAD_RELOAD)
    r.hup()
    r.wait_log(r"rooms\.ini:3: ")
    assert r.alive(), "a bad file on reload must not stop the router"
    # Old rooms still route; the bad file's new room is not in force.
    ev = a.send("CA")
    assert b.expect_one()["id"] == ev["id"]
    before = r.metric("trestle_router_dropped_total", reason="no_room")
    a.send("CA2")
    r.wait_metric("trestle_router_dropped_total", before + 1, reason="no_room")
    assert r.metric("trestle_router_rooms") == 1
    assert c.channels() is None, f"channels published for a refused file: {c.channels()}"
    assert_nothing_more(b, via=a, channel="CA")
    # A good file afterwards is taken.
    r.write_rooms(ROOMS2)
    r.hup()
    c.wait_channels(["CC"])
    ev2 = a.send("CA2")
    assert c.expect_one()["id"] == ev2["id"]


@pytest.mark.timeout(60)
def test_sighup_unreadable_file_keeps_old_rooms(infra):
    s = infra
    a, b = s.connector("a"), s.connector("b")
    r = s.start_router(ROOMS1, connectors=(a, b))
    r.rooms_path.unlink()
    r.hup()
    r.wait_log(r"rooms\.ini: ")
    ev = a.send("CA")
    assert b.expect_one()["id"] == ev["id"]
    assert r.alive()


# (case, rooms text, line expected in the error)
BAD_START = [
    ("no_equals", "[room r1]\na = CA\nnonsense\n", 3),
    ("bad_mode", "[room r1]\na = CA\nb = CB sideways\n", 3),
    ("bad_connector", "[room r1]\na = CA\nBad!Name = CB\n", 3),
    ("endpoint_outside_room", "a = CA\n[room r1]\nb = CB\n", 1),
    ("duplicate_room", "[room r1]\na = CA\n[room r1]\nb = CB\n", 3),
    ("duplicate_endpoint", "[room r1]\na = CA\nb = CB\na = CA\n", 4),
    ("bad_section", "[rooom r1]\na = CA\n", 1),
    ("bad_room_name", "; comment\n[room no spaces allowed]\na = CA\n", 2),
    ("empty_channel", "[room r1]\na =\n", 2),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case,text,line", BAD_START, ids=[c[0] for c in BAD_START])
def test_bad_rooms_file_at_start_exits_78(infra, case, text, line):
    s = infra
    r = s.make_router(text)
    r.start()
    rc = r.wait_exit(10)
    assert rc == 78, f"exit code {rc}, want 78"
    assert f"rooms.ini:{line}: " in r.log_text(), f"no rooms.ini:{line}: in the log"


@pytest.mark.timeout(30)
def test_missing_rooms_file_at_start_exits_78(infra):
    s = infra
    r = s.make_router(None)
    r.start()
    assert r.wait_exit(10) == 78
    assert "rooms.ini" in r.log_text()


@pytest.mark.timeout(30)
def test_bad_config_at_start_exits_78(infra):
    s = infra
    r = s.make_router(ROOMS1, TRESTLE_MQTT_URL="http://nope")
    r.start()
    assert r.wait_exit(10) == 78

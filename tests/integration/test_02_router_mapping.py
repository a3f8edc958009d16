# SPDX-License-Identifier: AGPL-3.0-or-later
# Id mapping learnt from acks (DESIGN §4): edits, replies, reactions and deletes made on any
# side reach every other side with that side's own ids; unknown targets are not delivered
# (delete, reaction) or delivered without dest.target (edit); a quick edit waits for the acks.

import pytest

from harness import assert_nothing_more, wait_for

pytestmark = pytest.mark.needs_router

ROOMS3 = """[room r1]
a = CA
b = CB
c = CC
"""


def _start(s, **env):
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    s.start_router(ROOMS3, connectors=(a, b, c), **env)
    return a, b, c


def _message_acked(s, a, b, c, amsg, bmsg, cmsg):
    """a sends a message; b and c ack it with their own ids; waits until the router counted
    both acks."""
    r = s.router
    acks0 = r.metric("trestle_router_acks_total", result="ok")
    m = a.send("CA", msgid=amsg)
    ob, oc = b.expect_one(), c.expect_one()
    assert ob["id"] == m["id"] and oc["id"] == m["id"]
    b.ack(ob, bmsg)
    c.ack(oc, cmsg)
    r.wait_metric("trestle_router_acks_total", acks0 + 2, result="ok")
    return m


@pytest.mark.timeout(90)
def test_mapping_both_directions(infra):
    s = infra
    a, b, c = _start(s)
    _message_acked(s, a, b, c, "a1", "b1", "c1")

    # Edit on A (the origin) reaches B and C with their ids.
    ed = a.send("CA", type="edit", msgid="a1", target="a1", text="edited")
    ob, oc = b.expect_one(), c.expect_one()
    assert ob["id"] == ed["id"] and ob["dest"].get("target") == "b1", ob
    assert oc["id"] == ed["id"] and oc["dest"].get("target") == "c1", oc
    assert ob["target"] == "a1", "the top-level target stays the origin's id"

    # A reply made on B to B's copy reaches A with A's original id and C with C's id.
    rp = b.send("CB", msgid="b2", reply_to="b1", thread="b1", text="a reply")
    oa, oc = a.expect_one(), c.expect_one()
    assert oa["id"] == rp["id"] and oa["dest"].get("reply_to") == "a1", oa
    assert oa["dest"].get("thread") == "a1", oa
    assert oc["dest"].get("reply_to") == "c1" and oc["dest"].get("thread") == "c1", oc

    # An edit made on B of A's message (B's copy) reaches A with A's own id, and C.
    eb = b.send("CB", type="edit", msgid="b1", target="b1", text="edited on b")
    oa, oc = a.expect_one(), c.expect_one()
    assert oa["id"] == eb["id"] and oa["dest"].get("target") == "a1", oa
    assert oc["dest"].get("target") == "c1", oc

    # A reaction from C reaches A and B mapped.
    rc = c.send("CC", type="reaction", target="c1", reaction="\U0001F44D")
    oa, ob = a.expect_one(), b.expect_one()
    assert oa["id"] == rc["id"] and oa["dest"].get("target") == "a1", oa
    assert ob["id"] == rc["id"] and ob["dest"].get("target") == "b1", ob
    assert oa["reaction"] == "\U0001F44D"

    # A withdrawn reaction likewise.
    rr = c.send("CC", type="reaction", target="c1", reaction="\U0001F44D", removed=True)
    oa, ob = a.expect_one(), b.expect_one()
    assert oa["id"] == rr["id"] and oa["removed"] is True and oa["dest"].get("target") == "a1"
    assert ob["dest"].get("target") == "b1"

    # A delete made on B reaches A and C mapped.
    de = b.send("CB", type="delete", target="b1")
    oa, oc = a.expect_one(), c.expect_one()
    assert oa["id"] == de["id"] and oa["dest"].get("target") == "a1", oa
    assert oc["id"] == de["id"] and oc["dest"].get("target") == "c1", oc

    for dest, via, chan in ((a, b, "CB"), (b, c, "CC"), (c, a, "CA")):
        assert_nothing_more(dest, via=via, channel=chan)


@pytest.mark.timeout(60)
def test_unknown_target_delete_and_reaction_not_delivered(infra):
    s = infra
    a, b, c = _start(s, TRESTLE_ACK_WAIT_MS=200)
    r = s.router
    before = r.metric("trestle_router_dropped_total", reason="unmapped")
    a.send("CA", type="delete", target="never-seen")
    a.send("CA", type="reaction", target="never-seen", reaction="x")
    # Dropped for each destination (b and c), both events.
    r.wait_metric("trestle_router_dropped_total", before + 4, reason="unmapped")
    assert_nothing_more(b, via=a, channel="CA")
    assert_nothing_more(c, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_unknown_target_edit_delivered_without_dest_target(infra):
    s = infra
    a, b, c = _start(s, TRESTLE_ACK_WAIT_MS=200)
    ed = a.send("CA", type="edit", msgid="nope", target="nope", text="fixed")
    for o in (b.expect_one(), c.expect_one()):
        assert o["id"] == ed["id"] and "target" not in o["dest"], o


@pytest.mark.timeout(60)
def test_delete_known_on_one_side_only(infra):
    """c failed to post the message (ack ok:false): a delete reaches b mapped, not c."""
    s = infra
    a, b, c = _start(s, TRESTLE_ACK_WAIT_MS=300)
    r = s.router
    acks_ok = r.metric("trestle_router_acks_total", result="ok")
    acks_failed = r.metric("trestle_router_acks_total", result="failed")
    a.send("CA", msgid="a7")
    ob, oc = b.expect_one(), c.expect_one()
    b.ack(ob, "b7")
    c.ack(oc, ok=False, error="forbidden", detail="bot not in channel")
    r.wait_metric("trestle_router_acks_total", acks_ok + 1, result="ok")
    r.wait_metric("trestle_router_acks_total", acks_failed + 1, result="failed")
    de = a.send("CA", type="delete", target="a7")
    ob = b.expect_one()
    assert ob["id"] == de["id"] and ob["dest"].get("target") == "b7"
    assert_nothing_more(c, via=a, channel="CA")


@pytest.mark.timeout(60)
def test_quick_edit_waits_for_acks(infra):
    s = infra
    # A wait far longer than the test: the edit can only arrive once the acks are in.
    a, b, c = _start(s, TRESTLE_ACK_WAIT_MS=60000)
    m = a.send("CA", msgid="a9")
    ed = a.send("CA", type="edit", msgid="a9", target="a9", text="typo fixed")
    ob, oc = b.expect_one(), c.expect_one()
    assert ob["id"] == m["id"] and oc["id"] == m["id"]
    # The edit must not have been delivered before the acks (it cannot know the ids yet).
    assert b.unread() == [] and c.unread() == [], "edit delivered before the message was acked"
    b.ack(ob, "b9")
    c.ack(oc, "c9")
    eb, ec = b.expect_one(), c.expect_one()
    assert eb["id"] == ed["id"] and eb["dest"].get("target") == "b9", eb
    assert ec["id"] == ed["id"] and ec["dest"].get("target") == "c9", ec


@pytest.mark.timeout(60)
def test_quick_edit_without_ack_goes_after_the_wait(infra):
    s = infra
    a, b, c = _start(s, TRESTLE_ACK_WAIT_MS=300)
    m = a.send("CA", msgid="a10")
    ed = a.send("CA", type="edit", msgid="a10", target="a10", text="typo fixed")
    ob = b.expect_one()
    assert ob["id"] == m["id"]
    b.ack(ob, "b10")
    # c never acks: after the wait, c gets the edit without dest.target; b gets it mapped.
    eb, ec = b.expect_one(), c.expect(2)[1]
    assert eb["id"] == ed["id"] and eb["dest"].get("target") == "b10", eb
    assert ec["id"] == ed["id"] and "target" not in ec["dest"], ec


@pytest.mark.timeout(60)
def test_mapping_survives_router_restart(infra):
    """Mappings live in Redis: a restarted router still maps an edit."""
    s = infra
    a, b, c = _start(s)
    _message_acked(s, a, b, c, "a11", "b11", "c11")
    assert s.router.stop() == 0
    s.router.start_ready()
    ed = a.send("CA", type="edit", msgid="a11", target="a11", text="later")
    ob, oc = b.expect_one(), c.expect_one()
    assert ob["id"] == ed["id"] and ob["dest"].get("target") == "b11"
    assert oc["dest"].get("target") == "c11"


@pytest.mark.timeout(60)
def test_redis_holds_no_message_text(infra):
    s = infra
    a, b, c = _start(s)
    secret = "very-secret-text-7f3a"
    a.send("CA", msgid="a12", text=secret)
    ob, oc = b.expect_one(), c.expect_one()
    b.ack(ob, "b12")
    c.ack(oc, "c12")
    s.router.wait_metric("trestle_router_acks_total", 2, result="ok")
    rc = s.redis.client()
    keys = rc.keys("*")
    assert keys, "the router stored nothing in Redis"
    for k in keys:
        t = rc.type(k)
        if t == b"string":
            vals = [rc.get(k)]
        elif t == b"hash":
            vals = list(rc.hgetall(k).items())
        elif t == b"list":
            vals = rc.lrange(k, 0, -1)
        elif t == b"set":
            vals = list(rc.smembers(k))
        elif t == b"zset":
            vals = rc.zrange(k, 0, -1)
        else:
            vals = []
        assert secret.encode() not in repr(vals).encode() and secret.encode() not in k, k
    wait_for(lambda: rc.exists(f"{s.prefix}:rooms"), what=f"{s.prefix}:rooms in Redis")

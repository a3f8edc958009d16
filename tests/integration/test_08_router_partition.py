# SPDX-License-Identifier: AGPL-3.0-or-later
# Two routers sharing one table through Redis (TRESTLE_ROOMS=redis:) and partitioning the
# connectors between them (TRESTLE_ROUTER_CONNECTORS): every event routed exactly once, and id
# mappings learnt by one router serve the other.

import pytest

from harness import Router, assert_nothing_more

pytestmark = pytest.mark.needs_router

ROOMS = """[room shared]
a = CA
b = CB
"""


@pytest.mark.timeout(90)
def test_two_routers_partition_connectors(infra):
    s = infra
    a, b = s.connector("a"), s.connector("b")
    owner = s.start_router(ROOMS, connectors=(a, b), TRESTLE_ROUTER_CONNECTORS="a")
    follower = Router(s.workdir / "second", s.broker, s.redis, s.prefix, None, {
        "TRESTLE_ROOMS": "redis:",
        "TRESTLE_ROUTER_CONNECTORS": "b",
        "TRESTLE_ROUTER_ID": f"router2-{s.prefix}",
    })
    s.procs.append(follower)
    follower.start_ready()
    follower.wait_log(r"rooms loaded rooms=1 endpoints=2")

    m = a.send("CA", text="from a")
    (ob,) = b.expect(1)
    assert ob["id"] == m["id"]
    b.ack(ob, msgid="b-copy-1")
    # b's ack is the follower's to process; the mapping it writes to Redis is shared.
    follower.wait_metric("trestle_router_acks_total", 1, result="ok")
    r = b.send("CB", text="reply from b", reply_to="b-copy-1")
    (oa,) = a.expect(1)
    assert oa["id"] == r["id"] and oa["dest"].get("reply_to") == m["msgid"]
    # Exactly once each way: nothing more arrives behind a marker.
    assert_nothing_more(b, a, "CA")
    assert_nothing_more(a, b, "CB")
    assert owner.metric("trestle_router_events_in_total", connector="b") in (None, 0)
    assert follower.metric("trestle_router_events_in_total", connector="a") in (None, 0)

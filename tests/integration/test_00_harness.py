# SPDX-License-Identifier: AGPL-3.0-or-later
# Self-test of the harness: broker and Redis come up on free loopback ports, survive a
# restart with their data, and are gone after teardown.

import pytest

import harness


@pytest.mark.timeout(30)
def test_broker_and_redis_up_and_gone(tmp_path):
    s = harness.Stack(tmp_path, "selftest")
    try:
        s.start_infra()
        assert s.broker.port != s.redis.port
        assert harness.mqtt_ping("127.0.0.1", s.broker.port)
        assert s.redis.client().ping()

        pub = s.mqtt_client("pub")
        pub.publish(f"{s.prefix}/selftest", b"retained-1", retain=True)
        sub = s.mqtt_client("sub")
        sub.subscribe(f"{s.prefix}/selftest")
        (m,) = sub.expect_messages(f"{s.prefix}/selftest", 1)
        assert m.payload == b"retained-1" and m.retain

        s.redis.client().set("k", "v")
        pids = [p.pid for p in s.procs]
    finally:
        s.teardown()
    for p in s.procs:
        assert not p.alive()
    import os
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.timeout(60)
def test_restarts_keep_data(infra):
    s = infra
    s.redis.client().set("k", "v")
    s.redis.restart()
    harness.wait_for(s.redis.ready, what="redis back")
    assert s.redis.client().get("k") == b"v"

    # A persistent subscriber that is connected through a broker restart gets what was
    # published while the broker was down and after.
    sub = s.mqtt_client("sub")
    sub.subscribe(f"{s.prefix}/q")
    pub = s.mqtt_client("pub")
    pub.publish(f"{s.prefix}/q", b"before")
    sub.expect_messages(f"{s.prefix}/q", 1)
    s.broker.stop()
    infos = [pub.publish(f"{s.prefix}/q", f"during {i}".encode(), wait=False) for i in range(5)]
    s.broker.start()
    harness.wait_for(s.broker.ready, what="broker back")
    pub.publish(f"{s.prefix}/q", b"after")
    got = sub.expect_messages(f"{s.prefix}/q", 6, timeout=15)
    assert [m.payload for m in got] == [f"during {i}".encode() for i in range(5)] + [b"after"]
    harness.wait_for(lambda: all(harness.acked(i) for i in infos), what="PUBACKs")


@pytest.mark.timeout(30)
def test_wait_helpers_fail_clearly(infra):
    s = infra
    c = s.mqtt_client("c")
    c.subscribe(f"{s.prefix}/x")
    c.publish(f"{s.prefix}/x", b"one")
    with pytest.raises(AssertionError) as e:
        c.expect_messages(f"{s.prefix}/x", 2, timeout=1)
    assert "got 1" in str(e.value) and "one" in str(e.value)
    with pytest.raises(AssertionError) as e:
        harness.wait_for(lambda: False, 0.2, "nothing")
    assert "nothing" in str(e.value)


def test_parse_metrics():
    text = ('# HELP a_total x\n# TYPE a_total counter\na_total{reason="bad_json"} 3\n'
            'a_total{reason="too_big"} 1\nb 2.5\n'
            'h_bucket{le="+Inf"} 4\nc{y="2",x="1"} 7\n')
    m = harness.parse_metrics(text)
    assert harness.metric_value(m, "a_total", reason="bad_json") == 3
    assert harness.metric_value(m, "a_total", reason="nope") == 0
    assert harness.metric_value(m, "b") == 2.5
    assert harness.metric_value(m, "h_bucket", le="+Inf") == 4
    assert harness.metric_value(m, "c", x="1", y="2") == 7

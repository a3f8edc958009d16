# SPDX-License-Identifier: AGPL-3.0-or-later
# /metrics and /healthz of the router: the series of ROUTER.md exist with the right types and
# move with the traffic.

import re
import urllib.request

import pytest

from harness import metric_value, wait_for

pytestmark = pytest.mark.needs_router

ROOMS = """[room r1]
a = CA
b = CB
c = CC
[room r2]
b = CB2
c = CC2 out
"""

SERIES_TYPES = {
    "trestle_router_events_in_total": "counter",
    "trestle_router_events_out_total": "counter",
    "trestle_router_dropped_total": "counter",
    "trestle_router_acks_total": "counter",
    "trestle_router_route_latency_seconds": "histogram",
    "trestle_router_redis_reconnects_total": "counter",
    "trestle_router_broker_reconnects_total": "counter",
    "trestle_router_queue_depth": "gauge",
    "trestle_router_rooms": "gauge",
}


@pytest.fixture
def routed(infra):
    s = infra
    a, b, c = s.connector("a"), s.connector("b"), s.connector("c")
    s.start_router(ROOMS, connectors=(a, b, c))
    return s, a, b, c


@pytest.mark.timeout(60)
def test_metrics_move_with_traffic(routed):
    s, a, b, c = routed
    r = s.router
    m0 = r.metrics()

    def d(m, name, **labels):
        return metric_value(m, name, **labels) - metric_value(m0, name, **labels)

    evs = [a.send("CA") for _ in range(3)]
    got_b, got_c = b.expect(3), c.expect(3)
    b.ack(got_b[0], "b-1")
    c.ack(got_c[0], ok=False, error="forbidden")
    bev = b.send("CB2")
    assert c.expect_one()["id"] == bev["id"]

    def settled():
        m = r.metrics()
        return m if (d(m, "trestle_router_acks_total", result="ok") == 1
                     and d(m, "trestle_router_acks_total", result="failed") == 1
                     and d(m, "trestle_router_events_in_total", connector="b") == 1) else None

    m = wait_for(settled, what=lambda: f"acks and events counted; now {r.metrics()}")
    assert d(m, "trestle_router_events_in_total", connector="a") == len(evs)
    assert d(m, "trestle_router_events_out_total", connector="b") == 3
    assert d(m, "trestle_router_events_out_total", connector="c") == 4
    assert d(m, "trestle_router_events_out_total", connector="a") == 0
    assert m.get("trestle_router_rooms") == 2
    # Latency histogram: cumulative buckets, +Inf == count, count covers the routed events.
    count = m.get("trestle_router_route_latency_seconds_count", 0)
    assert count >= 4, f"latency count {count}"
    assert m.get('trestle_router_route_latency_seconds_bucket{le="+Inf"}') == count
    assert m.get("trestle_router_route_latency_seconds_sum", -1) >= 0
    buckets = sorted(((float(re.search(r'le="([^"]+)"', k).group(1).replace("+Inf", "inf")), v)
                      for k, v in m.items() if k.startswith("trestle_router_route_latency_seconds_bucket")))
    assert len(buckets) >= 2
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), f"buckets not cumulative: {buckets}"
    wait_for(lambda: r.metric("trestle_router_queue_depth") == 0, what="queue depth back to 0")


@pytest.mark.timeout(30)
def test_metrics_types_and_format(routed):
    s, a, b, c = routed
    r = s.router
    # Labelled series appear with their first sample: route one event, drop one duplicate.
    ev = a.send("CA")
    ob = b.expect_one()
    c.expect_one()
    a.publish(ev)
    b.ack(ob, "b-1")
    r.wait_metric("trestle_router_dropped_total", 1, reason="duplicate")
    r.wait_metric("trestle_router_acks_total", 1, result="ok")
    url = f"http://127.0.0.1:{r.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        ctype = resp.headers.get("Content-Type", "")
        text = resp.read().decode()
    assert ctype.startswith("text/plain"), ctype
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, typ in SERIES_TYPES.items():
        assert types.get(name) == typ, f"# TYPE {name}: want {typ}, got {types.get(name)}"
    m = r.metrics()
    for name in ("trestle_router_redis_reconnects_total", "trestle_router_broker_reconnects_total",
                 "trestle_router_queue_depth", "trestle_router_rooms"):
        assert name in m, f"{name} has no sample"


@pytest.mark.timeout(30)
def test_http_endpoints(routed):
    s, a, b, c = routed
    r = s.router
    assert r.healthz() == (200, "ok\n")
    status, _ = r.http_get("/nope")
    assert status == 404
    assert r.alive()

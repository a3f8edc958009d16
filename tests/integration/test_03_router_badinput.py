# SPDX-License-Identifier: AGPL-3.0-or-later
# Bad input on the router's topics: each kind is dropped and counted under its reason in
# /metrics, nothing reaches a destination, and a good event sent after it is still routed.

import json

import pytest

from harness import assert_nothing_more, wait_for

pytestmark = pytest.mark.needs_router

ROOMS = """[room r1]
a = CA
b = CB
"""


def good(**over):
    ev = {"v": 1, "id": "a:message:bad-case", "type": "message", "connector": "a",
          "network": "test", "channel": "CA", "msgid": "m-bad", "ts": 1732500000123,
          "author": {"id": "U1", "name": "alice"}, "text": "hi"}
    ev.update(over)
    return ev


def without(*path):
    ev = good()
    if len(path) == 1:
        del ev[path[0]]
    else:
        del ev[path[0]][path[1]]
    return ev


def js(obj):
    return json.dumps(obj).encode()


BIG_TEXT = "x" * (256 * 1024)
NEST = 100000

# (case id, topic suffix or None for a's own in topic, payload bytes, accepted reasons)
CASES = [
    ("not_json", None, b"this is not json {", {"bad_json"}),
    ("empty", None, b"", {"bad_json"}),
    ("truncated_json", None, js(good())[:-5], {"bad_json"}),
    ("json_array", None, b'[{"v":1}]', {"invalid", "bad_json"}),
    ("json_string", None, b'"hello"', {"invalid", "bad_json"}),
    ("json_number", None, b"42", {"invalid", "bad_json"}),
    ("deep_nesting", None, b'{"x":' + b"[" * NEST + b"]" * NEST + b"}", {"bad_json", "invalid"}),
    ("missing_v", None, js(without("v")), {"invalid"}),
    ("missing_id", None, js(without("id")), {"invalid"}),
    ("missing_type", None, js(without("type")), {"invalid"}),
    ("missing_connector", None, js(without("connector")), {"invalid", "topic_mismatch"}),
    ("missing_network", None, js(without("network")), {"invalid"}),
    ("missing_channel", None, js(without("channel")), {"invalid"}),
    ("missing_ts", None, js(without("ts")), {"invalid"}),
    ("missing_author", None, js(without("author")), {"invalid"}),
    ("missing_author_id", None, js(without("author", "id")), {"invalid"}),
    ("missing_msgid_on_message", None, js(without("msgid")), {"invalid"}),
    ("wrong_v_type", None, js(good(v="1")), {"invalid"}),
    ("wrong_v_value", None, js(good(v=2)), {"invalid"}),
    ("wrong_id_type", None, js(good(id=5)), {"invalid"}),
    ("empty_id", None, js(good(id="")), {"invalid"}),
    ("unknown_type", None, js(good(type="explode")), {"invalid"}),
    ("wrong_channel_type", None, js(good(channel=7)), {"invalid"}),
    ("wrong_ts_type", None, js(good(ts="yesterday")), {"invalid"}),
    ("wrong_author_type", None, js(good(author="alice")), {"invalid"}),
    ("wrong_text_type", None, js(good(text={"t": 1})), {"invalid"}),
    ("wrong_target_type", None, js(good(type="delete", target=["x"])), {"invalid"}),
    ("text_over_64k", None, js(good(text="y" * (64 * 1024 + 1))), {"invalid", "too_big"}),
    ("invalid_utf8_byte", None, js(good()).replace(b'"hi"', b'"h\xffi"'), {"bad_utf8"}),
    ("overlong_utf8", None, js(good()).replace(b'"hi"', b'"h\xc0\xafi"'), {"bad_utf8"}),
    ("utf8_surrogate", None, js(good()).replace(b'"hi"', b'"h\xed\xa0\x80i"'), {"bad_utf8"}),
    ("truncated_utf8", None, js(good()).replace(b'"hi"', b'"h\xe2\x82"'), {"bad_utf8"}),
    ("over_256k", None, js(good(text=BIG_TEXT)), {"too_big"}),
    ("topic_mismatch", None, js(good(connector="b", channel="CB")), {"topic_mismatch"}),
    ("bad_topic_name", "in/Bad!Name", js(good(connector="Bad!Name")), {"bad_topic"}),
    ("bad_topic_long", "in/" + "a" * 64, js(good(connector="a" * 64)), {"bad_topic"}),
    ("ack_not_json", "ack/b", b"nope", {"bad_ack", "bad_json"}),
    ("ack_missing_id", "ack/b", js({"v": 1, "dest": {"connector": "b", "channel": "CB"},
                                    "ok": True, "msgid": "x"}), {"bad_ack", "invalid"}),
    ("ack_wrong_ok_type", "ack/b", js({"v": 1, "id": "a:x", "ok": "yes", "msgid": "x",
                                       "dest": {"connector": "b", "channel": "CB"}}),
     {"bad_ack", "invalid"}),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case,suffix,payload,reasons", CASES, ids=[c[0] for c in CASES])
def test_bad_input_dropped_counted_and_routing_continues(infra, case, suffix, payload, reasons):
    s = infra
    a, b = s.connector("a"), s.connector("b")
    r = s.start_router(ROOMS, connectors=(a, b))
    m0 = r.metrics()

    def dropped(metrics, reason):
        return metrics.get(f'trestle_router_dropped_total{{reason="{reason}"}}', 0.0)

    topic = f"{s.prefix}/v1/{suffix}" if suffix else None
    a.publish(payload, topic=topic)

    def counted():
        m = r.metrics()
        return {x for x in reasons if dropped(m, x) == dropped(m0, x) + 1}

    hit = wait_for(counted, what=lambda: f"trestle_router_dropped_total{{reason in {sorted(reasons)}}}"
                   f" +1; now: { {k: v for k, v in r.metrics().items() if 'dropped' in k} }")
    assert len(hit) == 1, f"counted under several reasons: {hit}"

    # Routing continues: a good event sent afterwards is delivered, and is the only delivery.
    ev = a.send("CA")
    (o,) = b.expect(1)
    assert o["id"] == ev["id"], f"b got {o} instead of the good event"
    assert_nothing_more(b, via=a, channel="CA")
    assert r.alive()
    # Dropped once, under one reason only.
    m1 = r.metrics()
    changed = {k: m1[k] - m0.get(k, 0) for k in m1
               if k.startswith("trestle_router_dropped_total") and m1[k] != m0.get(k, 0)}
    assert len(changed) == 1 and list(changed.values()) == [1], f"drop counters changed: {changed}"
    # The log says what was dropped, without the content.
    if case == "over_256k":
        assert BIG_TEXT[:1000] not in r.log_text()

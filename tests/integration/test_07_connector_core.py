# SPDX-License-Identifier: AGPL-3.0-or-later
# The connector core (common/connector.c) end to end, through trestle-testnet: a connector whose
# "network" is its own stdin/stdout. Status (retained, will), the channels list, publishing,
# delivery + ack, refusal, dedupe of a redelivered out event, holding events while the network
# is down, clean stop, and bad configuration.

import json
import os
import queue
import subprocess
import threading

import pytest

from harness import DEFAULT_TIMEOUT, build_dir, wait_for

pytestmark = pytest.mark.needs_router

ROOMS = """[room core]
tn = chan-1
b = CB
[room refused]
b = CB2
tn = deny-1
"""


class TestnetProc:
    """trestle-testnet as a child process: write JSON lines to it, read its JSON lines."""

    def __init__(self, stack, name="tn", extra_env=None):
        self.path = build_dir() / "test" / "trestle-testnet"
        if not self.path.exists():
            pytest.skip(f"{self.path} not built")
        self.log_path = stack.workdir / f"{name}.log"
        env = dict(os.environ, TRESTLE_MQTT_URL=stack.broker.url, TRESTLE_CONNECTOR=name,
                   TRESTLE_TOPIC_PREFIX=stack.prefix, TRESTLE_LOG_LEVEL="debug",
                   TRESTLE_STATE_DIR=str(stack.workdir / f"{name}-state"))
        env.update(extra_env or {})
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen([str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, env=env)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()
        stack.cleanups.append(self.kill)

    def _read(self):
        for raw in self.p.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                self.lines.put({"op": "garbage", "raw": raw.decode("utf-8", "replace")})

    def send(self, obj):
        self.p.stdin.write((json.dumps(obj) + "\n").encode())
        self.p.stdin.flush()

    def expect(self, op, pred=lambda o: True, timeout=DEFAULT_TIMEOUT):
        """The next stdout line with this op (and pred), earlier others kept in self.seen."""
        def got():
            while True:
                try:
                    o = self.lines.get_nowait()
                except queue.Empty:
                    return None
                self.seen.append(o)
                if o.get("op") == op and pred(o):
                    return o
        return wait_for(got, timeout, lambda: f"testnet '{op}' line; seen: {self.seen[-5:]!r}")

    def delivered(self):
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                break
        return [o["event"] for o in self.seen if o.get("op") == "deliver"]

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)
        self.log.close()


@pytest.fixture
def core(infra):
    s = infra
    s.cleanups = getattr(s, "cleanups", [])
    b = s.connector("b")
    s.start_router(ROOMS, connectors=(b,))
    tn = TestnetProc(s)
    status = s.mqtt_client("status")
    status.subscribe(s.topic("status", "tn"))
    yield s, tn, b, status
    for fn in s.cleanups:
        fn()


def _state(status, s, want):
    return status.wait_message(s.topic("status", "tn"),
                               lambda m: m.json and m.json.get("state") == want)[0].json


@pytest.mark.timeout(60)
def test_status_channels_publish_deliver_ack(core):
    s, tn, b, status = core
    st = _state(status, s, "online")
    assert st["connector"] == "tn" and st["network"] == "testnet" and st["v"] == 1
    # The channels list from the rooms file reaches set_channels.
    tn.expect("channels", lambda o: sorted(o["channels"]) == ["chan-1", "deny-1"])
    # A network event is published with connector/network filled in, and routed.
    tn.send({"type": "message", "channel": "chan-1", "msgid": "n1", "author": {"id": "bob"},
             "text": "from the network"})
    (out,) = b.expect(1)
    assert out["connector"] == "tn" and out["network"] == "testnet" and out["msgid"] == "n1"
    # An event for the network is delivered once and acked with the network's id.
    acks = s.mqtt_client("acks")
    acks.subscribe(s.topic("ack", "tn"))
    ev = b.send("CB", text="to the network")
    d = tn.expect("deliver")["event"]
    assert d["id"] == ev["id"] and d["dest"] == {"connector": "tn", "channel": "chan-1"}
    (ack,) = acks.expect_messages(s.topic("ack", "tn"), 1)
    assert ack.json["ok"] is True and ack.json["msgid"].startswith("tn-")
    assert ack.json["id"] == ev["id"]


@pytest.mark.timeout(60)
def test_refused_delivery_is_acked_as_failure(core):
    s, tn, b, status = core
    _state(status, s, "online")
    acks = s.mqtt_client("acks")
    acks.subscribe(s.topic("ack", "tn"))
    b.send("CB2", text="to a channel the bot is not in")
    tn.expect("deliver", lambda o: o["event"]["dest"]["channel"] == "deny-1")
    (ack,) = acks.expect_messages(s.topic("ack", "tn"), 1)
    assert ack.json["ok"] is False and ack.json["error"] == "forbidden"
    s.router.wait_metric("trestle_router_acks_total", 1, result="failed")


@pytest.mark.timeout(60)
def test_redelivered_out_event_is_not_delivered_twice(core):
    s, tn, b, status = core
    _state(status, s, "online")
    acks = s.mqtt_client("acks")
    acks.subscribe(s.topic("ack", "tn"))
    pub = s.mqtt_client("pub")
    ev = b.event("CB", text="once")
    ev.update(room="core", dest={"connector": "tn", "channel": "chan-1"})
    pub.publish(s.topic("out", "tn"), ev)
    pub.publish(s.topic("out", "tn"), ev)  # as the broker does after a reconnect
    a1, a2 = acks.expect_messages(s.topic("ack", "tn"), 2)
    assert a1.json == a2.json, "the second copy is acked with the first delivery's result"
    assert [e["id"] for e in tn.delivered()].count(ev["id"]) == 1


@pytest.mark.timeout(60)
def test_network_drop_holds_events_and_reconnects(core):
    s, tn, b, status = core
    _state(status, s, "online")
    tn.send({"op": "lost"})
    assert _state(status, s, "offline")["detail"] == "testnet dropped"
    # Sent while the network is down: delivered, in order, once it is back.
    sent = [b.send("CB", text=f"while down {i}")["id"] for i in range(5)]
    _state(status, s, "online")
    wait_for(lambda: [e["id"] for e in tn.delivered()][-5:] == sent, DEFAULT_TIMEOUT,
             lambda: f"the 5 held events in order, delivered: {[e['id'] for e in tn.delivered()]}")


@pytest.mark.timeout(60)
def test_will_says_offline_when_killed(core):
    s, tn, b, status = core
    _state(status, s, "online")
    tn.p.kill()
    st = _state(status, s, "offline")
    assert st["detail"] == "connection to the bus lost"


@pytest.mark.timeout(60)
def test_sigterm_stops_cleanly(core):
    s, tn, b, status = core
    _state(status, s, "online")
    tn.p.terminate()
    assert tn.p.wait(DEFAULT_TIMEOUT) == 0
    assert _state(status, s, "offline")["detail"] == "stopped"


@pytest.mark.timeout(30)
def test_bad_configuration_exits_78(infra):
    s = infra
    s.cleanups = []
    path = build_dir() / "test" / "trestle-testnet"
    if not path.exists():
        pytest.skip(f"{path} not built")
    for env in ({"TESTNET_FAIL_CONFIG": "1"}, {"TRESTLE_CONNECTOR": "Bad Name"},
                {"TRESTLE_MQTT_URL": "http://nope"}, {"TRESTLE_LOG_LEVEL": "loud"}):
        e = dict(os.environ, TRESTLE_MQTT_URL=s.broker.url)
        e.update(env)
        p = subprocess.run([str(path)], env=e, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=DEFAULT_TIMEOUT)
        assert p.returncode == 78, (env, p.stderr[-500:])
        assert b"config" in p.stderr or b"TRESTLE_MQTT_URL" in p.stderr


@pytest.mark.timeout(60)
def test_status_reaches_the_bus_while_the_network_is_down(infra):
    """The connector is on the bus (status published, out events taken and held) even when
    its network refuses it from the start; once the network is up, the held events go out."""
    s = infra
    s.cleanups = []
    b = s.connector("b")
    s.start_router(ROOMS, connectors=(b,))
    status = s.mqtt_client("status")
    status.subscribe(s.topic("status", "tn"))
    tn = TestnetProc(s, extra_env={"TESTNET_DOWN": "1"})
    s.cleanups.append(tn.kill)
    try:
        st = _state(status, s, "offline")
        assert st["detail"] == "connect failed"
        sent = [b.send("CB", text=f"while down {i}")["id"] for i in range(3)]
        assert not tn.delivered()
        tn.send({"op": "up"})
        _state(status, s, "online")
        wait_for(lambda: [e["id"] for e in tn.delivered()] == sent, DEFAULT_TIMEOUT,
                 lambda: f"held events in order; delivered {tn.delivered()}")
    finally:
        for fn in s.cleanups:
            fn()


@pytest.mark.timeout(60)
def test_events_held_at_stop_are_delivered_after_restart(infra):
    """Out events taken from the broker while the network is down are not lost when the
    connector stops: they are kept in its state dir and delivered first at the next start."""
    s = infra
    s.cleanups = []
    b = s.connector("b")
    s.start_router(ROOMS, connectors=(b,))
    status = s.mqtt_client("status")
    status.subscribe(s.topic("status", "tn"))
    tn = TestnetProc(s)
    s.cleanups.append(tn.kill)
    try:
        _state(status, s, "online")
        tn.send({"op": "down"})
        _state(status, s, "offline")
        sent = [b.send("CB", text=f"held {i}")["id"] for i in range(3)]
        # Whether the core had already taken them from the broker (then they are kept in its
        # state dir) or not (then the broker's session keeps them), none may be lost.
        tn.p.terminate()
        assert tn.p.wait(DEFAULT_TIMEOUT) == 0
        tn2 = TestnetProc(s)
        s.cleanups.append(tn2.kill)
        wait_for(lambda: [e["id"] for e in tn2.delivered()] == sent, DEFAULT_TIMEOUT,
                 lambda: f"the held events after restart; delivered {tn2.delivered()}")
        assert not [e for e in tn.delivered() if e["id"] in sent]
    finally:
        for fn in s.cleanups:
            fn()


@pytest.mark.timeout(60)
def test_second_replica_adds_inbound_only(core):
    """TRESTLE_REPLICA=2: its own session; events its network connection sees are published,
    out events go to replica 1 only (one deliverer keeps each channel in order), and it never
    speaks for the instance's status: killing it leaves the status online."""
    s, tn, b, status = core
    _state(status, s, "online")
    r2 = TestnetProc(s, name="tn", extra_env={"TRESTLE_REPLICA": "2",
                                              "TRESTLE_STATE_DIR": str(s.workdir / "tn2")})
    s.cleanups.append(r2.kill)
    r2.expect("connect")
    r2.send({"type": "message", "channel": "chan-1", "msgid": "r2-1", "author": {"id": "carol"},
             "text": "seen by the second connection"})
    (out,) = b.expect(1)
    assert out["msgid"] == "r2-1" and out["connector"] == "tn"
    sent = [b.send("CB", text=f"to tn {i}")["id"] for i in range(3)]
    wait_for(lambda: [e["id"] for e in tn.delivered()][-3:] == sent, DEFAULT_TIMEOUT,
             lambda: f"replica 1 delivers; got {[e['id'] for e in tn.delivered()]}")
    taken = [e for e in r2.delivered() if e["id"] in sent]
    assert not taken, "replica 2 must not take out events"
    r2.p.kill()
    r2.p.wait(5)
    # Replica 2 has no will: its death must not mark the instance offline. One more delivery
    # through the broker after the kill serves as the barrier.
    last = b.send("CB", text="after the kill")["id"]
    wait_for(lambda: last in [e["id"] for e in tn.delivered()], DEFAULT_TIMEOUT, "delivery")
    st = status.latest(s.topic("status", "tn")).json
    assert st["state"] == "online", st

# SPDX-License-Identifier: AGPL-3.0-or-later
# Integration harness: starts real Mosquitto, Redis and Trestle binaries on free loopback ports,
# plays connectors over MQTT v5, and waits for things with a bound (never a bare sleep).
# See tests/integration/README.md.

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import redis as redis_mod

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 10.0
LOG_TAIL_LINES = 80


def build_dir():
    b = Path(os.environ.get("TRESTLE_BUILD", "build"))
    return b if b.is_absolute() else REPO / b


def bin_path(name):
    return build_dir() / "bin" / name


def free_port():
    # The kernel picks a free ephemeral port; the process we start binds it right after.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WaitTimeout(AssertionError):
    pass


def wait_for(pred, timeout=DEFAULT_TIMEOUT, what=None, interval=0.02):
    """Polls pred() until it returns a truthy value (returned) or timeout seconds pass; then
    fails naming what was awaited. what may be a string or a callable giving the detail."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # a probe that fails (connection refused...) means "not yet"
            last_exc = e
        if time.monotonic() >= deadline:
            detail = what() if callable(what) else (what or getattr(pred, "__name__", "condition"))
            msg = f"timed out after {timeout:.1f}s waiting for {detail}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise WaitTimeout(msg)
        time.sleep(interval)


def tail(path, n=LOG_TAIL_LINES):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return [f"<cannot read {path}: {e}>"]
    return lines[-n:]


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """One child process with its log file. start() may be called again after it exited
    (restart keeps the same argv, env, ports and data dirs)."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = env
        self.cwd = cwd
        self.log_path = Path(log_path)
        self.p = None
        self._logf = None

    def start(self):
        assert not self.alive(), f"{self.name} already running"
        self._close_log()
        self._logf = open(self.log_path, "ab")
        self._logf.write(f"---- harness: start {' '.join(self.argv)}\n".encode())
        self._logf.flush()
        self.p = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                      stdout=self._logf, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self):
        return self.p.pid if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def returncode(self):
        return None if self.p is None else self.p.poll()

    def signal(self, sig):
        assert self.alive(), f"{self.name} is not running (rc={self.returncode()})"
        self.p.send_signal(sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def kill9(self, timeout=DEFAULT_TIMEOUT):
        self.signal(signal.SIGKILL)
        return self.wait_exit(timeout)

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM and wait; SIGKILL when it does not exit in time. Returns the exit code."""
        if not self.alive():
            return self.returncode()
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"{self.name} (pid {self.pid}) still running after {timeout}s")

    def restart(self, timeout=DEFAULT_TIMEOUT):
        self.stop(timeout)
        self.start()
        return self

    def log_text(self):
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def kill_quietly(self):
        if self.alive():
            try:
                self.p.kill()
                self.p.wait(5)
            except Exception:
                pass
        self._close_log()

    def _close_log(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def _check_alive(self):
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.returncode()} while starting;"
                         f" log tail:\n" + "\n".join(tail(self.log_path, 30)))


class Broker(Proc):
    def __init__(self, workdir):
        self.dir = Path(workdir) / "mosquitto"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self._write_conf()
        super().__init__("mosquitto", ["mosquitto", "-c", self.conf], self.dir / "stdout.log")
        self.file_log = self.dir / "mosquitto.log"

    def _write_conf(self):
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        self.conf.write_text("\n".join([
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir / 'data'}/",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"log_dest file {self.dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"user {user}",
            "",
        ]))

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def ready(self):
        self._check_alive()
        return mqtt_ping("127.0.0.1", self.port)

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(self.ready, timeout, f"mosquitto on port {self.port}")
        return self


def mqtt_ping(host, port):
    """True when an MQTT 3.1.1 CONNECT gets a CONNACK with return code 0."""
    cid = b"trestle-probe-" + uuid.uuid4().hex[:8].encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x05"  # protocol name, level 4, clean session, keepalive 5
    payload = len(cid).to_bytes(2, "big") + cid
    rest = var + payload
    pkt = b"\x10" + bytes([len(rest)]) + rest
    with socket.create_connection((host, port), timeout=1) as s:
        s.sendall(pkt)
        ack = s.recv(4)
        ok = len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0
        if ok:
            s.sendall(b"\xe0\x00")  # DISCONNECT
        return ok


class Redis(Proc):
    def __init__(self, workdir):
        self.dir = Path(workdir) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = ["redis-server", "--port", self.port, "--bind", "127.0.0.1", "--dir", self.dir,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--protected-mode", "no", "--logfile", "",
                "--enable-debug-command", "local"]
        super().__init__("redis", argv, self.dir / "redis.log")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        return redis_mod.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def ready(self):
        self._check_alive()
        c = self.client()
        try:
            return c.ping()
        finally:
            c.close()

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(self.ready, timeout, f"redis on port {self.port}")
        return self


class Router(Proc):
    def __init__(self, workdir, broker, redis, prefix, rooms_text=None, extra_env=None):
        self.dir = Path(workdir) / "router"
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.rooms_path = self.dir / "rooms.ini"
        if rooms_text is not None:
            self.write_rooms(rooms_text)
        self.metrics_port = free_port()
        self.prefix = prefix
        env = dict(os.environ)
        env.update({
            "TRESTLE_MQTT_URL": broker.url,
            "TRESTLE_REDIS_URL": redis.url,
            "TRESTLE_ROOMS": str(self.rooms_path),
            "TRESTLE_STATE_DIR": str(self.state_dir),
            "TRESTLE_METRICS_ADDR": f"127.0.0.1:{self.metrics_port}",
            "TRESTLE_TOPIC_PREFIX": prefix,
            "TRESTLE_ROUTER_ID": f"router-{prefix}",
            "TRESTLE_LOG_LEVEL": "debug",
        })
        env.update({k: str(v) for k, v in (extra_env or {}).items()})
        super().__init__("trestle-router", [bin_path("trestle-router")], self.dir / "router.log",
                 env=env, cwd=self.dir)

    def write_rooms(self, text):
        # Written next to the final name then renamed, as an operator's editor would.
        tmp = self.rooms_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.rooms_path)

    def http_get(self, path, timeout=2):
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def healthz(self):
        return self.http_get("/healthz")

    def ready(self):
        self._check_alive()
        return self.healthz()[0] == 200

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(self.ready, timeout, "router /healthz == 200")
        return self

    def metrics(self):
        status, body = self.http_get("/metrics")
        assert status == 200, f"/metrics answered {status}: {body[:200]}"
        return parse_metrics(body)

    def metric(self, name, **labels):
        return metric_value(self.metrics(), name, **labels)

    def wait_metric(self, name, value, timeout=DEFAULT_TIMEOUT, cmp=">=", **labels):
        """Waits until the series reaches value (cmp '>=' or '==')."""
        last = {}

        def ok():
            last["v"] = self.metric(name, **labels)
            return last["v"] >= value if cmp == ">=" else last["v"] == value

        wait_for(ok, timeout, lambda: f"{metric_key(name, labels)} {cmp} {value}"
             f" (last value {last.get('v')})")
        return last["v"]

    def wait_log(self, pattern, timeout=DEFAULT_TIMEOUT):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_text()), timeout,
                f"router log line matching {pattern!r}")


# ---------------------------------------------------------------------------------------------
# Metrics

_METRIC_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?\s*$')
_LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_key(name, labels):
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_metrics(text):
    """Prometheus text -> {'name{k="v",...}': float}, labels sorted by key."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _METRIC_RX.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = dict(_LABEL_RX.findall(m.group(3) or ""))
        v = m.group(4)
        out[metric_key(m.group(1), labels)] = float(v.replace("+Inf", "inf"))
    return out


def metric_value(metrics, name, **labels):
    return metrics.get(metric_key(name, labels), 0.0)


# ---------------------------------------------------------------------------------------------
# MQTT


def acked(info):
    """True once the broker acknowledged a publish. paho's is_published() raises for a message
    queued while disconnected; the info object is still marked when it is sent later."""
    return bool(getattr(info, "_published", False))


class Message:
    __slots__ = ("topic", "payload", "retain", "t")

    def __init__(self, topic, payload, retain):
        self.topic = topic
        self.payload = payload
        self.retain = retain
        self.t = time.monotonic()

    @property
    def json(self):
        try:
            return json.loads(self.payload)
        except ValueError:
            return None

    def __repr__(self):
        p = self.payload[:160]
        more = "..." if len(self.payload) > 160 else ""
        return f"<{self.topic}{' retained' if self.retain else ''}: {p!r}{more}>"


class MqttClient:
    """paho MQTT v5 client on its own network thread. Every message received is kept per
    topic; readers take them in order with a cursor. Persistent session (clean start off,
    session expiry 1 h) so that a broker restart loses nothing."""

    def __init__(self, port, client_id, host="127.0.0.1"):
        self.client_id = client_id
        self._cond = threading.Condition()
        self._msgs = defaultdict(list)
        self._cursor = defaultdict(int)
        self._connected = False
        self._subacks = {}
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.reconnect_delay_set(min_delay=1, max_delay=1)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        self.c = c
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        # clean_start off from the first connect: Mosquitto 2.0.11 does not restore, after a
        # restart, a session that was created with clean start on (each test has a fresh
        # broker, so there is no stale session to resume).
        c.connect(host, port, keepalive=10, clean_start=False, properties=props)
        c.loop_start()
        wait_for(lambda: self._connected, DEFAULT_TIMEOUT, f"MQTT connect of {client_id}")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self._cond:
            self._connected = (rc == 0)
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self._cond:
            self._connected = False

    def _on_subscribe(self, client, userdata, mid, rcs, properties=None):
        with self._cond:
            self._subacks[mid] = rcs
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self._msgs[msg.topic].append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    @property
    def connected(self):
        return self._connected

    def wait_connected(self, timeout=DEFAULT_TIMEOUT):
        with self._cond:
            ok = self._cond.wait_for(lambda: self._connected, timeout)
        assert ok, f"{self.client_id} not (re)connected to the broker within {timeout}s"

    def subscribe(self, topic, qos=1, timeout=DEFAULT_TIMEOUT):
        rc, mid = self.c.subscribe(topic, qos=qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {mqtt.error_string(rc)}"
        with self._cond:
            ok = self._cond.wait_for(lambda: mid in self._subacks, timeout)
        assert ok, f"no SUBACK for {topic} within {timeout}s"
        rcs = self._subacks[mid]
        assert all(int(getattr(r, "value", r)) < 0x80 for r in rcs), f"SUBACK {topic}: {rcs}"

    def publish(self, topic, payload, qos=1, retain=False, wait=True, timeout=DEFAULT_TIMEOUT):
        """wait: block until the broker acknowledged (QoS 1). While disconnected, paho keeps the
        message and sends it after reconnecting; pass wait=False then."""
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if wait:
            self.wait_connected(timeout)
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if wait and qos > 0:
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish {topic}: {mqtt.error_string(info.rc)}"
            info.wait_for_publish(timeout)
            assert info.is_published(), f"no PUBACK for {topic} within {timeout}s"
        return info

    # --- readers -----------------------------------------------------------------------------

    def all(self, topic):
        with self._cond:
            return list(self._msgs[topic])

    def unread(self, topic):
        with self._cond:
            return list(self._msgs[topic][self._cursor[topic]:])

    def _summary(self, exclude=None):
        with self._cond:
            return {t: len(v) for t, v in self._msgs.items() if t != exclude}

    def expect_messages(self, topic, n, timeout=DEFAULT_TIMEOUT, skip=None):
        """Waits for n more messages on topic (those for which skip(msg) is true are passed over
        and consumed) and returns them; fails listing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got, i = [], self._cursor[topic]
                lst = self._msgs[topic]
                while i < len(lst) and len(got) < n:
                    if not (skip and skip(lst[i])):
                        got.append(lst[i])
                    i += 1
                if len(got) >= n:
                    self._cursor[topic] = i
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        raise WaitTimeout(
            f"expected {n} message(s) on {topic} within {timeout:.1f}s, got {len(got)}: "
            f"{got[:20]!r}{' ...' if len(got) > 20 else ''}; "
            f"messages per topic so far: {self._summary()}")

    def wait_message(self, topic, pred, timeout=DEFAULT_TIMEOUT):
        """Waits for an unread message on topic with pred(msg) true; consumes up to and
        including it; returns (msg, messages passed over)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lst = self._msgs[topic]
                for i in range(self._cursor[topic], len(lst)):
                    if pred(lst[i]):
                        before = lst[self._cursor[topic]:i]
                        self._cursor[topic] = i + 1
                        return lst[i], before
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            unread = lst[self._cursor[topic]:]
        raise WaitTimeout(f"no matching message on {topic} within {timeout:.1f}s; unread there: "
                  f"{unread[:20]!r}; messages per topic so far: {self._summary()}")

    def latest(self, topic):
        with self._cond:
            lst = self._msgs[topic]
            return lst[-1] if lst else None

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# ---------------------------------------------------------------------------------------------
# A connector played by the test


def is_marker(msg):
    ev = msg.json if isinstance(msg, Message) else msg
    return isinstance(ev, dict) and ":marker:" in str(ev.get("id", ""))


class Connector:
    """Publishes v1 events on P/v1/in/<name>, reads P/v1/out/<name>, publishes acks on
    P/v1/ack/<name>, and watches its retained P/v1/channels/<name>."""

    def __init__(self, broker_port, prefix, name, network="test"):
        self.prefix = prefix
        self.name = name
        self.network = network
        self.seq = 0
        self.mq = MqttClient(broker_port, f"{prefix}-conn-{name}")
        self.out_topic = f"{prefix}/v1/out/{name}"
        self.in_topic = f"{prefix}/v1/in/{name}"
        self.ack_topic = f"{prefix}/v1/ack/{name}"
        self.channels_topic = f"{prefix}/v1/channels/{name}"
        self.mq.subscribe(self.out_topic)
        self.mq.subscribe(self.channels_topic)

    def event(self, channel, type="message", id=None, msgid=None, text=None, **fields):
        self.seq += 1
        if msgid is None and type == "message":
            msgid = f"{self.name}-m{self.seq}-{uuid.uuid4().hex[:6]}"
        if msgid is None and type == "edit":
            msgid = fields.get("target")
        if id is None:
            id = f"{self.name}:{type}:{msgid or ''}:{self.seq}:{uuid.uuid4().hex[:8]}"
        ev = {"v": 1, "id": id, "type": type, "connector": self.name, "network": self.network,
              "channel": channel, "ts": int(time.time() * 1000),
              "author": {"id": "U-" + self.name, "name": "alice", "display": "Alice"}}
        if msgid is not None:
            ev["msgid"] = msgid
        if text is None and type in ("message", "edit"):
            text = f"text {self.seq} from {self.name}"
        if text is not None:
            ev["text"] = text
        ev.update(fields)
        return ev

    def send(self, channel, type="message", wait=True, **kw):
        """Builds an event (see event()), publishes it, returns it."""
        ev = self.event(channel, type=type, **kw)
        self.publish(ev, wait=wait)
        return ev

    def publish(self, ev_or_bytes, topic=None, wait=True):
        return self.mq.publish(topic or self.in_topic, ev_or_bytes, wait=wait)

    def ack(self, out_ev, msgid=None, ok=True, error=None, detail=None):
        a = {"v": 1, "id": out_ev["id"],
             "dest": {"connector": out_ev["dest"]["connector"], "channel": out_ev["dest"]["channel"]},
             "ok": ok}
        if ok:
            a["msgid"] = msgid
        else:
            a["error"] = error or "forbidden"
            if detail:
                a["detail"] = detail
        self.mq.publish(self.ack_topic, a)
        return a

    def expect(self, n=1, timeout=DEFAULT_TIMEOUT):
        """The next n out events (markers passed over), decoded."""
        msgs = self.mq.expect_messages(self.out_topic, n, timeout, skip=is_marker)
        evs = [m.json for m in msgs]
        bad = [m for m, e in zip(msgs, evs) if not isinstance(e, dict)]
        assert not bad, f"non-JSON out messages on {self.out_topic}: {bad!r}"
        return evs

    def expect_one(self, timeout=DEFAULT_TIMEOUT):
        return self.expect(1, timeout)[0]

    def unread(self):
        return [m.json for m in self.mq.unread(self.out_topic) if not is_marker(m)]

    def channels(self):
        m = self.mq.latest(self.channels_topic)
        return None if m is None else m.json

    def wait_channels(self, expected, timeout=DEFAULT_TIMEOUT):
        """Waits until the latest channels message lists exactly the expected set."""
        want = sorted(expected)

        def ok():
            j = self.channels()
            return isinstance(j, dict) and j.get("v") == 1 and sorted(j.get("channels", [None])) == want

        wait_for(ok, timeout, lambda: f"{self.channels_topic} == {want}, latest: {self.channels()}")
        return self.channels()

    def close(self):
        self.mq.close()


def assert_nothing_more(dest, via, channel, timeout=DEFAULT_TIMEOUT):
    """Barrier: via publishes a marker event from channel; once the marker has reached dest,
    fails if any other (non-marker) out event arrived at dest before it. Exact for events from
    the same origin channel (per-channel order); for other origins it relies on the router
    handling events in arrival order."""
    mk = via.send(channel, id=f"{via.name}:marker:{uuid.uuid4().hex}", text="marker")
    msg, before = dest.mq.wait_message(dest.out_topic,
                       lambda m: isinstance(m.json, dict) and m.json.get("id") == mk["id"],
                       timeout)
    extra = [m for m in before if not is_marker(m)]
    assert not extra, f"unexpected out events at {dest.name}: {extra!r}"


# ---------------------------------------------------------------------------------------------
# One test's world


class Stack:
    """Everything one test runs: a broker, Redis, at most one router, test connectors. All
    processes are killed by teardown(), whatever happened."""

    def __init__(self, workdir, test_name):
        self.workdir = Path(workdir)
        slug = re.sub(r"[^a-z0-9]+", "", test_name.lower())[-20:]
        self.prefix = f"t{slug}{uuid.uuid4().hex[:6]}"
        self.procs = []
        self.clients = []
        self.broker = None
        self.redis = None
        self.router = None

    def _retry_start(self, make, attempts=3):
        # A free port found by bind(0) can, rarely, be taken by someone else before the
        # server binds it: try again on a fresh port.
        last = None
        for _ in range(attempts):
            p = make()
            self.procs.append(p)
            try:
                return p.start_ready()
            except AssertionError as e:
                last = e
                p.kill_quietly()
                if "in use" not in p.log_text() and "in use" not in str(e):
                    raise
        raise last

    def start_broker(self):
        self.broker = self._retry_start(lambda: Broker(self.workdir))
        return self.broker

    def start_redis(self):
        self.redis = self._retry_start(lambda: Redis(self.workdir))
        return self.redis

    def start_infra(self):
        self.start_broker()
        self.start_redis()
        return self

    def make_router(self, rooms_text, **env):
        assert self.router is None, "one router per stack"
        self.router = Router(self.workdir, self.broker, self.redis, self.prefix, rooms_text, env)
        self.procs.append(self.router)
        return self.router

    def start_router(self, rooms_text, connectors=(), **env):
        """Starts the router and waits for /healthz 200 and, for each named connector, its
        retained channels list (published after the router subscribed)."""
        r = self.make_router(rooms_text, **env)
        r.start_ready()
        for c in connectors:
            wait_for(lambda: c.channels() is not None, DEFAULT_TIMEOUT,
                 f"retained channels list of {c.name}")
        return r

    def connector(self, name, network="test"):
        c = Connector(self.broker.port, self.prefix, name, network)
        self.clients.append(c)
        return c

    def mqtt_client(self, name):
        c = MqttClient(self.broker.port, f"{self.prefix}-{name}")
        self.clients.append(c)
        return c

    def topic(self, kind, name):
        return f"{self.prefix}/v1/{kind}/{name}"

    def log_tails(self):
        out = []
        seen = set()
        for p in self.procs:
            paths = [p.log_path] + ([p.file_log] if isinstance(p, Broker) else [])
            for path in paths:
                if path in seen or not Path(path).exists():
                    continue
                seen.add(path)
                if isinstance(p, Router):
                    # Debug chatter hides restarts and errors: show the other lines first.
                    lines = [ln for ln in p.log_text().splitlines() if " debug " not in ln]
                    out.append(f"===== {p.name}: {path} (non-debug lines, last {LOG_TAIL_LINES})")
                    out.extend(lines[-LOG_TAIL_LINES:])
                out.append(f"===== {p.name}: {path} (last {LOG_TAIL_LINES} lines)")
                out.extend(tail(path))
        return "\n".join(out)

    def sanitizer_reports(self):
        rx = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")
        bad = []
        for p in self.procs:
            if isinstance(p, Router):
                bad += [ln for ln in p.log_text().splitlines() if rx.search(ln)]
        return bad

    def teardown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        # Router first (it talks to the others), then the servers; SIGTERM then SIGKILL.
        order = [p for p in self.procs if isinstance(p, Router)] + \
            [p for p in self.procs if not isinstance(p, Router)]
        for p in order:
            try:
                p.stop(5)
            except Exception:
                pass
            p.kill_quietly()
        left = [p for p in self.procs if p.alive()]
        assert not left, f"processes still alive after teardown: {[(p.name, p.pid) for p in left]}"


class Streamer(threading.Thread):
    """Publishes n message events from one connector channel in a background thread. Paced
    (a load generator, not synchronisation) so that a fault can be injected mid-stream.
    While the broker is away it holds back, and after reconnecting waits until paho has
    re-sent and got PUBACKs for everything before going on: paho sends a new publish made
    during the reconnect before the ones it queued, which would reorder the channel."""

    def __init__(self, conn, channel, n, pace=0.004):
        super().__init__(daemon=True)
        self.conn = conn
        self.channel = channel
        self.n = n
        self.pace = pace
        self.events = [conn.event(channel, text=f"stream {i}") for i in range(n)]
        self.ids = [e["id"] for e in self.events]
        self.infos = []
        self.error = None
        self.sent = 0

    def run(self):
        try:
            for ev in self.events:
                if not self.conn.mq.connected:
                    self.conn.mq.wait_connected(60)
                    wait_for(lambda: all(acked(i) for i in self.infos), 60,
                             "PUBACKs of the events queued while disconnected")
                self.infos.append(self.conn.publish(ev, wait=False))
                self.sent += 1
                time.sleep(self.pace)
        except Exception as e:
            self.error = e

    def wait_done(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "streamer still publishing"
        assert self.error is None, f"streamer failed: {self.error!r}"
        wait_for(lambda: all(acked(i) for i in self.infos), timeout,
             lambda: f"PUBACK of all {self.n} streamed events "
             f"({sum(acked(i) for i in self.infos)} acknowledged)")


def ids_of(events):
    return [e.get("id") for e in events]

# SPDX-License-Identifier: AGPL-3.0-or-later
# The recipe's broker, for real: deploy/mosquitto/entrypoint.sh builds the password file from
# MQTT URL secrets and starts Mosquitto with deploy/mosquitto/mosquitto.conf and acl (only the
# port and data paths moved). Checks DESIGN §7: logins required; a connector publishes only its
# own in/, ack/, status/ and reads only its own out/ and channels/; the router and trestle-ctl
# can do their jobs; the compose health check command works with the _health login.
# "Never delivered" is proven with a marker: one publisher's messages arrive in order, so once
# a later allowed message is in, an earlier forbidden one would have been too.
import os
import re
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from harness import DEFAULT_TIMEOUT, Proc, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
MQ = ROOT / "deploy/mosquitto"
P = "trestle/v1"
LOGINS = {"mqtt_router": "_router", "mqtt_ctl": "_ctl", "mqtt_health": "_health",
          "mqtt_alpha": "alpha", "mqtt_beta": "beta-2"}


class Client:
    """A paho v5 client with a login; keeps what it receives."""

    def __init__(self, port, user, password, client_id=None):
        self.msgs = []
        self.cond = threading.Condition()
        self.rc = None
        self.subacks = {}
        self.acked = set()
        c = mqtt.Client(client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        self.c = c
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.rc is not None, DEFAULT_TIMEOUT)

    @property
    def ok(self):
        return self.rc == 0

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.rc = rc.value if hasattr(rc, "value") else rc
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, rcs, properties=None):
        with self.cond:
            self.subacks[mid] = [r.value if hasattr(r, "value") else r for r in rcs]
            self.cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self.cond:
            self.acked.add(mid)
            self.cond.notify_all()

    def sub(self, topic):
        rc, mid = self.c.subscribe(topic, qos=1)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.subacks, DEFAULT_TIMEOUT)
            return self.subacks[mid][0]

    def pub(self, topic, payload, retain=False):
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acked, DEFAULT_TIMEOUT), topic

    def wait(self, topic, payload):
        want = (topic, payload.encode() if isinstance(payload, str) else payload)
        with self.cond:
            ok = self.cond.wait_for(lambda: any(m[:2] == want for m in self.msgs),
                                    DEFAULT_TIMEOUT)
        assert ok, f"never received {want}; got {self.msgs}"

    def got(self, topic):
        with self.cond:
            return [m for m in self.msgs if m[0] == topic]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe-mosquitto")
    secrets, run, data = d / "secrets", d / "run", d / "data"
    secrets.mkdir()
    data.mkdir()
    os.chmod(data, 0o777)
    port = free_port()
    pw = {}
    for key, user in LOGINS.items():
        pw[user] = uuid.uuid4().hex
        (secrets / key).write_text(f"mqtt://{user}:{pw[user]}@mosquitto:1883\n")
    (secrets / "redis_url").write_text("redis://:notmqtt@redis:6379/0\n")
    conf = (MQ / "mosquitto.conf").read_text()
    assert re.search(r"^listener 1883$", conf, re.M)
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf = conf.replace("persistence_location /mosquitto/data/", f"persistence_location {data}/")
    if os.geteuid() == 0:
        conf += "\nuser root\n"
    (d / "mosquitto.conf").write_text(conf)
    env = dict(os.environ, MQTT_SECRETS_DIR=str(secrets), MOSQUITTO_RUN_DIR=str(run),
               MOSQUITTO_CONF=str(d / "mosquitto.conf"), MOSQUITTO_ACL=str(MQ / "acl"),
               MOSQUITTO_BIN="/usr/sbin/mosquitto", MQTT_PORT=str(port))
    p = Proc("recipe-mosquitto", ["/bin/sh", MQ / "entrypoint.sh"], d / "log", env=env)
    p.start()
    try:
        def up():
            p._check_alive()
            c = Client(port, "_health", pw["_health"])
            c.close()
            return c.ok
        wait_for(up, DEFAULT_TIMEOUT, "the recipe's mosquitto")
        yield {"port": port, "pw": pw, "run": run, "proc": p, "dir": d, "secrets": secrets}
    finally:
        p.stop()


@pytest.fixture
def login(broker):
    made = []

    def make(user, password=None, client_id=None):
        c = Client(broker["port"], user, broker["pw"][user] if password is None else password,
                   client_id)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def test_entrypoint_hashed_every_login(broker):
    text = (broker["run"] / "passwd").read_text()
    users = [ln.split(":", 1)[0] for ln in text.splitlines()]
    assert sorted(users) == sorted(LOGINS.values())
    for pw in broker["pw"].values():
        assert pw not in text, "password stored in clear"
    assert (broker["run"] / "passwd").stat().st_mode & 0o077 == 0
    assert f"{len(LOGINS)} MQTT logins" in broker["proc"].log_text()


def test_logins_required(broker, login):
    assert login("alpha").ok
    assert not login("alpha", password="wrong").ok
    assert not login("nobody", password="x").ok
    anon = Client(broker["port"], None, None)
    anon.close()
    assert not anon.ok


def test_entrypoint_refuses_bad_secret(broker, tmp_path):
    (tmp_path / "mqtt_bad").write_text("mqtt://alpha:p%40ss@mosquitto:1883\n")
    env = dict(os.environ, MQTT_SECRETS_DIR=str(tmp_path), MOSQUITTO_RUN_DIR=str(tmp_path / "r"),
               MOSQUITTO_BIN="/bin/false")
    r = subprocess.run(["/bin/sh", str(MQ / "entrypoint.sh")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 78 and "mqtt_bad" in r.stderr and "p%40ss" not in r.stderr
    (tmp_path / "mqtt_bad").write_text("mqtt://mosquitto:1883\n")
    r = subprocess.run(["/bin/sh", str(MQ / "entrypoint.sh")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 78


def test_connector_publishes_only_its_own(login):
    router = login("_router")
    ctl = login("_ctl")
    assert router.sub(f"{P}/in/+") < 0x80
    assert router.sub(f"{P}/ack/+") < 0x80
    assert ctl.sub(f"{P}/+/+") < 0x80
    alpha = login("alpha")
    # Forbidden first, then an allowed marker: in order, so absence is final at the marker.
    for kind in ("in", "ack", "status"):
        alpha.pub(f"{P}/{kind}/beta-2", f"forged-{kind}")
    alpha.pub(f"{P}/out/beta-2", "forged-out")
    alpha.pub(f"{P}/out/alpha", "self-out")
    alpha.pub(f"{P}/channels/alpha", "self-channels")
    alpha.pub(f"{P}/in/alpha", "marker")
    alpha.pub(f"{P}/ack/alpha", "ack-marker")
    alpha.pub(f"{P}/status/alpha", "status-marker")
    router.wait(f"{P}/in/alpha", "marker")
    router.wait(f"{P}/ack/alpha", "ack-marker")
    ctl.wait(f"{P}/status/alpha", "status-marker")
    for kind in ("in", "ack"):
        assert router.got(f"{P}/{kind}/beta-2") == []
    for t in (f"{P}/status/beta-2", f"{P}/out/beta-2", f"{P}/out/alpha", f"{P}/channels/alpha"):
        assert ctl.got(t) == [], t


def test_connector_reads_only_its_own(login):
    alpha = login("alpha")
    for t in (f"{P}/out/alpha", f"{P}/channels/alpha"):
        assert alpha.sub(t) < 0x80
    # Whatever the broker answers to these, nothing of beta-2's may arrive.
    for t in (f"{P}/out/beta-2", f"{P}/out/+", f"{P}/channels/beta-2", f"{P}/in/+", "#"):
        alpha.sub(t)
    router = login("_router")
    router.pub(f"{P}/out/beta-2", "for-beta")
    router.pub(f"{P}/channels/beta-2", "beta-channels", retain=True)
    login("beta-2").pub(f"{P}/in/beta-2", "beta-in")
    router.pub(f"{P}/channels/alpha", '{"v":1,"channels":["#a"]}', retain=True)
    router.pub(f"{P}/out/alpha", "for-alpha")
    alpha.wait(f"{P}/channels/alpha", '{"v":1,"channels":["#a"]}')
    alpha.wait(f"{P}/out/alpha", "for-alpha")
    assert [m for m in alpha.msgs if "beta" in m[0]] == []
    # A later subscriber of the retained channels list gets its own only.
    late = login("alpha")
    late.sub(f"{P}/channels/+")
    late.sub(f"{P}/channels/alpha")
    late.wait(f"{P}/channels/alpha", '{"v":1,"channels":["#a"]}')
    assert late.got(f"{P}/channels/beta-2") == []


def test_router_and_ctl_jobs(login):
    router = login("_router")
    ctl = login("_ctl", client_id="trestle-ctl-0123abcd")
    alpha = login("alpha")
    router.sub(f"{P}/in/+")
    alpha.sub(f"{P}/out/alpha")
    # ctl: send (in/+), its sync topic, read every v1 topic; never write out/ or channels/.
    ctl.sub(f"{P}/+/+")
    ctl.sub("trestle/ctl/trestle-ctl-0123abcd")
    ctl.pub(f"{P}/out/alpha", "ctl-forged-out")
    ctl.pub(f"{P}/in/alpha", "ctl-send")
    router.wait(f"{P}/in/alpha", "ctl-send")
    ctl.pub("trestle/ctl/trestle-ctl-0123abcd", "sync")
    ctl.wait("trestle/ctl/trestle-ctl-0123abcd", "sync")
    router.pub(f"{P}/out/alpha", "after")
    alpha.wait(f"{P}/out/alpha", "after")
    assert [m for m in alpha.got(f"{P}/out/alpha") if m[1] == b"ctl-forged-out"] == []
    # The router writes out/ and channels/ but cannot pose as a connector.
    router.pub(f"{P}/in/alpha", "router-forged")
    router.pub(f"{P}/status/alpha", "router-forged")
    router.pub(f"{P}/out/alpha", "router-marker")
    ctl.wait(f"{P}/out/alpha", "router-marker")
    assert [m for m in ctl.msgs if m[1] == b"router-forged"] == []


def test_compose_healthcheck_command(broker):
    """The mosquitto service's health check, as compose.yml writes it."""
    svc = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]["mosquitto"]
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    cmd = test[1].replace("$$", "$").replace("/mosquitto/run", str(broker["run"]))
    r = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # And it fails when the login is wrong.
    opts = broker["run"] / "mosquitto_sub"
    good = opts.read_text()
    try:
        opts.write_text(re.sub(r"^-P .*$", "-P wrong", good, flags=re.M))
        r = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
    finally:
        opts.write_text(good)

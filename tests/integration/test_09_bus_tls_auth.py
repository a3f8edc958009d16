# SPDX-License-Identifier: AGPL-3.0-or-later
# The bus over mqtts:// with a login: a broker with a TLS listener (a CA and a certificate for
# "localhost" made by the test) and a password file, no anonymous access. The router connects
# with TRESTLE_MQTT_URL=mqtts://user:password@localhost:port and TRESTLE_MQTT_CA_FILE, routes,
# and a wrong password keeps it out (503) without the password ever reaching its log.

import json
import queue
import ssl
import socket
import subprocess
import uuid

import paho.mqtt.client as mqtt
import pytest

from harness import Broker, DEFAULT_TIMEOUT, wait_for

pytestmark = pytest.mark.needs_router

ROOMS = """[room tls]
a = CA
b = CB
"""


def make_pki(d):
    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    ca_key, ca, key, csr, crt, ext = (d / n for n in
                                      ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem",
                                       "ext.cnf"))
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=Trestle test CA", "-keyout", ca_key, "-out", ca)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", key, "-out", csr)
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", crt)
    return ca, crt, key


class TlsBroker(Broker):
    """A broker with only a TLS listener and a password file."""

    def __init__(self, workdir, pki, users):
        self.pki = pki
        self.users = users
        super().__init__(workdir)

    def _write_conf(self):
        pw = self.dir / "passwd"
        pw.write_text("")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                           capture_output=True, timeout=30)
        ca, crt, key = self.pki
        super()._write_conf()
        conf = self.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
        conf += "\n".join([f"cafile {ca}", f"certfile {crt}", f"keyfile {key}",
                           f"password_file {pw}", ""])
        self.conf.write_text(conf)

    @property
    def url(self):
        return f"mqtts://localhost:{self.port}"

    def ready(self):
        self._check_alive()
        ctx = ssl.create_default_context(cafile=str(self.pki[0]))
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            with ctx.wrap_socket(s, server_hostname="localhost"):
                return True


def client(broker, user, password, topic=None):
    got = queue.Queue()
    c = mqtt.Client(client_id=f"tls-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(broker.pki[0]))
    c.username_pw_set(user, password)
    c.on_message = lambda cl, u, m: got.put(m)
    c.connect("localhost", broker.port)
    c.loop_start()
    if topic:
        c.subscribe(topic, qos=1)
    return c, got


@pytest.fixture
def tls(stack):
    s = stack
    pki = make_pki(s.workdir)
    users = {"router": "r0uter-s3cret", "conn": "c0nn-s3cret"}
    s.broker = s._retry_start(lambda: TlsBroker(s.workdir, pki, users))
    s.start_redis()
    clients = []
    yield s, clients
    for c in clients:
        c.loop_stop()
        c.disconnect()


@pytest.mark.timeout(90)
def test_router_over_mqtts_with_login(tls):
    s, clients = tls
    b = s.broker
    s.start_router(ROOMS, TRESTLE_MQTT_URL=f"mqtts://router:r0uter-s3cret@localhost:{b.port}",
                   TRESTLE_MQTT_CA_FILE=str(b.pki[0]))
    sub, got = client(b, "conn", "c0nn-s3cret", f"{s.prefix}/v1/out/b")
    pub, _ = client(b, "conn", "c0nn-s3cret")
    clients += [sub, pub]
    wait_for(lambda: sub.is_connected() and pub.is_connected(), DEFAULT_TIMEOUT, "TLS clients")
    ev = {"v": 1, "id": "a:tls:1", "type": "message", "connector": "a", "network": "test",
          "channel": "CA", "msgid": "m1", "ts": 1, "author": {"id": "u"}, "text": "over TLS"}

    def routed():
        pub.publish(f"{s.prefix}/v1/in/a", json.dumps(ev), qos=1)
        try:
            return json.loads(got.get(timeout=1).payload)
        except queue.Empty:
            return None
    out = wait_for(routed, DEFAULT_TIMEOUT, "the event routed over TLS")
    assert out["id"] == "a:tls:1" and out["dest"] == {"connector": "b", "channel": "CB"}
    assert "r0uter-s3cret" not in s.router.log_text()


@pytest.mark.timeout(60)
def test_wrong_password_is_refused_and_never_logged(tls):
    s, _ = tls
    b = s.broker
    r = s.make_router(ROOMS, TRESTLE_MQTT_URL=f"mqtts://router:wr0ng-pass@localhost:{b.port}",
                      TRESTLE_MQTT_CA_FILE=str(b.pki[0]))
    r.start()
    r.wait_log(r"broker refused the connection")
    assert r.healthz()[0] == 503
    assert "wr0ng-pass" not in r.log_text()
    # The URL is logged with the password masked.
    assert "router:***@localhost" in r.log_text()

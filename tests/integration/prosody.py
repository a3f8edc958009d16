# SPDX-License-Identifier: AGPL-3.0-or-later
# A real Prosody (Debian package) for the XMPP tests: config, self-signed certificate and data
# dir generated in the test's tmp dir, c2s on a free loopback port, a MUC component
# "conference.localhost" with stanza-ids (muc_mam), accounts made with prosodyctl. Test users
# are python3-slixmpp clients driven from a background asyncio thread (XmppUser).

import asyncio
import os
import socket
import ssl
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import DEFAULT_TIMEOUT, Proc, free_port, wait_for

DOMAIN = "localhost"
MUC = "conference.localhost"
NS_CLIENT = "jabber:client"


class Prosody(Proc):
    def __init__(self, workdir):
        self.dir = Path(workdir) / "prosody"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "prosody.cfg.lua"
        self.cert = self.dir / "localhost.crt"
        self.key = self.dir / "localhost.key"
        self.file_log = self.dir / "prosody.log"
        if not self.cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                            "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,DNS:conference.localhost"],
                           check=True, capture_output=True)
        self._write_conf()
        super().__init__("prosody", ["prosody", "--config", self.conf, "-F"],
                         self.dir / "stdout.log")

    def _write_conf(self):
        d = self.dir
        # Running as root (CI containers): prosody refuses unless told, and prosodyctl would
        # switch to the "prosody" user, who cannot read the test's tmp dir.
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        self.conf.write_text(f"""
run_as_root = true
prosody_user = "{user}"
prosody_group = "{user}"
daemonize = false
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{d}/prosody.log" }} }}
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping" }}
modules_disabled = {{ "s2s"; "posix" }}
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
ssl = {{ key = "{self.key}"; certificate = "{self.cert}" }}
limits = {{ c2s = {{ rate = "1mb/s" }} }}
VirtualHost "localhost"
Component "{MUC}" "muc"
  modules_enabled = {{ "muc_mam" }}
  muc_room_default_persistent = true
  muc_room_default_public = true
  muc_room_default_change_subject = true
""")

    def register(self, user, password):
        r = subprocess.run(["prosodyctl", "--config", str(self.conf), "register", user, DOMAIN,
                            password], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"prosodyctl register {user}: {r.stdout} {r.stderr}"

    def ready(self):
        self._check_alive()
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                      b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
            return b"stream:features" in s.recv(4096) or True

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(self.ready, timeout, f"prosody on port {self.port}")
        return self

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"


def start_prosody(stack):
    """Starts a Prosody owned by the stack (killed at teardown, logs tailed on failure)."""
    p = stack._retry_start(lambda: Prosody(stack.workdir))
    p.file_log_path = p.file_log
    return p


# ---------------------------------------------------------------------------------------------
# Test users


def q(tag, ns):
    return f"{{{ns}}}{tag}"


class Msg:
    """A received groupchat message, parsed."""

    def __init__(self, xml):
        self.xml = xml
        self.el = ET.fromstring(xml)
        self.frm = self.el.get("from", "")
        self.nick = self.frm.split("/", 1)[1] if "/" in self.frm else ""
        self.id = self.el.get("id")
        b = self.child("body")
        self.body = (b.text or "") if b is not None else None
        s = self.child("subject")
        self.subject = (s.text or "") if s is not None else None
        sid = self.el.find(q("stanza-id", "urn:xmpp:sid:0"))
        self.stanza_id = sid.get("id") if sid is not None else None
        self.delayed = self.el.find(q("delay", "urn:xmpp:delay")) is not None

    def child(self, tag, ns=None):
        """The first child element named tag (in namespace ns; stanza namespace if None)."""
        if ns is not None:
            return self.el.find(q(tag, ns))
        for c in self.el:
            if c.tag in (tag, q(tag, NS_CLIENT)):
                return c
        return None

    def __repr__(self):
        return f"<Msg from={self.frm} id={self.id} sid={self.stanza_id} body={self.body!r}>"


class XmppUser:
    """A slixmpp client in its own thread: joins rooms, sends raw stanzas, records every
    groupchat message it receives."""

    def __init__(self, prosody, user, password="pw-" + uuid.uuid4().hex[:8]):
        import slixmpp  # Debian python3-slixmpp; imported here so collection works without it
        prosody.register(user, password)
        self.jid = f"{user}@{DOMAIN}"
        self.nick = user
        self.msgs = []
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.online = threading.Event()
        self.joined = set()
        x = slixmpp.ClientXMPP(self.jid + "/test", password)
        ctx = ssl.create_default_context(cafile=str(prosody.cert))
        x.ssl_context = ctx
        x.register_plugin("xep_0045")
        x.add_event_handler("session_start", self._started)
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        # Every groupchat message, with or without a body (reactions, retractions...).
        x.register_handler(Callback("trestle-all-messages",
                                    MatchXPath("{jabber:client}message"), self._gc))
        x.add_event_handler("presence", self._presence)
        self.x = x
        self.port = prosody.port
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.online.wait(DEFAULT_TIMEOUT), f"{self.jid} did not log in"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.x.loop = self.loop
        self.x.connect(address=("127.0.0.1", self.port))
        self.loop.run_forever()
        # Let slixmpp's tasks finish their cancellation before the loop goes.
        pending = asyncio.all_tasks(self.loop)
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def _started(self, _):
        self.x.send_presence()
        self.online.set()

    def _gc(self, msg):
        if msg["type"] != "groupchat":
            return
        with self.cond:
            m = Msg(str(msg))
            if all(o.xml != m.xml for o in self.msgs[-5:]):
                self.msgs.append(m)
            self.cond.notify_all()

    def _presence(self, pres):
        if "110" in str(pres) and pres["type"] != "unavailable":
            if "code='201'" in str(pres) or 'code="201"' in str(pres):
                # We created the room: accept the default configuration (instant room).
                self.x.send_raw(f"<iq type='set' id='cfg-{uuid.uuid4().hex[:6]}' "
                                f"to='{pres['from'].bare}'><query xmlns='http://jabber.org/"
                                "protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/>"
                                "</query></iq>")
            with self.cond:
                self.joined.add(pres["from"].bare)
                self.cond.notify_all()

    def call(self, fn, *a):
        fut = asyncio.run_coroutine_threadsafe(self._wrap(fn, *a), self.loop)
        return fut.result(DEFAULT_TIMEOUT)

    async def _wrap(self, fn, *a):
        return fn(*a)

    def join(self, room):
        self.send_raw(f"<presence to='{room}/{self.nick}'><x xmlns='http://jabber.org/"
                      f"protocol/muc'><history maxstanzas='0'/></x></presence>")
        with self.cond:
            assert self.cond.wait_for(lambda: room in self.joined, DEFAULT_TIMEOUT), \
                f"{self.jid} could not join {room}"

    def send_raw(self, xml):
        self.call(self.x.send_raw, xml)

    def say(self, room, body, extra="", id=None):
        """Sends a groupchat message; returns its id attribute."""
        id = id or "u-" + uuid.uuid4().hex[:10]
        b = f"<body>{escape(body)}</body>" if body is not None else ""
        self.send_raw(f"<message to='{room}' type='groupchat' id='{id}'>{b}{extra}</message>")
        return id

    def wait(self, pred, timeout=DEFAULT_TIMEOUT, what="message"):
        """Waits for a received message matching pred; returns it."""
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred(m) for m in self.msgs), timeout)
            assert ok, f"{self.jid}: no {what} within {timeout}s; got {self.msgs[-10:]!r}"
            return next(m for m in self.msgs if pred(m))

    def own_reflection(self, room, id):
        """The room's reflection of our own message id (carries the stanza-id)."""
        return self.wait(lambda m: m.frm.startswith(room + "/") and m.id == id,
                         what=f"reflection of {id}")

    def count(self, pred):
        with self.cond:
            return sum(1 for m in self.msgs if pred(m))

    def close(self):
        gone = threading.Event()
        self.x.add_event_handler("disconnected", lambda *_: gone.set())
        try:
            self.call(self.x.disconnect)
            gone.wait(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(5)


def escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


# ---------------------------------------------------------------------------------------------
# The connector under test


class Bridge(Proc):
    """build/bin/trestle-xmpp as a child process, logged in to the Prosody as bridge@localhost
    over STARTTLS with the test's certificate as its CA."""

    def __init__(self, stack, prosody, name="xmpp", user="bridge", nick="bridge", env=None):
        from harness import bin_path
        self.dir = Path(stack.workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stack = stack
        self.name_ = name
        password = "b-" + uuid.uuid4().hex[:10]
        prosody.register(user, password)
        e = dict(os.environ)
        e.update({
            "TRESTLE_MQTT_URL": stack.broker.url,
            "TRESTLE_CONNECTOR": name,
            "TRESTLE_TOPIC_PREFIX": stack.prefix,
            "TRESTLE_STATE_DIR": str(self.dir / "state"),
            "TRESTLE_LOG_LEVEL": "debug",
            "XMPP_JID": f"{user}@{DOMAIN}/trestle",
            "XMPP_PASSWORD": password,
            "XMPP_SERVER": prosody.server,
            "XMPP_CA_FILE": str(prosody.cert),
            "XMPP_NICK": nick,
            "XMPP_PING_INTERVAL": "10",
            "XMPP_TIMEOUT": "5",
        })
        e.update({k: str(v) for k, v in (env or {}).items()})
        super().__init__(f"trestle-xmpp[{name}]", [bin_path("trestle-xmpp")],
                         self.dir / "xmpp.log", env=e)
        self.status = stack.mqtt_client(f"status-{name}")
        self.status.subscribe(stack.topic("status", name))
        stack.procs.append(self)

    def wait_online(self, rooms, timeout=20):
        """Waits for status online with every room joined."""
        want = f"{rooms}/{rooms} rooms joined"

        def ok(m):
            j = m.json
            return isinstance(j, dict) and j.get("state") == "online" and \
                want in (j.get("detail") or "")
        return self.status.wait_message(self.stack.topic("status", self.name_), ok, timeout)[0]

    def wait_state(self, state, timeout=20):
        return self.status.wait_message(
            self.stack.topic("status", self.name_),
            lambda m: isinstance(m.json, dict) and m.json.get("state") == state, timeout)[0]

    def sanitizer_reports(self):
        import re
        rx = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")
        return [ln for ln in self.log_text().splitlines() if rx.search(ln)]


def xmpp_barrier(conn, user, room, timeout=DEFAULT_TIMEOUT):
    """Barrier for "nothing more came from the room": user says a unique marker in room, and
    once it reached conn (a harness Connector) nothing else may have arrived before it (one
    room is one channel, delivered in order). Returns the events passed over (none)."""
    mark = "barrier-" + uuid.uuid4().hex[:10]
    user.say(room, mark)
    msg, before = conn.mq.wait_message(
        conn.out_topic, lambda m: isinstance(m.json, dict) and mark in (m.json.get("text") or ""),
        timeout)
    extra = [m.json for m in before]
    assert not extra, f"unexpected out events at {conn.name}: {extra!r}"


def make_world(s, rooms_text, room, bridge_env=None):
    """Prosody, router with a harness connector "b", the bridge online in room, and alice (a
    slixmpp user) in room. Returns (prosody, b, bridge, alice)."""
    pro = start_prosody(s)
    b = s.connector("b")
    s.start_router(rooms_text, connectors=(b,))
    br = Bridge(s, pro, env=bridge_env)
    br.start()
    br.wait_online(1)
    alice = XmppUser(pro, "alice")
    alice.join(room)
    return pro, b, br, alice


def end_world(br, *users):
    for u in users:
        u.close()
    br.stop()
    bad = br.sanitizer_reports()
    assert not bad, "sanitizer reports in the xmpp log:\n" + "\n".join(bad[:20])

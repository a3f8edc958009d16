# SPDX-License-Identifier: AGPL-3.0-or-later
# IRC fixtures for the integration tests: a real ngircd (Debian package) on a free loopback port
# with a config written into the test's tmp dir (optionally TLS with a self-signed certificate
# made by `openssl req` at test time), raw-socket IRC test users, and trestle-irc as a child
# process. Every wait is bounded; every process is killed at teardown.

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import DEFAULT_TIMEOUT, Proc, bin_path, free_port, wait_for

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"


def irc_probe(host, port, tls_ctx=None, timeout=2):
    """Registers once and quits, in this thread (an SSL socket must not be read and written
    from two threads). True when the server answered with 001."""
    nick = f"probe{os.getpid() % 1000}{int(time.monotonic() * 1000) % 10000}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
        s = tls_ctx.wrap_socket(raw, server_hostname=host) if tls_ctx else raw
        with s:
            s.settimeout(timeout)
            s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :probe\r\n".encode())
            buf = b""
            while f" 001 {nick} ".encode() not in buf:
                data = s.recv(4096)
                if not data:
                    return False
                buf += data
            s.sendall(b"QUIT\r\n")
            return True
    except (OSError, ssl.SSLError):
        return False


def _ircd_ready(host, port, tls_ctx=None):
    """The server answers registration with 001 (a listening socket alone is not enough)."""
    return irc_probe(host, port, tls_ctx)


class Ngircd(Proc):
    """ngircd -n with its own config; a restart keeps the ports."""

    def __init__(self, workdir, tls=False, nick_len=30):
        if not Path(NGIRCD).exists():
            pytest.skip("ngircd is not installed (deploy/deps.sh installs it)")
        self.dir = Path(workdir) / f"ngircd-{free_port()}"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.cert = None
        if tls:
            self.cert = self.dir / "cert.pem"
            self.key = self.dir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(self.key), "-out", str(self.cert)],
                           check=True, capture_output=True, timeout=60)
            # ngircd drops privileges before it reads the key.
            os.chmod(self.dir, 0o755)
            os.chmod(self.key, 0o644)
        self.conf = self.dir / "ngircd.conf"
        self.nick_len = nick_len
        self._write_conf()
        argv = [NGIRCD, "-n", "-f", str(self.conf)]
        super().__init__("ngircd", argv, self.dir / "ngircd.log")

    def _write_conf(self):
        uid = os.getuid()
        user = ""
        if uid == 0:
            # As root ngircd insists on dropping privileges; nobody can read the test dir.
            user = "ServerUID = 65534\nServerGID = 65534\n"
        tls = ""
        if self.tls_port:
            tls = (f"[SSL]\nCertFile = {self.cert}\nKeyFile = {self.key}\n"
                   f"Ports = {self.tls_port}\n")
        self.conf.write_text(f"""[Global]
Name = irc.trestle.test
Info = Trestle test server
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@localhost
Listen = 127.0.0.1
Ports = {self.port}
MotdPhrase = test server
{user}
[Limits]
PingTimeout = 120
PongTimeout = 20
MaxConnectionsIP = 0
MaxNickLength = {self.nick_len}
MaxJoins = 0
[Options]
Ident = no
PAM = no
DNS = no
{tls}""")
        os.chmod(self.conf, 0o644)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def ready(self):
        self._check_alive()
        return _ircd_ready("127.0.0.1", self.port)

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(self.ready, timeout, f"ngircd on 127.0.0.1:{self.port}")
        if self.tls_port:
            ctx = ssl.create_default_context(cafile=str(self.cert))
            wait_for(lambda: _ircd_ready("127.0.0.1", self.tls_port, ctx), timeout,
                     f"ngircd TLS on 127.0.0.1:{self.tls_port}")
        return self


class IrcClient:
    """A test user: a raw-socket IRC client. A reader thread answers PING and keeps every line;
    lines() / wait_line() look at what arrived. Plain TCP only in practice: an SSL socket read
    and written from two threads can hang (use irc_probe for TLS checks)."""

    def __init__(self, port, nick, host="127.0.0.1", tls_ctx=None, timeout=DEFAULT_TIMEOUT,
                 register=True):
        self.nick = nick
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls_ctx.wrap_socket(raw, server_hostname=host) if tls_ctx else raw
        self.sock.settimeout(None)
        self.buf = b""
        self.all = []
        self.cond = threading.Condition()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if register:
            self.send(f"NICK {nick}")
            self.send(f"USER {nick} 0 * :test user {nick}")
            self.wait_line(lambda l: f" 001 {nick} " in l or " 433 " in l, timeout)
            if any(" 433 " in l for l in self.lines()):
                raise AssertionError(f"nick {nick} in use")

    def _read(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
                while b"\r\n" in self.buf:
                    raw, self.buf = self.buf.split(b"\r\n", 1)
                    line = raw.decode("utf-8", "replace")
                    if line.startswith("PING "):
                        self.send("PONG " + line[5:])
                    with self.cond:
                        self.all.append(line)
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, line):
        assert "\r" not in line and "\n" not in line
        self.sock.sendall(line.encode() + b"\r\n")

    def lines(self):
        with self.cond:
            return list(self.all)

    def wait_line(self, pred, timeout=DEFAULT_TIMEOUT, start=0):
        """The first line from index start on matching pred; fails with what arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.all[start:]:
                    if pred(l):
                        return l
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"{self.nick}: no matching line within {timeout}s;"
                                         f" last lines: {self.all[-8:]!r}")
                self.cond.wait(left)

    def join(self, chan, timeout=DEFAULT_TIMEOUT):
        n = len(self.lines())
        self.send(f"JOIN {chan}")
        self.wait_line(lambda l: re.search(rf" 366 {re.escape(self.nick)} {re.escape(chan)} ", l,
                                           re.I), timeout, start=n)

    def privmsgs(self, chan, sender=None):
        """[(nick, text)] of the PRIVMSGs seen in chan."""
        out = []
        for l in self.lines():
            m = re.match(r"^(?:@\S+ )?:([^! ]+)\S* PRIVMSG (\S+) :?(.*)$", l)
            if m and m.group(2).lower() == chan.lower() and (sender is None or
                                                           m.group(1).lower() == sender.lower()):
                out.append((m.group(1), m.group(3)))
        return out

    def say(self, chan, text):
        self.send(f"PRIVMSG {chan} :{text}")

    def close(self):
        try:
            self.send("QUIT :bye")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class IrcConnector(Proc):
    """trestle-irc as a child process of the test."""

    def __init__(self, stack, ircd, name="irc", nick="bridge", channels_wait=True, **env):
        path = bin_path("trestle-irc")
        if not path.exists():
            pytest.skip(f"{path} not built")
        e = dict(os.environ, TRESTLE_MQTT_URL=stack.broker.url, TRESTLE_CONNECTOR=name,
                 TRESTLE_TOPIC_PREFIX=stack.prefix, TRESTLE_LOG_LEVEL="debug",
                 TRESTLE_STATE_DIR=str(stack.workdir / f"{name}-state"),
                 IRC_SERVER=ircd.server, IRC_NICK=nick)
        e.update({k: str(v) for k, v in env.items()})
        self.name_ = name
        super().__init__(f"trestle-irc:{name}", [path], stack.workdir / f"{name}.log", env=e)
        stack.procs.append(self)


def sanitizer_lines(proc):
    rx = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")
    return [l for l in proc.log_text().splitlines() if rx.search(l)]


ROOMS = """[room irc]
irc = #bridge
b = CB
"""


class Bridge:
    """One test's IRC world: ngircd, the router, a harness connector "b" on the far side of
    room #bridge <-> CB, trestle-irc, a status watcher, and IRC test users."""

    def __init__(self, stack, tls=False, nick="bridge", rooms=ROOMS, users=("alice",),
                 connector_env=None, start=True):
        self.stack = stack
        self.ircd = stack._retry_start(lambda: Ngircd(stack.workdir, tls=tls))
        self.b = stack.connector("b")
        stack.start_router(rooms, connectors=(self.b,))
        self.status = stack.mqtt_client("status")
        self.status.subscribe(stack.topic("status", "irc"))
        self.acks = stack.mqtt_client("acks")
        self.acks.subscribe(stack.topic("ack", "irc"))
        self.users = {}
        for u in users:
            self.users[u] = self.user(u)
            self.users[u].join("#bridge")
        self.nick = nick
        env = dict(IRC_FLOOD_RATE=20, IRC_FLOOD_BURST=20)
        env.update(connector_env or {})
        self.conn = IrcConnector(stack, self.ircd, nick=nick, **env)
        if start:
            self.conn.start()

    def user(self, nick, tls=False):
        c = IrcClient(self.ircd.port, nick)
        self.stack.cleanups.append(c.close)
        return c

    def wait_state(self, state, timeout=DEFAULT_TIMEOUT):
        t = self.stack.topic("status", "irc")
        return self.status.wait_message(
            t, lambda m: isinstance(m.json, dict) and m.json.get("state") == state,
            timeout)[0].json

    def wait_joined(self, user, nick=None, start=0, timeout=DEFAULT_TIMEOUT):
        nick = nick or self.nick
        return user.wait_line(lambda l: re.match(rf"^:{re.escape(nick)}!\S* JOIN :?#bridge", l, re.I),
                              timeout, start=start)

    def from_bridge(self, user, nick=None):
        return [t for _, t in user.privmsgs("#bridge", nick or self.nick)]

    def wait_from_bridge(self, user, n, nick=None, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: len(self.from_bridge(user, nick)) >= n, timeout,
                 lambda: f"{n} lines from the bridge; got {self.from_bridge(user, nick)!r}")
        return self.from_bridge(user, nick)

    def acked(self, ev_id, timeout=DEFAULT_TIMEOUT):
        t = self.stack.topic("ack", "irc")
        return self.acks.wait_message(
            t, lambda m: isinstance(m.json, dict) and m.json.get("id") == ev_id, timeout)[0].json

    def check_sanitizers(self):
        bad = sanitizer_lines(self.conn)
        assert not bad, "sanitizer reports in the trestle-irc log:\n" + "\n".join(bad[:20])


@pytest.fixture
def irc_stack(infra):
    s = infra
    s.cleanups = []
    yield s
    for fn in s.cleanups:
        try:
            fn()
        except Exception:
            pass

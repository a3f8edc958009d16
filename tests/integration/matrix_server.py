# SPDX-License-Identifier: AGPL-3.0-or-later
# Fixture pieces for the Matrix tests: the Node homeserver test double (tests/servers/matrix/)
# on a free loopback port, a tiny client-server API client for human test users, and
# trestle-matrix as a child process (appservice or bot mode).

import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness import DEFAULT_TIMEOUT, REPO, Proc, bin_path, free_port, wait_for

SERVER_DIR = REPO / "tests" / "servers" / "matrix"
SERVER_NAME = "test.local"
NPM_TIMEOUT = 300


def ensure_node_modules():
    """npm ci in the server folder when node_modules is missing (bounded); skips without node."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed")
    if (SERVER_DIR / "node_modules").exists():
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT)
    assert r.returncode == 0, r.stdout.decode("utf-8", "replace")[-3000:]


class MatrixError(Exception):
    def __init__(self, status, body, headers):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers


def http(method, url, body=None, token=None, raw=None, ctype="application/json", timeout=10):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            b = r.read()
            if r.headers.get("Content-Type", "").startswith("application/json"):
                return json.loads(b)
            return b
    except urllib.error.HTTPError as e:
        b = e.read()
        try:
            b = json.loads(b)
        except ValueError:
            pass
        raise MatrixError(e.code, b, dict(e.headers)) from None


def q(s):
    return urllib.parse.quote(s, safe="")


class MatrixServer(Proc):
    """The homeserver test double. appservice: the registration dict (or None)."""

    def __init__(self, workdir, users=(), appservice=None):
        ensure_node_modules()
        self.workdir = Path(workdir)
        self.port = free_port()
        cfg = {"users": [{"localpart": u, "password": "pw"} for u in users]}
        if appservice:
            cfg["appservice"] = appservice
        self.cfg_path = self.workdir / "matrix-hs.json"
        self.cfg_path.write_text(json.dumps(cfg))
        super().__init__("matrix-hs", ["node", SERVER_DIR / "server.js", "--port", self.port,
                                       "--server-name", SERVER_NAME, "--config", self.cfg_path],
                         self.workdir / "matrix-hs.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(lambda: (self._check_alive() or True) and "LISTENING" in self.log_text(),
                 timeout, "matrix test server listening")
        return self

    def api(self, method, path, body=None, token=None, **kw):
        return http(method, self.url + path, body, token, **kw)

    # control API
    def timeline(self, room):
        return self.api("GET", f"/_test/rooms/{q(room)}/timeline")["events"]

    def state(self, room):
        return self.api("GET", f"/_test/rooms/{q(room)}/state")["state"]

    def ratelimit(self, path, count=1, retry_after_ms=1000, method=None, header=True):
        self.api("POST", "/_test/ratelimit", {"path": path, "count": count,
                                              "retry_after_ms": retry_after_ms,
                                              "method": method, "header": header})

    def as_log(self):
        return self.api("GET", "/_test/as/log")

    def as_replay(self, txn):
        return self.api("POST", "/_test/as/replay", {"txnId": txn})["status"]

    def requests(self):
        return self.api("GET", "/_test/requests")["requests"]

    def login(self, user):
        r = self.api("POST", "/_matrix/client/v3/login",
                     {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                      "password": "pw"})
        return MatrixUser(self, r["user_id"], r["access_token"])


class MatrixUser:
    """A human test user on the client-server API."""

    def __init__(self, hs, user_id, token):
        self.hs, self.user_id, self.token = hs, user_id, token
        self.n = 0

    def call(self, method, path, body=None):
        return self.hs.api(method, "/_matrix/client/v3" + path, body, self.token)

    def create_room(self, **body):
        return self.call("POST", "/createRoom", body)["room_id"]

    def send(self, room, content, type="m.room.message"):
        self.n += 1
        txn = f"py{self.n}-{secrets.token_hex(4)}"
        return self.call("PUT", f"/rooms/{q(room)}/send/{type}/{txn}", content)["event_id"]

    def text(self, room, body, **extra):
        return self.send(room, dict({"msgtype": "m.text", "body": body}, **extra))

    def redact(self, room, event_id):
        self.n += 1
        return self.call("PUT", f"/rooms/{q(room)}/redact/{q(event_id)}/pyr{self.n}", {})["event_id"]

    def set_topic(self, room, topic):
        return self.call("PUT", f"/rooms/{q(room)}/state/m.room.topic/", {"topic": topic})


class MatrixConnector(Proc):
    """trestle-matrix as a child process."""

    def __init__(self, stack, hs, name="mx", extra_env=None):
        path = bin_path("trestle-matrix")
        if not path.exists():
            pytest.skip(f"{path} not built")
        self.state_dir = stack.workdir / f"{name}-state"
        env = dict(os.environ, TRESTLE_MQTT_URL=stack.broker.url, TRESTLE_CONNECTOR=name,
                   TRESTLE_TOPIC_PREFIX=stack.prefix, TRESTLE_LOG_LEVEL="debug",
                   TRESTLE_STATE_DIR=str(self.state_dir),
                   MATRIX_HOMESERVER_URL=hs.url, MATRIX_SERVER_NAME=SERVER_NAME)
        env.update(extra_env or {})
        super().__init__(name, [path], stack.workdir / f"{name}.log", env=env)
        stack.procs.append(self)

    def sanitizer_reports(self):
        rx = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")
        return [ln for ln in self.log_text().splitlines() if rx.search(ln)]

    def stop_clean(self):
        """SIGTERM; the exit code must be 0 and the log free of sanitizer reports."""
        rc = self.stop()
        bad = self.sanitizer_reports()
        assert not bad, "sanitizer reports in the connector log:\n" + "\n".join(bad[:20])
        assert rc in (0, None), f"{self.name} exited with {rc}"

    def wait_log(self, needle, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: (self._check_alive() or True) and needle in self.log_text(), timeout,
                 f"'{needle}' in {self.name}'s log")


def appservice_registration(as_port):
    return {"id": "trestle", "url": f"http://127.0.0.1:{as_port}",
            "as_token": "as-" + secrets.token_hex(16), "hs_token": "hs-" + secrets.token_hex(16),
            "sender_localpart": "_trestle_bot", "rate_limited": False,
            "namespaces": {"users": [{"exclusive": True, "regex": "@_trestle_.*:test\\.local"}],
                           "aliases": [], "rooms": []}}


def appservice_env(reg, as_port):
    return {"MATRIX_AS_TOKEN": reg["as_token"], "MATRIX_HS_TOKEN": reg["hs_token"],
            "MATRIX_AS_LISTEN": f"127.0.0.1:{as_port}", "MATRIX_AS_ID": reg["id"]}

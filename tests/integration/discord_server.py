# SPDX-License-Identifier: AGPL-3.0-or-later
# Fixture pieces for the Discord tests: the Node Discord test server (tests/servers/discord/:
# REST v10 + Gateway v10) on a free loopback port, a REST client for human test users (user
# tokens), the control API, and trestle-discord as a child process.

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness import DEFAULT_TIMEOUT, REPO, Proc, bin_path, free_port, wait_for

SERVER_DIR = REPO / "tests" / "servers" / "discord"
NPM_TIMEOUT = 300
GUILD = "1100000000000000001"
GENERAL = "1300000000000000001"
RANDOM = "1300000000000000002"
LOCKED = "1300000000000000003"
BOT = "1200000000000000001"
HELPER = "1200000000000000002"
ALICE = "1200000000000000011"
BOB = "1200000000000000012"
BOT_TOKEN = "trestle-bot-token"


def ensure_node_modules():
    """npm ci in the server folder when node_modules is missing (bounded); skips without node."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed")
    if (SERVER_DIR / "node_modules").exists():
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT)
    assert r.returncode == 0, r.stdout.decode("utf-8", "replace")[-3000:]


class DiscordError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            b = r.read()
            return json.loads(b) if b else None
    except urllib.error.HTTPError as e:
        b = e.read()
        try:
            b = json.loads(b)
        except ValueError:
            pass
        raise DiscordError(e.code, b) from None


def q(s):
    return urllib.parse.quote(s, safe="")


class DiscordServer(Proc):
    def __init__(self, workdir, heartbeat_ms=1000, rate_limit=50, rate_window_ms=1000):
        ensure_node_modules()
        self.port = free_port()
        super().__init__("discord-server",
                         ["node", SERVER_DIR / "server.js", "--port", self.port,
                          "--heartbeat-ms", heartbeat_ms, "--rate-limit", rate_limit,
                          "--rate-window-ms", rate_window_ms],
                         workdir / "discord-server.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self):
        return self.url + "/api/v10"

    def start_ready(self, timeout=DEFAULT_TIMEOUT):
        self.start()
        wait_for(lambda: (self._check_alive() or True) and "LISTENING" in self.log_text(),
                 timeout, "discord test server listening")
        return self

    def control(self, path, body=None):
        return http("POST" if body is not None else "GET", f"{self.url}/_test{path}", body)

    def history(self, channel):
        """The channel as a human sees it, oldest first."""
        return self.control(f"/channels/{channel}/messages")

    def gateway_log(self):
        return self.control("/gateway/log")["log"]

    def requests(self):
        return self.control("/requests")

    def user(self, token):
        return DiscordUser(self, token)


class DiscordUser:
    """A human on the REST API with a user token."""

    def __init__(self, server, token):
        self.server, self.token = server, token

    def call(self, method, path, body=None):
        return http(method, self.server.api_url + path, body, {"Authorization": self.token})

    def post(self, channel, content, **extra):
        return self.call("POST", f"/channels/{channel}/messages", dict(content=content, **extra))

    def edit(self, channel, mid, content):
        return self.call("PATCH", f"/channels/{channel}/messages/{mid}", {"content": content})

    def delete(self, channel, mid):
        return self.call("DELETE", f"/channels/{channel}/messages/{mid}")

    def react(self, channel, mid, emoji, add=True):
        return self.call("PUT" if add else "DELETE",
                         f"/channels/{channel}/messages/{mid}/reactions/{q(emoji)}/@me")

    def thread(self, channel, mid, name="thread"):
        return self.call("POST", f"/channels/{channel}/messages/{mid}/threads", {"name": name})


class DiscordConnector(Proc):
    """trestle-discord as a child process."""

    def __init__(self, stack, server, name="dc", token=BOT_TOKEN, extra_env=None):
        path = bin_path("trestle-discord")
        if not path.exists():
            pytest.skip(f"{path} not built")
        self.state_dir = stack.workdir / f"{name}-state"
        env = dict(os.environ, TRESTLE_MQTT_URL=stack.broker.url, TRESTLE_CONNECTOR=name,
                   TRESTLE_TOPIC_PREFIX=stack.prefix, TRESTLE_LOG_LEVEL="debug",
                   TRESTLE_STATE_DIR=str(self.state_dir),
                   DISCORD_BOT_TOKEN=token, DISCORD_API_URL=server.api_url)
        env.update(extra_env or {})
        super().__init__(name, [path], stack.workdir / f"{name}.log", env=env)
        stack.procs.append(self)

    def sanitizer_reports(self):
        rx = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")
        return [ln for ln in self.log_text().splitlines() if rx.search(ln)]

    def stop_clean(self):
        rc = self.stop()
        bad = self.sanitizer_reports()
        assert not bad, "sanitizer reports in the connector log:\n" + "\n".join(bad[:20])
        assert rc in (0, None), f"{self.name} exited with {rc}"

    def wait_log(self, needle, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: (self._check_alive() or True) and needle in self.log_text(), timeout,
                 f"'{needle}' in {self.name}'s log")

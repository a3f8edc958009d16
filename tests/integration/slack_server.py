# SPDX-License-Identifier: AGPL-3.0-or-later
# The Slack test server (tests/servers/slack, Node.js) as a fixture: `npm ci` once when
# node_modules is missing (bounded), started on a free loopback port, its control API wrapped,
# a Slack human client (user token) for the tests, and its log printed on failure.

import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness import DEFAULT_TIMEOUT, wait_for

SERVER_DIR = Path(__file__).resolve().parent.parent / "servers" / "slack"
APP_TOKEN = "xapp-1-A0TRESTLE-1-test"
BOT_TOKEN = "xoxb-test-bot"
ALICE_TOKEN = "xoxp-test-alice"
BOB_TOKEN = "xoxp-test-bob"
_npm_lock = threading.Lock()


def node_bin():
    return shutil.which("node") or shutil.which("nodejs")


def ensure_node_modules(timeout=300):
    """npm ci in the server folder when node_modules is missing; skips when node is absent."""
    if not node_bin() or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the Slack test server (deploy/deps.sh)")
    with _npm_lock:
        if (SERVER_DIR / "node_modules" / "ws").exists() and \
                (SERVER_DIR / "node_modules" / "@slack" / "web-api").exists():
            return
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR,
                           capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("npm ci failed:\n" + r.stderr.decode("utf-8", "replace")[-3000:])


class SlackServer:
    def __init__(self, workdir):
        ensure_node_modules()
        self.log_path = Path(workdir) / "slack-server.log"
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen([node_bin(), str(SERVER_DIR / "server.js"), "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=self.log)
        self.info = None
        line = {}

        def read():
            line["v"] = self.p.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(DEFAULT_TIMEOUT)
        if not line.get("v"):
            self.stop()
            raise RuntimeError("Slack test server did not start:\n" + self.log_text())
        self.info = json.loads(line["v"])
        self.port = self.info["port"]
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.base + "/api/"

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()

    # ---- control API ----
    def control(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/_control/" + path, data=data,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def messages(self, channel):
        return self.control("messages?channel=" + urllib.parse.quote(channel))["messages"]

    def stats(self):
        return self.control("stats")

    def calls(self, method=None):
        return [c for c in self.control("calls")["calls"] if method is None or c["method"] == method]

    def wait_message(self, channel, pred, timeout=DEFAULT_TIMEOUT, what="a Slack message"):
        found = {}

        def ok():
            for m in self.messages(channel):
                if pred(m):
                    found["m"] = m
                    return True
            return False

        wait_for(ok, timeout, what=what)
        return found["m"]

    # ---- a human with a user token, speaking the Web API like Slack's clients do ----
    def call(self, method, token=ALICE_TOKEN, **params):
        data = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}).encode()
        req = urllib.request.Request(self.api + method, data=data, headers={
            "authorization": "Bearer " + token,
            "content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def node(self, script, timeout=30):
        """Runs a node snippet with @slack/web-api in scope as `slack` and API as `api`; returns
        its last stdout line parsed as JSON (the SDK itself, for the human's posts)."""
        prog = ("const slack = require('@slack/web-api');\n"
                f"const api = {json.dumps(self.api)};\n"
                "(async () => {\n" + script + "\n})().catch((e) => { console.error(e); process.exit(1); });\n")
        r = subprocess.run([node_bin(), "-e", prog], cwd=SERVER_DIR, capture_output=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("node failed: " + r.stderr.decode("utf-8", "replace")[-2000:])
        return json.loads(r.stdout.decode().strip().splitlines()[-1])


@pytest.fixture
def slack(tmp_path, request):
    s = SlackServer(tmp_path)
    yield s
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("---- slack-server.log ----\n" + s.log_text())
    s.stop()


def slack_connector(stack, slack, workdir, name="slack", **env_over):
    """trestle-slack as a harness Proc pointed at the test server (not yet started)."""
    from harness import Proc, bin_path
    path = bin_path("trestle-slack")
    if not path.exists():
        pytest.skip(f"{path} not built")
    env = dict(os.environ, TRESTLE_MQTT_URL=stack.broker.url, TRESTLE_CONNECTOR=name,
               TRESTLE_TOPIC_PREFIX=stack.prefix, TRESTLE_LOG_LEVEL="debug",
               TRESTLE_STATE_DIR=str(Path(workdir) / f"{name}-state"), SLACK_APP_TOKEN=APP_TOKEN,
               SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api)
    env.update(env_over)
    proc = Proc(name, [path], Path(workdir) / f"{name}.log", env=env)
    stack.procs.append(proc)
    return proc

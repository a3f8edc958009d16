# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-slack's early, clear errors for the usual set-up mistakes (wrong token type, missing
# scope named, bot not in channel) and its recovery when the Socket Mode link drops.

import subprocess

import pytest

from harness import DEFAULT_TIMEOUT, bin_path, wait_for
from slack_server import ALICE_TOKEN, SlackServer, slack_connector

pytestmark = pytest.mark.needs_router


@pytest.fixture
def slack(tmp_path):
    s = SlackServer(tmp_path)
    yield s
    s.stop()


def _status(stack, state, detail_part=None):
    st = stack.mqtt_client("status-watch")
    st.subscribe(stack.topic("status", "slack"))
    m, _ = st.wait_message(stack.topic("status", "slack"), lambda m: isinstance(m.json, dict) and
                           m.json.get("state") == state and
                           (detail_part is None or detail_part in m.json.get("detail", "")))
    return m.json


@pytest.mark.timeout(30)
def test_wrong_token_types_exit_78_naming_both(tmp_path):
    path = bin_path("trestle-slack")
    if not path.exists():
        pytest.skip("trestle-slack not built")
    env = {"SLACK_APP_TOKEN": "xoxb-secret-one", "SLACK_BOT_TOKEN": "xoxp-secret-two",
           "TRESTLE_MQTT_URL": "mqtt://127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(path)], env=env, capture_output=True, timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 78, err
    assert "SLACK_APP_TOKEN" in err and "xapp-" in err
    assert "SLACK_BOT_TOKEN" in err and "user token (xoxp-)" in err
    assert "secret" not in err


@pytest.mark.timeout(60)
def test_missing_scope_is_named(infra, slack, tmp_path):
    s = infra
    other = s.connector("other")
    s.start_router("[room r]\nslack = C0GENERAL\nother = c\n", connectors=(other,))
    proc = slack_connector(s, slack, tmp_path, SLACK_BOT_TOKEN="xoxb-test-noscope")
    proc.start()
    st = _status(s, "offline", "chat:write")
    assert "missing scope chat:write" in st["detail"]
    wait_for(lambda: "lacks scope chat:write" in proc.log_text(), DEFAULT_TIMEOUT, "log line")


@pytest.mark.timeout(60)
def test_bot_not_in_channel_is_reported(infra, slack, tmp_path):
    s = infra
    other = s.connector("other")
    s.start_router("[room r]\nslack = C0RANDOM\nother = c\n", connectors=(other,))
    proc = slack_connector(s, slack, tmp_path)
    proc.start()
    _status(s, "degraded", "not in a channel")
    wait_for(lambda: "bot not in channel #random (C0RANDOM)" in proc.log_text(),
             DEFAULT_TIMEOUT, "log line")
    # A delivery there is refused with a reason, not lost silently.
    other.send("c", text="hello?")
    ack = s.mqtt_client("acks")
    ack.subscribe(s.topic("ack", "slack"))
    m, _ = ack.wait_message(s.topic("ack", "slack"), lambda m: isinstance(m.json, dict))
    assert m.json["ok"] is False and "not in channel" in m.json.get("detail", "")


@pytest.mark.timeout(90)
def test_reconnects_after_the_link_drops(infra, slack, tmp_path):
    s = infra
    other = s.connector("other")
    s.start_router("[room r]\nslack = C0GENERAL\nother = c\n", connectors=(other,))
    proc = slack_connector(s, slack, tmp_path)
    proc.start()
    _status(s, "online")
    slack.control("drop")
    wait_for(lambda: slack.stats()["hellos"] >= 2, 30, "a new Socket Mode connection")
    _status(s, "online")
    r = slack.call("chat.postMessage", token=ALICE_TOKEN, channel="C0GENERAL", text="back")
    m, _ = other.mq.wait_message(other.out_topic, lambda m: isinstance(m.json, dict) and
                                 m.json.get("msgid") == r["ts"], 30)
    assert m.json["text"] == "back"
    assert proc.stop() == 0

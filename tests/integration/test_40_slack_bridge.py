# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-slack end to end: the Slack test server (tests/servers/slack) on one side, real
# Mosquitto, Redis and the router in the middle, and a harness connector ("other") on the other
# side of the room. Humans act through Slack's own SDK (@slack/web-api, user token).

import os

import pytest

from harness import DEFAULT_TIMEOUT, Proc, bin_path, wait_for
from slack_server import ALICE_TOKEN, APP_TOKEN, BOT_TOKEN, SlackServer

pytestmark = pytest.mark.needs_router

ROOMS = """[room coop]
slack = C0GENERAL
other = chan-1
"""


class Bridge:
    def __init__(self, stack, slack, other, status, proc):
        self.s, self.slack, self.other, self.status, self.proc = stack, slack, other, status, proc

    def human_post(self, text, **extra):
        """Alice posts with @slack/web-api and a user token; returns the API response."""
        args = dict(channel="C0GENERAL", text=text, **extra)
        return self.slack.node(
            f"const c = new slack.WebClient({ALICE_TOKEN!r}, {{slackApiUrl: api}});\n"
            f"console.log(JSON.stringify(await c.chat.postMessage({_js(args)})));")

    def human(self, method, **args):
        return self.slack.node(
            f"const c = new slack.WebClient({ALICE_TOKEN!r}, {{slackApiUrl: api}});\n"
            f"console.log(JSON.stringify(await c.apiCall({method!r}, {_js(args)})));")

    def out(self, pred=lambda e: True, timeout=DEFAULT_TIMEOUT):
        """The next out event on the other side matching pred (acked with a fresh msgid)."""
        m, _ = self.other.mq.wait_message(self.other.out_topic,
                                          lambda m: isinstance(m.json, dict) and pred(m.json),
                                          timeout)
        return m.json

    def slack_msg(self, pred, what="a message in Slack", timeout=DEFAULT_TIMEOUT):
        return self.slack.wait_message("C0GENERAL", pred, timeout, what)


def _js(obj):
    import json
    return json.dumps(obj)


@pytest.fixture
def bridge(infra, tmp_path):
    s = infra
    slack = SlackServer(tmp_path)
    other = s.connector("other")
    s.start_router(ROOMS, connectors=(other,))
    status = s.mqtt_client("status")
    status.subscribe(s.topic("status", "slack"))
    path = bin_path("trestle-slack")
    if not path.exists():
        slack.stop()
        pytest.skip(f"{path} not built")
    env = dict(os.environ, TRESTLE_MQTT_URL=s.broker.url, TRESTLE_CONNECTOR="slack",
               TRESTLE_TOPIC_PREFIX=s.prefix, TRESTLE_LOG_LEVEL="debug",
               TRESTLE_STATE_DIR=str(tmp_path / "slack-state"), SLACK_APP_TOKEN=APP_TOKEN,
               SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api)
    proc = Proc("slack", [path], tmp_path / "slack.log", env=env)
    s.procs.append(proc)
    proc.start()
    status.wait_message(s.topic("status", "slack"),
                        lambda m: isinstance(m.json, dict) and m.json.get("state") == "online")
    b = Bridge(s, slack, other, status, proc)
    try:
        yield b
    finally:
        proc.stop()
        slack.stop()
    # A clean stop exits 0, and a sanitizer build reports nothing (leaks included).
    log = proc.log_text()
    assert proc.returncode() == 0, log[-4000:]
    for bad in ("runtime error", "AddressSanitizer", "LeakSanitizer"):
        assert bad not in log, log[-6000:]


def _display(ev):
    return ev["author"].get("display") or ev["author"].get("name")


@pytest.mark.timeout(90)
def test_human_message_bridged_out_with_name_and_text(bridge):
    r = bridge.human_post("hello *world* from <#C0GENERAL>")
    ev = bridge.out(lambda e: e.get("msgid") == r["ts"])
    assert ev["type"] == "message"
    assert ev["channel"] == "C0GENERAL" and ev["dest"]["channel"] == "chan-1"
    assert ev["author"]["id"] == "U0ALICE"
    assert ev["author"]["name"] == "alice"
    assert ev["author"]["display"] == "alice.s"
    assert ev["author"]["avatar"].startswith("https://")
    assert ev["text"] == "hello **world** from #general"
    assert ev["network"] == "slack"


@pytest.mark.timeout(90)
def test_bridged_message_arrives_with_username_and_icon(bridge):
    sent = bridge.other.send("chan-1", text="Hi from **matrix**",
                             author={"id": "@carol:ex.org", "name": "carol", "display": "Carol",
                                     "avatar": "https://ex.org/carol.png"})
    m = bridge.slack_msg(lambda m: m.get("username") == "Carol")
    assert m["text"] == "Hi from *matrix*"
    assert m["icon_url"] == "https://ex.org/carol.png"
    assert m["bot_id"] == "B0TRESTLE"
    call = [c for c in bridge.slack.calls("chat.postMessage") if c["params"].get("username") == "Carol"][0]
    assert call["params"]["link_names"] == "false"
    # The bridge never echoes its own post back to the bus.
    marker = bridge.human_post("barrier")
    ev = bridge.out(lambda e: e.get("msgid") == marker["ts"])
    assert ev["text"] == "barrier"
    assert not [m for m in bridge.other.mq.all(bridge.other.out_topic)
                if isinstance(m.json, dict) and m.json.get("author", {}).get("display") == "Carol"]
    assert sent["id"]


@pytest.mark.timeout(120)
def test_edit_delete_thread_reaction_from_slack(bridge):
    r = bridge.human_post("original")
    ev = bridge.out(lambda e: e.get("msgid") == r["ts"])
    bridge.other.ack(ev, msgid="o-1")
    bridge.human("chat.update", channel="C0GENERAL", ts=r["ts"], text="changed _now_")
    ed = bridge.out(lambda e: e["type"] == "edit")
    assert ed["text"] == "changed _now_" and ed["dest"].get("target") == "o-1"
    bridge.other.ack(ed, msgid="o-1")
    bridge.human("reactions.add", channel="C0GENERAL", timestamp=r["ts"], name="thumbsup")
    re_ = bridge.out(lambda e: e["type"] == "reaction")
    assert re_["reaction"] == "\U0001F44D" and re_["dest"].get("target") == "o-1"
    assert not re_.get("removed")
    bridge.other.ack(re_)
    bridge.human("reactions.remove", channel="C0GENERAL", timestamp=r["ts"], name="thumbsup")
    rr = bridge.out(lambda e: e["type"] == "reaction")
    assert rr["removed"] is True
    bridge.other.ack(rr)
    reply = bridge.human_post("in the thread", thread_ts=r["ts"])
    rp = bridge.out(lambda e: e.get("msgid") == reply["ts"])
    assert rp["thread"] == r["ts"]
    assert rp["dest"].get("thread") == "o-1" or rp["dest"].get("reply_to") == "o-1"
    bridge.other.ack(rp, msgid="o-2")
    bridge.human("chat.delete", channel="C0GENERAL", ts=r["ts"])
    de = bridge.out(lambda e: e["type"] == "delete")
    assert de["dest"].get("target") == "o-1"


@pytest.mark.timeout(120)
def test_edit_delete_thread_reaction_into_slack(bridge):
    o = bridge.other
    m1 = o.send("chan-1", text="first from other")
    sm = bridge.slack_msg(lambda m: m["text"] == "first from other")
    o.send("chan-1", type="edit", target=m1["msgid"], msgid=m1["msgid"], text="first, edited")
    bridge.slack_msg(lambda m: m["ts"] == sm["ts"] and m["text"] == "first, edited", "the edit")
    o.send("chan-1", type="reaction", target=m1["msgid"], reaction="\U0001F44D")
    bridge.slack_msg(lambda m: m["ts"] == sm["ts"] and any(
        r["name"] == "+1" and "U0BOT" in r["users"] for r in m.get("reactions", [])), "reaction")
    o.send("chan-1", reply_to=m1["msgid"], thread=m1["msgid"], text="a reply")
    rep = bridge.slack_msg(lambda m: m["text"] == "a reply")
    assert rep["thread_ts"] == sm["ts"]
    o.send("chan-1", type="reaction", target=m1["msgid"], reaction="\U0001F44D", removed=True)
    bridge.slack_msg(lambda m: m["ts"] == sm["ts"] and not m.get("reactions"), "reaction gone")
    o.send("chan-1", type="delete", target=m1["msgid"])
    wait_for(lambda: not [m for m in bridge.slack.messages("C0GENERAL") if m["ts"] == sm["ts"]],
             DEFAULT_TIMEOUT, "the delete")


@pytest.mark.timeout(120)
def test_disconnect_envelope_mid_traffic_loses_nothing(bridge):
    bridge.slack.control("settings", {"disconnect_grace_ms": 1500})
    before = bridge.slack.stats()["hellos"]
    n = 20
    sent = bridge.slack.node(
        f"const c = new slack.WebClient({ALICE_TOKEN!r}, {{slackApiUrl: api}});\n"
        "const out = [];\n"
        f"for (let i = 0; i < {n}; i++) {{\n"
        "  if (i === 8) await fetch(api.replace(/api\\/$/, '_control/disconnect'), {method: 'POST',"
        " headers: {'content-type': 'application/json'}, body: JSON.stringify({reason: 'refresh_requested'})});\n"
        "  const r = await c.chat.postMessage({channel: 'C0GENERAL', text: 'n' + i});\n"
        "  out.push(r.ts);\n}\n"
        "console.log(JSON.stringify(out));")
    got = []
    for i in range(n):
        ev = bridge.out(lambda e: e["type"] == "message" and e["text"].startswith("n"))
        got.append(ev["msgid"])
    assert got == sent
    assert bridge.slack.stats()["hellos"] > before
    wait_for(lambda: bridge.slack.stats()["pending"] == 0, DEFAULT_TIMEOUT, "every envelope acked")
    # Still connected: one more message flows.
    r = bridge.human_post("after")
    bridge.out(lambda e: e.get("msgid") == r["ts"])


@pytest.mark.timeout(120)
def test_429_storm_delays_but_neither_drops_nor_reorders(bridge):
    bridge.slack.control("ratelimit", {"method": "chat.postMessage", "count": 3, "retry_after": 1})
    bridge.slack.control("ratelimit", {"method": "chat.postMessage", "count": 1, "retry_after": 1,
                                       "style": "ok_false"})
    texts = [f"storm {i}" for i in range(6)]
    for t in texts:
        bridge.other.send("chan-1", text=t)
    wait_for(lambda: len([m for m in bridge.slack.messages("C0GENERAL")
                          if m["text"].startswith("storm")]) == 6, 30, "six storm messages")
    seen = [m["text"] for m in bridge.slack.messages("C0GENERAL") if m["text"].startswith("storm")]
    assert seen == texts
    limited = [c for c in bridge.slack.calls("chat.postMessage") if c.get("ratelimited")]
    assert len(limited) == 4


@pytest.mark.timeout(90)
def test_mass_mentions_in_bridged_text_arrive_inert(bridge):
    bridge.other.send("chan-1", text="<!channel> and <!here|here> and <!subteam^S1> @everyone")
    m = bridge.slack_msg(lambda m: "everyone" in m["text"])
    assert "<!" not in m["text"]
    assert "&lt;!channel&gt;" in m["text"] or "&lt;\u2060!channel&gt;" in m["text"] or \
        "channel" in m["text"]
    assert "@everyone" not in m["text"]
    call = [c for c in bridge.slack.calls("chat.postMessage") if "everyone" in c["params"]["text"]][0]
    assert call["params"]["parse"] == "none" and call["params"]["link_names"] == "false"


@pytest.mark.timeout(90)
def test_mrkdwn_round_trip(bridge):
    original = "*bold* _it_ ~gone~ `co*de` <https://example.org/?a=1&amp;b=2|a link> 1 &lt; 2 &amp; 3"
    r = bridge.human_post(original)
    ev = bridge.out(lambda e: e.get("msgid") == r["ts"])
    assert ev["text"] == ("**bold** _it_ ~~gone~~ `` co*de `` "
                          "[a link](<https://example.org/?a=1&b=2>) 1 \\< 2 \\& 3")
    # The CommonMark goes back into Slack through the bridge as the same mrkdwn.
    bridge.other.send("chan-1", text=ev["text"])
    back = bridge.slack_msg(lambda m: m.get("username") and "bold" in m["text"])
    assert back["text"] == "*bold* _it_ ~gone~ `co*de` <https://example.org/?a=1&amp;b=2|a link> 1 &lt; 2 &amp; 3"


@pytest.mark.timeout(90)
def test_attachments_uploaded_when_fetchable_else_linked(bridge):
    src = bridge.slack.base + "/static/cat.txt"
    bridge.other.send("chan-1", text="two files",
                      attachments=[{"url": src, "name": "cat.txt", "mime": "text/plain"},
                                   {"url": "http://127.0.0.1:1/gone.png", "name": "gone.png"}])
    m = bridge.slack_msg(lambda m: m["text"].startswith("two files"))
    assert m.get("username") == "Alice"
    assert "<http://127.0.0.1:1/gone.png|gone.png>" in m["text"]
    assert "cat.txt" not in m["text"]
    shared = bridge.slack_msg(lambda m: m.get("subtype") == "file_share", "the shared file")
    f = shared["files"][0]
    assert f["name"] == "cat.txt"
    # Shared in the channel right after the text (the same thread as the text, here none).
    assert shared.get("thread_ts") is None and shared["ts"] > m["ts"]
    stored = bridge.slack.control("file?id=" + f["id"])
    import base64
    assert base64.b64decode(stored["data_b64"]) == b"file /static/cat.txt\n" * 8
    assert [c["method"] for c in bridge.slack.calls() if c["method"].startswith("files.")] == \
        ["files.getUploadURLExternal", "files.completeUploadExternal"]


@pytest.mark.timeout(90)
def test_topic_change_and_channel_join_bridged_out(bridge):
    """A topic set in Slack arrives as a topic event with the new topic; a member joining the
    channel arrives as a join event with who joined."""
    bridge.human("conversations.setTopic", channel="C0GENERAL", topic="Agenda: the *AGM*")
    ev = bridge.out(lambda e: e.get("type") == "topic")
    assert ev["channel"] == "C0GENERAL" and ev["author"]["id"] == "U0ALICE"
    assert "Agenda" in ev["text"] and "AGM" in ev["text"]
    bridge.slack.node(
        "const c = new slack.WebClient('xoxp-test-carol', {slackApiUrl: api});\n"
        "console.log(JSON.stringify(await c.conversations.join({channel: 'C0GENERAL'})));")
    ev = bridge.out(lambda e: e.get("type") == "join")
    assert ev["channel"] == "C0GENERAL" and ev["author"]["id"] == "U0CAROL"

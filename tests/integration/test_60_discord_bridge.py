# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-discord against the Discord test server, through real Mosquitto, Redis and the router
# to a harness connector: text both ways with the webhook's name and avatar; edit, delete, reply
# and reaction both ways; a dropped gateway resumes with nothing lost or doubled; an invalid
# session forces a fresh identify; a 429 is waited out without reordering; @everyone and
# <@&role> arrive inert; attachments are uploaded when fetchable, else linked.

import http.server
import threading
import urllib.request

import pytest

from discord_server import (ALICE, BOT, GENERAL, GUILD, DiscordConnector, DiscordServer)
from harness import DEFAULT_TIMEOUT, wait_for

pytestmark = pytest.mark.needs_router


@pytest.fixture
def world(stack):
    stack.start_infra()

    class W:
        pass
    w = W()
    w.srv = DiscordServer(stack.workdir, heartbeat_ms=1000)
    stack.procs.append(w.srv)
    w.srv.start_ready()
    w.alice = w.srv.user("alice-token")
    w.b = stack.connector("b", network="test")
    stack.start_router(f"[room coop]\ndc = {GENERAL}\nb = CB\n", connectors=[w.b])
    w.dc = DiscordConnector(stack, w.srv)
    w.dc.start()
    w.dc.wait_log("connected as @trestle")
    yield w
    w.dc.stop_clean()


def bot_posts(w):
    return [m for m in w.srv.history(GENERAL) if m.get("webhook_id")]


def identifies(w):
    return [e for e in w.srv.gateway_log() if e["what"] == "identify"]


@pytest.mark.timeout(90)
def test_text_both_ways_with_webhook_name_and_avatar(world):
    w = world
    w.b.send("CB", text="hello **there**",
             author={"id": "U-1", "name": "alice", "display": "Alice Smith",
                     "avatar": "https://example.org/alice.png"})
    (m,) = wait_for(lambda: bot_posts(w), DEFAULT_TIMEOUT, "the webhook post")
    assert m["author"]["username"] == "Alice Smith"
    assert m["avatar_url"] == "https://example.org/alice.png"
    assert m["content"] == "hello **there**"
    assert m["mention_everyone"] is False
    posted = w.alice.post(GENERAL, "from discord <@&1400000000000000001> **bold**")
    o = w.b.expect_one()
    assert o["msgid"] == posted["id"] and o["channel"] == GENERAL
    assert o["author"]["id"] == ALICE and o["author"]["display"] == "Alice Smith"
    assert o["text"] == "from discord @mods **bold**"
    # The webhook's own post never came back.
    end = w.alice.post(GENERAL, "end")
    assert w.b.expect_one()["msgid"] == end["id"]
    # One webhook, reused, and kept in the state dir.
    assert len(w.srv.control("/webhooks")) == 1
    assert (w.dc.state_dir / "dc.webhooks").exists()


@pytest.mark.timeout(120)
def test_edit_delete_reply_reaction_both_ways(world):
    w = world
    # Discord -> bus
    m = w.alice.post(GENERAL, "original")
    o = w.b.expect_one()
    assert o["msgid"] == m["id"]
    w.b.ack(o, "b-original")
    w.alice.edit(GENERAL, m["id"], "changed")
    e = w.b.expect_one()
    assert e["type"] == "edit" and e["target"] == m["id"] and e["text"] == "changed"
    assert e["dest"]["target"] == "b-original"
    w.b.ack(e)
    r = w.alice.post(GENERAL, "a reply", message_reference={"message_id": m["id"]})
    o = w.b.expect_one()
    assert o["msgid"] == r["id"] and o["reply_to"] == m["id"]
    assert o["dest"]["reply_to"] == "b-original"
    w.b.ack(o, "b-reply")
    w.alice.react(GENERAL, m["id"], "👍")
    o = w.b.expect_one()
    assert o["type"] == "reaction" and o["reaction"] == "👍" and o["target"] == m["id"]
    assert not o.get("removed") and o["dest"]["target"] == "b-original"
    w.b.ack(o)
    w.alice.react(GENERAL, m["id"], "👍", add=False)
    o = w.b.expect_one()
    assert o["type"] == "reaction" and o["removed"] is True
    w.b.ack(o)
    w.alice.delete(GENERAL, m["id"])
    o = w.b.expect_one()
    assert o["type"] == "delete" and o["target"] == m["id"]
    w.b.ack(o)

    # bus -> Discord
    src = w.b.send("CB", text="to be edited", author={"id": "U-2", "name": "bob"})
    (p,) = wait_for(lambda: bot_posts(w), DEFAULT_TIMEOUT, "the webhook post")
    w.b.send("CB", type="edit", target=src["msgid"], text="edited on the other side",
             author={"id": "U-2", "name": "bob"})
    wait_for(lambda: [x for x in bot_posts(w) if x["content"] == "edited on the other side"
                      and x["edited_timestamp"]], DEFAULT_TIMEOUT, "the edit")
    w.b.send("CB", text="replying", reply_to=src["msgid"], author={"id": "U-3", "name": "carol"})
    rep = wait_for(lambda: [x for x in bot_posts(w) if "replying" in x["content"]],
                   DEFAULT_TIMEOUT, "the reply")[0]
    first = rep["content"].split("\n")[0]
    assert first.startswith("> ") and f"https://discord.com/channels/{GUILD}/{GENERAL}/{p['id']}" in first
    w.b.send("CB", type="reaction", target=src["msgid"], reaction="🎉",
             author={"id": "U-3", "name": "carol"})
    wait_for(lambda: [x for x in w.srv.history(GENERAL) if x["id"] == p["id"] and
                      any(r["emoji"]["name"] == "🎉" for r in x.get("reactions", []))],
             DEFAULT_TIMEOUT, "the bot's reaction")
    w.b.send("CB", type="delete", target=src["msgid"], author={"id": "U-2", "name": "bob"})
    wait_for(lambda: not [x for x in w.srv.history(GENERAL) if x["id"] == p["id"]],
             DEFAULT_TIMEOUT, "the delete")
    # None of the bridge's own actions came back: the next event is the marker message.
    end = w.alice.post(GENERAL, "end")
    assert w.b.expect_one()["msgid"] == end["id"]


@pytest.mark.timeout(120)
def test_drop_mid_traffic_resumes_nothing_lost_or_doubled(world):
    w = world
    first = w.alice.post(GENERAL, "m0")
    assert w.b.expect_one()["msgid"] == first["id"]
    sent = []
    for i in range(1, 31):
        sent.append(w.alice.post(GENERAL, f"m{i}")["id"])
        if i == 10:
            w.srv.control("/gateway/drop", {"user": BOT})
        if i == 20:
            w.srv.control("/gateway/reconnect", {"user": BOT})
    got = w.b.expect(30, timeout=40)
    assert [o["msgid"] for o in got] == sent
    end = w.alice.post(GENERAL, "end")
    assert w.b.expect_one()["msgid"] == end["id"]
    log = w.srv.gateway_log()
    assert any(e["what"] == "resume" and e["path"] == "/resume-gateway" for e in log)
    assert len(identifies(w)) == 1


@pytest.mark.timeout(120)
def test_invalid_session_identifies_afresh_and_fetches_history(world):
    w = world
    first = w.alice.post(GENERAL, "before")
    assert w.b.expect_one()["msgid"] == first["id"]
    # The session is lost while the connector is away: the resume gets op 9, so it identifies
    # afresh and fetches what it missed from the channel history.
    w.srv.control("/gateway/forget", {"user": BOT})
    w.srv.control("/gateway/drop", {"user": BOT})
    missed = [w.alice.post(GENERAL, f"missed {i}")["id"] for i in range(3)]
    wait_for(lambda: len(identifies(w)) >= 2, DEFAULT_TIMEOUT, "a fresh identify")
    got = w.b.expect(3, timeout=30)
    assert [o["msgid"] for o in got] == missed
    # op 9 on a live connection: a fresh identify too.
    n = len(identifies(w))
    w.srv.control("/gateway/invalidate", {"user": BOT, "resumable": False})
    wait_for(lambda: len(identifies(w)) > n, DEFAULT_TIMEOUT, "identify after op 9")
    w.dc.wait_log("connected as @trestle")
    end = w.alice.post(GENERAL, "end")
    got = w.b.expect_one(timeout=20)
    assert got["msgid"] == end["id"]


@pytest.mark.timeout(120)
def test_429_delays_without_reordering(world):
    w = world
    # A webhook first, so the 429 hits the executes.
    w.b.send("CB", text="warm up", author={"id": "U-1", "name": "alice"})
    wait_for(lambda: bot_posts(w), DEFAULT_TIMEOUT, "the first post")
    w.srv.control("/ratelimit", {"method": "POST", "path": "^/webhooks/", "count": 2,
                                 "retry_after_ms": 600})
    texts = [f"n{i}" for i in range(10)]
    for t in texts:
        w.b.send("CB", text=t, author={"id": "U-1", "name": "alice"})
    wait_for(lambda: len(bot_posts(w)) >= 11, 30, "all posts")
    assert [m["content"] for m in bot_posts(w)[1:]] == texts
    reqs = w.srv.requests()
    assert sum(1 for r in reqs["requests"] if r["status"] == 429) == 2
    assert reqs["violations"] == []


@pytest.mark.timeout(90)
def test_mass_mentions_arrive_inert(world):
    w = world
    w.b.send("CB", text="@everyone look <@&1400000000000000001> and @here",
             author={"id": "U-1", "name": "mallory", "display": "everyone"})
    (m,) = wait_for(lambda: bot_posts(w), DEFAULT_TIMEOUT, "the webhook post")
    assert m["mention_everyone"] is False and m["mention_roles"] == [] and m["mentions"] == []
    assert "@everyone" not in m["content"] and "<@&" not in m["content"]
    assert "@here" not in m["content"]
    assert m["author"]["username"] != "everyone"


FILE_BYTES = bytes(range(256)) * 64 + b"--trestle-\r\n\r\nend"


class _FileHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/files/blob.bin":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(FILE_BYTES)))
        self.end_headers()
        self.wfile.write(FILE_BYTES)

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FileHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join()


@pytest.mark.timeout(90)
def test_attachments_uploaded_when_fetchable_else_linked(world, file_server):
    w = world
    src = file_server + "/files/blob.bin"
    gone = file_server + "/files/gone.png"
    w.b.send("CB", text="two files",
             attachments=[{"url": src, "name": "blob \"1\".bin", "mime": "image/png"},
                          {"url": gone, "name": "gone.png"}],
             author={"id": "U-9", "name": "dora"})
    (m,) = wait_for(lambda: bot_posts(w), DEFAULT_TIMEOUT, "the webhook post")
    assert m["author"]["username"] == "dora"
    assert m["content"].startswith("two files\n")
    assert f"[gone.png](<{gone}>)" in m["content"]
    assert "blob" not in m["content"]
    (a,) = m["attachments"]
    assert a["filename"] == "blob _1_.bin"
    assert a["content_type"] == "image/png"
    assert a["size"] == len(FILE_BYTES)
    with urllib.request.urlopen(a["url"], timeout=10) as r:
        assert r.read() == FILE_BYTES
    # Only a file, nothing to link: the upload alone, with no text.
    ev = w.b.event("CB", attachments=[{"url": src}], author={"id": "U-9", "name": "dora"})
    del ev["text"]
    w.b.publish(ev)
    p = wait_for(lambda: [x for x in bot_posts(w) if x["id"] != m["id"]], DEFAULT_TIMEOUT,
                 "the second post")[0]
    assert p["content"] == ""
    assert [x["filename"] for x in p["attachments"]] == ["blob.bin"]
    reqs = w.srv.requests()
    execs = [x for x in reqs["requests"] if x["method"] == "POST" and "/webhooks/" in x["path"]]
    assert len(execs) == 2 and all(x["status"] == 200 for x in execs)
    assert reqs["violations"] == []


@pytest.mark.timeout(90)
def test_threads_both_ways(world):
    """A message in a Discord thread arrives with thread = the thread (its starter message's
    id), mapped to the other side's copy of the starter; a bridged thread reply lands in the
    Discord thread of the bridged starter (the connector starts the thread when there is
    none yet)."""
    w = world
    # Discord -> bus
    m = w.alice.post(GENERAL, "thread starter")
    o = w.b.expect_one()
    w.b.ack(o, "b-starter")
    w.alice.thread(GENERAL, m["id"], "discussion")
    t = w.alice.post(m["id"], "inside the thread")
    o = w.b.expect_one()
    assert o["msgid"] == t["id"], o
    assert o["channel"] == GENERAL and o["thread"] == m["id"]
    assert o["dest"]["thread"] == "b-starter"
    w.b.ack(o, "b-in-thread")
    # bus -> Discord
    src = w.b.send("CB", text="a starter from b", author={"id": "U-2", "name": "bob"})
    (p,) = wait_for(lambda: [x for x in bot_posts(w) if x["content"] == "a starter from b"],
                    DEFAULT_TIMEOUT, "the bridged starter")
    w.b.send("CB", text="answer in the thread", thread=src["msgid"],
             author={"id": "U-3", "name": "carol"})
    got = wait_for(lambda: [x for x in w.srv.history(p["id"])
                            if x["content"] == "answer in the thread"],
                   DEFAULT_TIMEOUT, "the reply inside the Discord thread of the starter")
    assert got[0]["channel_id"] == p["id"] and got[0].get("webhook_id")

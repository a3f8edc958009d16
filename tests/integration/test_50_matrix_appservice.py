# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-matrix in appservice mode, end to end: the Node homeserver test double pushes
# transactions to the connector and takes its puppets' requests; Mosquitto, Redis and the router
# are real; a harness connector plays the other network. Text both ways with the author's
# name and avatar, edits/replies/threads/reactions/redactions both ways, @room and hostile
# HTML neutralised, 429 obeyed without a double, transactions replayed after a crash handled
# once, encrypted rooms refused and reported.

import subprocess

import pytest

from harness import DEFAULT_TIMEOUT, free_port, wait_for
from matrix_server import (SERVER_NAME, MatrixConnector, MatrixServer, appservice_env,
                           appservice_registration, bin_path)

pytestmark = pytest.mark.needs_router

BOT = f"@_trestle_bot:{SERVER_NAME}"
PUPPET = f"@_trestle_test__u-1:{SERVER_NAME}"  # network "test", author id "U-1"
AUTHOR = {"id": "U-1", "name": "alice", "display": "Alice Smith"}


class World:
    pass


@pytest.fixture
def world(stack):
    stack.start_infra()
    w = World()
    w.as_port = free_port()
    w.reg = appservice_registration(w.as_port)
    w.hs = MatrixServer(stack.workdir, users=["alice", "bob"], appservice=w.reg)
    stack.procs.append(w.hs)
    w.hs.start_ready()
    w.alice = w.hs.login("alice")
    w.room = w.alice.create_room(name="co-op", invite=[BOT])
    w.b = stack.connector("b", network="test")
    w.stack = stack
    rooms = f"[room coop]\nmx = {w.room}\nb = CB\n"
    stack.start_router(rooms, connectors=[w.b])
    w.mx = MatrixConnector(stack, w.hs, extra_env=appservice_env(w.reg, w.as_port))
    w.mx.start()
    w.mx.wait_log("connected as")
    wait_for(lambda: any(e["type"] == "m.room.member" and e["state_key"] == BOT and
                         e["content"]["membership"] == "join" for e in w.hs.state(w.room)),
             DEFAULT_TIMEOUT, "the bot joined the room")
    w.in_mq = stack.mqtt_client("in-watch")
    w.in_mq.subscribe(stack.topic("in", "mx"))
    yield w
    w.mx.stop_clean()


def matrix_events(w, pred, n=1, timeout=DEFAULT_TIMEOUT):
    """Waits for n events in the room timeline matching pred; returns them."""
    def got():
        evs = [e for e in w.hs.timeline(w.room) if pred(e)]
        return evs if len(evs) >= n else None
    return wait_for(got, timeout, "matrix events")


def from_b(w, text=None, **kw):
    """Sends from the other network; returns (event, the Matrix event it became)."""
    ev = w.b.send("CB", text=text, author=dict(AUTHOR, **kw.pop("author", {})), **kw)
    return ev


def by_body(body):
    return lambda e: e["type"] == "m.room.message" and e["content"].get("body") == body


@pytest.mark.timeout(60)
def test_text_both_ways_with_author_name_and_avatar(world):
    w = world
    avatar = f"{w.hs.url}/_test/static/alice.png"
    from_b(w, text="hello **co-op**", author={"avatar": avatar})
    (m,) = matrix_events(w, by_body("hello **co-op**"))
    assert m["sender"] == PUPPET
    assert m["content"]["formatted_body"] == "hello <strong>co-op</strong>"
    assert m["content"]["format"] == "org.matrix.custom.html"
    assert m["content"]["m.mentions"] == {}
    member = [e for e in w.hs.state(w.room)
              if e["type"] == "m.room.member" and e["state_key"] == PUPPET][0]
    assert member["content"]["membership"] == "join"
    assert member["content"]["displayname"] == "Alice Smith"
    mxc = member["content"]["avatar_url"]
    assert mxc.startswith("mxc://")
    png = w.hs.api("GET", f"/_matrix/media/v3/download/{mxc[6:]}")
    assert png == w.hs.api("GET", "/_test/static/x.png")
    # A second message reuses the puppet: no second upload or profile change.
    uploads = len([r for r in w.hs.requests() if r["path"].endswith("/upload")])
    from_b(w, text="second", author={"avatar": avatar})
    matrix_events(w, by_body("second"))
    assert len([r for r in w.hs.requests() if r["path"].endswith("/upload")]) == uploads

    # Matrix -> the other network, with alice's display name.
    eid = w.alice.text(w.room, "hi from *matrix*")
    out = w.b.expect_one()
    assert out["type"] == "message" and out["text"] == "hi from *matrix*"
    assert out["msgid"] == eid and out["channel"] == w.room
    assert out["author"]["id"] == w.alice.user_id and out["author"]["display"] == "alice"
    # The puppet's own messages never come back.
    assert all(m.json["author"]["id"] != PUPPET for m in w.in_mq.all(w.stack.topic("in", "mx")))


@pytest.mark.timeout(90)
def test_edit_reply_thread_reaction_redaction_from_other_network(world):
    w = world
    m1 = from_b(w, text="original")
    (orig,) = matrix_events(w, by_body("original"))
    e1 = orig["event_id"]
    from_b(w, type="edit", msgid=m1["msgid"], target=m1["msgid"], text="edited")
    (ed,) = matrix_events(w, lambda e: e["content"].get("m.relates_to", {}).get("rel_type") ==
                          "m.replace")
    assert ed["content"]["m.relates_to"]["event_id"] == e1
    assert ed["content"]["m.new_content"]["body"] == "edited"
    assert ed["content"]["m.mentions"] == {}
    from_b(w, text="a reply", reply_to=m1["msgid"])
    (rp,) = matrix_events(w, by_body("a reply"))
    assert rp["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == e1
    from_b(w, text="in thread", thread=m1["msgid"])
    (th,) = matrix_events(w, by_body("in thread"))
    assert th["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert th["content"]["m.relates_to"]["event_id"] == e1
    from_b(w, type="reaction", target=m1["msgid"], reaction="👍")
    (re,) = matrix_events(w, lambda e: e["type"] == "m.reaction")
    assert re["content"]["m.relates_to"] == {"rel_type": "m.annotation", "event_id": e1,
                                             "key": "👍"}
    from_b(w, type="reaction", target=m1["msgid"], reaction="👍", removed=True)
    matrix_events(w, lambda e: e["type"] == "m.room.redaction" and e["redacts"] ==
                  re["event_id"])
    from_b(w, type="delete", target=m1["msgid"])
    matrix_events(w, lambda e: e["type"] == "m.room.redaction" and e["redacts"] == e1)


@pytest.mark.timeout(90)
def test_edit_reply_thread_reaction_redaction_from_matrix(world):
    w = world
    e1 = w.alice.text(w.room, "root")
    o = w.b.expect_one()
    assert o["msgid"] == e1
    w.b.ack(o, msgid="b-1")
    w.alice.send(w.room, {"msgtype": "m.text", "body": "* root!",
                          "m.new_content": {"msgtype": "m.text", "body": "root!"},
                          "m.relates_to": {"rel_type": "m.replace", "event_id": e1}})
    o = w.b.expect_one()
    assert o["type"] == "edit" and o["text"] == "root!" and o["dest"]["target"] == "b-1"
    w.alice.text(w.room, "> <@alice:test.local> root\n\nreplying",
                 **{"m.relates_to": {"m.in_reply_to": {"event_id": e1}}})
    o = w.b.expect_one()
    assert o["text"] == "replying" and o["dest"]["reply_to"] == "b-1"
    w.b.ack(o, msgid="b-2")
    w.alice.text(w.room, "threaded", **{"m.relates_to": {
        "rel_type": "m.thread", "event_id": e1, "is_falling_back": True,
        "m.in_reply_to": {"event_id": e1}}})
    o = w.b.expect_one()
    assert o["dest"]["thread"] == "b-1" and "reply_to" not in o
    w.b.ack(o, msgid="b-3")
    rid = w.alice.send(w.room, {"m.relates_to": {"rel_type": "m.annotation", "event_id": e1,
                                                 "key": "🎉"}}, type="m.reaction")
    o = w.b.expect_one()
    assert o["type"] == "reaction" and o["reaction"] == "🎉" and o["dest"]["target"] == "b-1"
    w.alice.redact(w.room, rid)
    o = w.b.expect_one()
    assert o["type"] == "reaction" and o["removed"] is True and o["dest"]["target"] == "b-1"
    w.alice.redact(w.room, e1)
    o = w.b.expect_one()
    assert o["type"] == "delete" and o["dest"]["target"] == "b-1"
    w.alice.set_topic(w.room, "new topic")
    o = w.b.expect_one()
    assert o["type"] == "topic" and o["text"] == "new topic"


@pytest.mark.timeout(60)
def test_room_mention_and_hostile_html_neutralised(world):
    w = world
    hostile = "@room look <script>alert(1)</script> and <b>unbalanced <i onclick=x>"
    from_b(w, text=hostile)
    (m,) = matrix_events(w, lambda e: e["type"] == "m.room.message" and
                         "look" in e["content"]["body"])
    c = m["content"]
    assert c["m.mentions"] == {}
    fb = c["formatted_body"]
    assert "<script" not in fb and "&lt;script&gt;" in fb
    assert "<b>" not in fb and "<i " not in fb and "&lt;b&gt;" in fb
    assert "onclick" not in fb.replace("&lt;i onclick=x&gt;", "")


@pytest.mark.timeout(60)
def test_rate_limit_retry_after_obeyed_without_double(world):
    w = world
    # Warm the puppet up so the limit hits the send itself.
    from_b(w, text="warm")
    matrix_events(w, by_body("warm"))
    w.hs.ratelimit(r"/send/m\.room\.message/", count=2, retry_after_ms=1000)
    from_b(w, text="limited")
    (m,) = matrix_events(w, by_body("limited"), timeout=20)
    sends = [r for r in w.hs.requests() if "/send/m.room.message/" in r["path"]]
    limited = [r for r in sends if r["status"] == 429]
    assert len(limited) == 2
    # Every retry used the same txnId (the same path), and one event exists.
    assert {r["path"] for r in limited} == {sends[-1]["path"]}
    assert len([e for e in w.hs.timeline(w.room) if e["content"].get("body") == "limited"]) == 1


def in_events(w, msgid):
    return [m.json for m in w.in_mq.all(w.stack.topic("in", "mx")) if m.json.get("msgid") == msgid]


@pytest.mark.timeout(90)
def test_transaction_replayed_after_crash_handled_once(world):
    w = world
    e1 = w.alice.text(w.room, "before the crash")
    o = w.b.expect_one()
    assert o["msgid"] == e1
    wait_for(lambda: len(in_events(w, e1)) == 1, DEFAULT_TIMEOUT, "published once")
    txn = [t for t in w.hs.as_log()["log"] if e1 in t.get("event_ids", [])][-1]["txnId"]
    w.mx.kill9()
    # While the connector is down the homeserver keeps retrying the next transaction with the
    # same txnId.
    e2 = w.alice.text(w.room, "while down")
    wait_for(lambda: any(t["status"] == 0 for t in w.hs.as_log()["log"]), DEFAULT_TIMEOUT,
             "a failed push")
    w.mx.start()
    w.mx.wait_log("connected as")
    o = w.b.expect_one()
    assert o["msgid"] == e2
    wait_for(lambda: [t for t in w.hs.as_log()["log"] if e2 in t.get("event_ids", [])][-1]
             ["status"] == 200, DEFAULT_TIMEOUT, "the pushed transaction answered 200")
    tries = [t for t in w.hs.as_log()["log"] if e2 in t.get("event_ids", [])]
    assert len(tries) >= 2 and len({t["txnId"] for t in tries}) == 1
    # The homeserver never saw the 200 for the first transaction: it sends it again.
    assert w.hs.as_replay(txn) == 200
    e3 = w.alice.text(w.room, "after")
    o = w.b.expect_one()
    assert o["msgid"] == e3
    assert len(in_events(w, e1)) == 1 and len(in_events(w, e2)) == 1


@pytest.mark.timeout(60)
def test_encrypted_room_reported_not_bridged(world):
    w = world
    w.alice.call("PUT", f"/rooms/{w.room.replace('!', '%21').replace(':', '%3A')}"
                 "/state/m.room.encryption/", {"algorithm": "m.megolm.v1.aes-sha2"})
    matrix_events(w, lambda e: e["type"] == "m.room.message" and e["sender"] == BOT and
                  e["content"]["msgtype"] == "m.notice")
    w.mx.wait_log("encrypted")
    w.b.send("CB", text="secret", author=AUTHOR)
    topic = w.stack.topic("status", "mx")
    st = w.stack.mqtt_client("st")
    st.subscribe(topic)

    def degraded():
        m = st.latest(topic)
        return m is not None and m.json.get("state") == "degraded" and \
            "encrypted" in m.json.get("detail", "")
    wait_for(degraded, DEFAULT_TIMEOUT, "degraded status naming encryption")
    wait_for(lambda: "room is encrypted" in w.mx.log_text(), DEFAULT_TIMEOUT, "refused delivery")
    assert not [e for e in w.hs.timeline(w.room) if e["content"].get("body") == "secret"]


def test_registration_yaml():
    path = bin_path("trestle-matrix")
    if not path.exists():
        pytest.skip("trestle-matrix not built")
    env = {"MATRIX_SERVER_NAME": "example.org", "PATH": "/usr/bin:/bin"}
    r1 = subprocess.run([str(path), "registration"], env=env, capture_output=True, timeout=10)
    r2 = subprocess.run([str(path), "registration"], env=env, capture_output=True, timeout=10)
    assert r1.returncode == 0, r1.stderr
    y = r1.stdout.decode()
    assert "rate_limited: false" in y and "sender_localpart: \"_trestle_bot\"" in y
    assert "regex: '@_trestle_.*:example\\.org'" in y
    tok = [ln for ln in y.splitlines() if ln.startswith("as_token:")][0]
    assert len(tok) > 40 and tok not in r2.stdout.decode()


@pytest.mark.timeout(60)
def test_attachments_both_ways_and_topic(world):
    w = world
    png = w.hs.api("GET", "/_test/static/cat.png")
    from_b(w, text="look", attachments=[{"url": f"{w.hs.url}/_test/static/cat.png",
                                         "name": "cat.png", "mime": "image/png", "size": len(png)},
                                        {"url": "http://127.0.0.1:1/gone.pdf", "name": "gone.pdf"}])
    (img,) = matrix_events(w, lambda e: e["content"].get("msgtype") == "m.image")
    assert img["sender"] == PUPPET and img["content"]["body"] == "cat.png"
    assert img["content"]["info"]["mimetype"] == "image/png"
    assert w.hs.api("GET", f"/_matrix/media/v3/download/{img['content']['url'][6:]}") == png
    # The file that cannot be fetched arrives as a link after the text.
    (txt,) = matrix_events(w, lambda e: e["content"].get("body", "").startswith("look"))
    assert "http://127.0.0.1:1/gone.pdf" in txt["content"]["body"]
    # Matrix -> the other network: a fetchable URL of the uploaded file.
    up = w.hs.api("POST", "/_matrix/media/v3/upload?filename=doc.txt", raw=b"DOC",
                  ctype="text/plain", token=w.alice.token)
    eid = w.alice.send(w.room, {"msgtype": "m.file", "body": "doc.txt", "url": up["content_uri"],
                                "info": {"mimetype": "text/plain", "size": 3}})
    o = w.b.expect_one()
    assert o["msgid"] == eid and o["attachments"][0]["name"] == "doc.txt"
    assert w.hs.api("GET", o["attachments"][0]["url"][len(w.hs.url):]) == b"DOC"
    # A topic from the other network is set by the bot.
    from_b(w, type="topic", text="bridged topic")
    wait_for(lambda: any(e["type"] == "m.room.topic" and e["content"]["topic"] == "bridged topic"
                         and e["sender"] == BOT for e in w.hs.state(w.room)),
             DEFAULT_TIMEOUT, "topic set")


@pytest.mark.timeout(30)
def test_appservice_api_auth_ping_and_queries(world):
    w = world
    from matrix_server import MatrixError, http
    base = f"http://127.0.0.1:{w.as_port}/_matrix/app/v1"
    with pytest.raises(MatrixError) as e:
        http("PUT", base + "/transactions/x1", {"events": []})
    assert e.value.status == 401 and e.value.body["errcode"] == "M_UNAUTHORIZED"
    with pytest.raises(MatrixError) as e:
        http("PUT", base + "/transactions/x1", {"events": []}, token="wrong")
    assert e.value.status == 403 and e.value.body["errcode"] == "M_FORBIDDEN"
    with pytest.raises(MatrixError) as e:
        http("PUT", base + "/transactions/x2", {"nope": 1}, token=w.reg["hs_token"])
    assert e.value.status == 400
    assert http("PUT", base + "/transactions/x3", {"events": []}, token=w.reg["hs_token"]) == {}
    # The homeserver's ping reaches the connector.
    r = w.hs.api("POST", "/_matrix/client/v1/appservice/trestle/ping", {"transaction_id": "p1"},
                 token=w.reg["as_token"])
    assert r["duration_ms"] >= 0
    with pytest.raises(MatrixError) as e:
        http("GET", base + "/users/%40nobody%3Atest.local", token=w.reg["hs_token"])
    assert e.value.status == 404
    # Room queries: the bridge creates no rooms by alias (rooms come from the rooms file).
    with pytest.raises(MatrixError) as e:
        http("GET", base + "/rooms/%23anything%3Atest.local", token=w.reg["hs_token"])
    assert e.value.status == 404
    from_b(w, text="make a puppet")
    matrix_events(w, by_body("make a puppet"))
    assert http("GET", base + "/users/" + PUPPET.replace("@", "%40").replace(":", "%3A"),
                token=w.reg["hs_token"]) == {}

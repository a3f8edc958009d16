# SPDX-License-Identifier: AGPL-3.0-or-later
# trestle-matrix in bot mode (MATRIX_ACCESS_TOKEN): /sync long-poll from a since token kept in
# the state dir, authors shown as a name prefix. A restart in the middle of traffic loses
# nothing and doubles nothing; the bot's own posts never come back.

import pytest

from harness import DEFAULT_TIMEOUT, wait_for
from matrix_server import SERVER_NAME, MatrixConnector, MatrixServer

pytestmark = pytest.mark.needs_router

N = 30


@pytest.fixture
def world(stack):
    stack.start_infra()

    class W:
        pass
    w = W()
    w.hs = MatrixServer(stack.workdir, users=["alice", "trestlebot"])
    stack.procs.append(w.hs)
    w.hs.start_ready()
    w.alice = w.hs.login("alice")
    w.bot = w.hs.login("trestlebot")
    w.room = w.alice.create_room(name="co-op", invite=[w.bot.user_id])
    w.b = stack.connector("b", network="test")
    stack.start_router(f"[room coop]\nmx = {w.room}\nb = CB\n", connectors=[w.b])
    w.mx = MatrixConnector(stack, w.hs, extra_env={"MATRIX_ACCESS_TOKEN": w.bot.token})
    w.mx.start()
    w.mx.wait_log("connected as @trestlebot")
    wait_for(lambda: any(e["type"] == "m.room.member" and e["state_key"] == w.bot.user_id and
                         e["content"]["membership"] == "join" for e in w.hs.state(w.room)),
             DEFAULT_TIMEOUT, "the bot joined the room")
    # The initial sync is done once its since token is saved (history is not bridged).
    wait_for(lambda: (w.mx.state_dir / "mx.since").exists(), DEFAULT_TIMEOUT, "initial sync")
    yield w
    w.mx.stop_clean()


@pytest.mark.timeout(60)
def test_bot_text_both_ways_with_name_prefix(world):
    w = world
    w.b.send("CB", text="hello <b>there</b> @room",
             author={"id": "U-1", "name": "alice", "display": "Alice Smith"})

    def posted():
        return [e for e in w.hs.timeline(w.room) if e["type"] == "m.room.message" and
                e["sender"] == w.bot.user_id]
    (m,) = wait_for(posted, DEFAULT_TIMEOUT, "the bot's post")
    c = m["content"]
    assert c["body"].startswith("<Alice Smith> hello")
    assert c["m.mentions"] == {}
    assert "&lt;Alice Smith&gt;" in c["formatted_body"] and "<b>" not in c["formatted_body"]
    eid = w.alice.text(w.room, "from matrix")
    o = w.b.expect_one()
    assert o["msgid"] == eid and o["text"] == "from matrix"


@pytest.mark.timeout(120)
def test_bot_restart_mid_traffic_nothing_lost_nothing_doubled(world):
    w = world
    # Make sure the connector is past its initial sync (history is not bridged).
    first = w.alice.text(w.room, "m0")
    assert w.b.expect_one()["msgid"] == first
    sent = []
    for i in range(1, N + 1):
        sent.append(w.alice.text(w.room, f"m{i}"))
        if i == N // 3:
            w.mx.kill9()
        if i == 2 * N // 3:
            w.mx.start()
    got = w.b.expect(N, timeout=30)
    assert [o["msgid"] for o in got] == sent
    # Barrier: the next thing to arrive is the next message, not a copy of an earlier one.
    end = w.alice.text(w.room, "end")
    assert w.b.expect_one()["msgid"] == end
    # And after a clean stop and start too.
    w.mx.stop()
    more = [w.alice.text(w.room, f"n{i}") for i in range(5)]
    w.mx.start()
    got = w.b.expect(5, timeout=20)
    assert [o["msgid"] for o in got] == more
    end = w.alice.text(w.room, "end2")
    assert w.b.expect_one()["msgid"] == end
    assert SERVER_NAME in w.bot.user_id

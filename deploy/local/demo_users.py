#!/usr/bin/python3
# SPDX-License-Identifier: AGPL-3.0-or-later
# Two ordinary chat users for the local demo: alice on IRC (a raw socket) and bob on XMPP
# (Debian's python3-slixmpp). alice says a line in #demo, bob must see it in the XMPP room
# with alice's name; bob answers, and alice must see the answer on IRC with bob's name.
# Exit 0 when both crossed, 1 otherwise. Every wait is bounded.
#   demo_users.py IRC_PORT XMPP_PORT CA_FILE BOB_PASSWORD [TIMEOUT_S]

import asyncio
import socket
import ssl
import sys
import threading
import time

ROOM = "demo@conference.localhost"
CHANNEL = "#demo"


class Irc:
    def __init__(self, port, nick):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.lines = []
        self.nick = nick
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :Trestle demo user")

    def send(self, line):
        self.s.sendall(line.encode() + b"\r\n")

    def pump(self, until, deadline):
        while time.monotonic() < deadline:
            for ln in self.lines:
                if until(ln):
                    return ln
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.s.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return None
            self.buf += data
            while b"\r\n" in self.buf:
                raw, self.buf = self.buf.split(b"\r\n", 1)
                ln = raw.decode("utf-8", "replace")
                if ln.startswith("PING"):
                    self.send("PONG" + ln[4:])
                self.lines.append(ln)
        return None


def xmpp_user(port, ca, password, got, ready, out, stop):
    import slixmpp
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    x = slixmpp.ClientXMPP("bob@localhost/demo", password)
    x.ssl_context = ssl.create_default_context(cafile=ca)
    x.register_plugin("xep_0045")

    async def start(_):
        x.send_presence()
        await x.plugin["xep_0045"].join_muc_wait(ROOM, "bob", maxchars=0)
        ready.set()

    def message(msg):
        if msg["type"] == "groupchat" and msg["mucnick"] != "bob":
            got.append(msg["body"])

    async def sender():
        while not stop.is_set():
            if out:
                x.send_message(mto=ROOM, mbody=out.pop(0), mtype="groupchat")
            await asyncio.sleep(0.05)

    x.add_event_handler("session_start", start)
    x.add_event_handler("groupchat_message", message)
    x.connect(("127.0.0.1", port))
    loop.create_task(sender())

    async def until_stop():
        while not stop.is_set():
            await asyncio.sleep(0.1)
        try:
            await asyncio.wait_for(x.disconnect(), 5)
        except Exception:  # gone already: nothing to wait for
            pass
        for t in asyncio.all_tasks():
            if t is not asyncio.current_task():
                t.cancel()
    loop.run_until_complete(until_stop())


def main():
    irc_port, xmpp_port, ca, bob_pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30
    deadline = time.monotonic() + timeout
    got, out = [], []
    ready, stop = threading.Event(), threading.Event()
    t = threading.Thread(target=xmpp_user, args=(xmpp_port, ca, bob_pw, got, ready, out, stop),
                         daemon=True)
    t.start()
    ok = False
    try:
        irc = Irc(irc_port, "alice")
        if not irc.pump(lambda ln: " 001 " in ln, deadline):
            print("demo: alice could not log in to IRC")
            return 1
        irc.send(f"JOIN {CHANNEL}")
        if not irc.pump(lambda ln: " 366 " in ln, deadline):
            print("demo: alice could not join #demo")
            return 1
        if not ready.wait(max(0, deadline - time.monotonic())):
            print("demo: bob could not join the XMPP room")
            return 1
        irc.send(f"PRIVMSG {CHANNEL} :hello from IRC")
        print("  alice on IRC #demo:             hello from IRC")
        while time.monotonic() < deadline and not any("hello from IRC" in b for b in got):
            time.sleep(0.05)
        seen = [b for b in got if "hello from IRC" in b]
        if not seen or "alice" not in seen[0]:
            print(f"demo: bob did not see alice's line in {ROOM} (got {got!r})")
            return 1
        print(f"  bob in {ROOM} sees:  {seen[0]}")
        out.append("hello from XMPP")
        print(f"  bob in {ROOM}:       hello from XMPP")
        ln = irc.pump(lambda ln: "PRIVMSG #demo" in ln and "hello from XMPP" in ln, deadline)
        if not ln or "bob" not in ln.replace("\u200d", ""):
            print("demo: alice did not see bob's answer on IRC")
            return 1
        print(f"  alice on IRC sees:             {ln.split(' :', 1)[1]}")
        ok = True
        irc.send("QUIT :demo done")
    finally:
        stop.set()
        t.join(5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

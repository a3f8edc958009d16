# SPDX-License-Identifier: AGPL-3.0-or-later
# The Discord test server checked by discord.js (pinned in tests/servers/discord/
# package-lock.json): a bot account logs in through /gateway/bot and the Gateway, receives a
# human's message, sends, replies, reacts, edits, deletes, uses a webhook, resumes after a
# drop, follows op 7 and op 9, waits out a 429, and gets the real errors for a bad token and a
# disallowed intent (sdk_check.js). If discord.js cannot use the test server, it is wrong.

import subprocess

import pytest

from discord_server import SERVER_DIR, DiscordServer


@pytest.mark.timeout(240)
def test_discord_js_accepts_the_test_server(tmp_path):
    srv = DiscordServer(tmp_path, heartbeat_ms=2000)
    srv.start_ready()
    try:
        r = subprocess.run(["node", str(SERVER_DIR / "sdk_check.js"), srv.url], cwd=SERVER_DIR,
                           capture_output=True, timeout=200)
        out = r.stdout.decode("utf-8", "replace")
        assert r.returncode == 0, out[-4000:] + r.stderr.decode("utf-8", "replace")[-4000:]
        assert "ALL OK" in out
        for step in ("receives MESSAGE_CREATE with content",
                     "webhook create, execute with username, edit, delete, list",
                     "resume after a dropped connection replays missed dispatches",
                     "op 7 reconnect resumes", "op 9 invalid session re-identifies",
                     "429 with retry_after honoured by discord.js",
                     "disallowed intent closes with 4014"):
            assert f"ok {step}" in out
    finally:
        srv.stop()

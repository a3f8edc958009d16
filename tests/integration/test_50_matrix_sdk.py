# SPDX-License-Identifier: AGPL-3.0-or-later
# The Matrix homeserver test double checked by the official matrix-js-sdk (pinned in
# tests/servers/matrix/package-lock.json): two human users log in, sync, send, edit, reply,
# thread, react, redact, set the topic, upload and download media (sdk_check.mjs). If the SDK
# cannot use the test server, the test server is wrong.

import subprocess

import pytest

from matrix_server import SERVER_DIR, MatrixServer


@pytest.mark.timeout(120)
def test_matrix_js_sdk_accepts_the_test_server(tmp_path):
    hs = MatrixServer(tmp_path, users=["alice", "bob"])
    hs.start_ready()
    try:
        r = subprocess.run(["node", str(SERVER_DIR / "sdk_check.mjs"), hs.url, "alice:pw", "bob:pw"],
                           cwd=SERVER_DIR, capture_output=True, timeout=90)
        out = r.stdout.decode("utf-8", "replace")
        assert r.returncode == 0, out[-4000:] + r.stderr.decode("utf-8", "replace")[-4000:]
        assert "ALL OK" in out
        for step in ("edit relates to the original", "reply points at the original",
                     "reaction key arrives", "original is redacted for bob",
                     "authenticated media download", "same txnId gives the same event"):
            assert f"ok {step}" in out
    finally:
        hs.stop()

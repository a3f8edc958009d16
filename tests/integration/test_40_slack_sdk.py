# SPDX-License-Identifier: AGPL-3.0-or-later
# The Slack test server checked with Slack's own SDKs from npm (@slack/web-api,
# @slack/socket-mode): node's test runner over tests/servers/slack/sdk_check.test.js.

import subprocess

import pytest

from slack_server import SERVER_DIR, ensure_node_modules, node_bin


@pytest.mark.timeout(180)
def test_slack_server_accepted_by_official_sdks():
    ensure_node_modules()
    r = subprocess.run([node_bin(), "--test", "sdk_check.test.js"], cwd=SERVER_DIR,
                       capture_output=True, timeout=150)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out[-6000:] + r.stderr.decode("utf-8", "replace")[-2000:]
    assert "# fail 0" in out
    assert "# pass 7" in out

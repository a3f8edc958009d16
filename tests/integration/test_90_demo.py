# SPDX-License-Identifier: AGPL-3.0-or-later
# The README's demo must work: runs deploy/local/demo.sh --check (Mosquitto, Redis, the router,
# ngircd, Prosody, both connectors, alice on IRC and bob on XMPP) on free loopback
# ports in a temporary folder, bounded in time.
import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = os.environ.get("TRESTLE_BUILD", "build")
TIMEOUT_S = 120


def _kill_leftovers(pidfile):
    """After a timeout: stop whatever the demo started and did not stop (ids in its pid file)."""
    try:
        lines = pidfile.read_text().split("\n")
    except OSError:
        return
    for line in lines:
        if line.split() and line.split()[0].isdigit():
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except OSError:
                pass


def test_demo_check(tmp_path):
    build = Path(BUILD) if Path(BUILD).is_absolute() else ROOT / BUILD
    for b in ("trestle-ctl", "trestle-irc", "trestle-xmpp"):
        if not os.access(build / "bin" / b, os.X_OK):
            pytest.skip(f"{build}/bin/{b} is not built")
    env = dict(os.environ)
    env.update({
        "TRESTLE_BUILD": str(build),
        "TRESTLE_DEMO_DIR": str(tmp_path / "demo"),
        # any free ports: the tests run beside other stacks, a user's demo among them
        "TRESTLE_DEMO_MQTT_PORT": "0",
        "TRESTLE_DEMO_REDIS_PORT": "0",
        "TRESTLE_DEMO_METRICS_PORT": "0",
        "TRESTLE_DEMO_IRC_PORT": "0",
        "TRESTLE_DEMO_XMPP_PORT": "0",
        "TRESTLE_DEMO_WAIT": "30",
    })
    proc = subprocess.Popen([str(ROOT / "deploy/local/demo.sh"), "--check"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the script's trap stop the stack; then make sure.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        _kill_leftovers(tmp_path / "demo" / "pids")
        pytest.fail(f"demo.sh --check did not finish in {TIMEOUT_S}s:\n{out}")
    assert proc.returncode == 0, f"demo.sh --check exited {proc.returncode}:\n{out}"
    assert "demo check: ok" in out
    # Both directions crossed, each shown on the far network with the speaker's name.
    assert "bob in demo@conference.localhost sees:  <alice> hello from IRC" in out, out
    assert "hello from XMPP" in out.split("alice on IRC sees:", 1)[-1], out
    # Nothing the demo started is left running.
    for line in (tmp_path / "demo" / "pids").read_text().split("\n"):
        assert not line.strip(), f"pid file not emptied: {line}"

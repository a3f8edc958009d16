# SPDX-License-Identifier: AGPL-3.0-or-later
# The recipe's Redis service, for real: compose.yml's command (password from the redis_url
# secret, configuration written to memory, never on a command line) and its health check, run
# here with a local redis-server (paths and port moved, the image's entry point replaced).
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from harness import DEFAULT_TIMEOUT, Proc, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SVC = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]["redis"]


def localise(cmd, d, port):
    cmd = cmd.replace("$$", "$").replace("/run/secrets/redis_url", str(d / "redis_url"))
    cmd = cmd.replace("/dev/shm/redis.conf", str(d / "redis.conf"))
    cmd = cmd.replace("dir /data", f"dir {d / 'data'}").replace("chown redis:redis", "true")
    cmd = re.sub(r"exec docker-entrypoint\.sh redis-server (\S+)",
                 rf"exec redis-server \1 --port {port} --bind 127.0.0.1", cmd)
    return cmd.replace("redis-cli ping", f"redis-cli -p {port} ping")


@pytest.fixture
def redis(tmp_path):
    (tmp_path / "data").mkdir()
    pw = uuid.uuid4().hex
    (tmp_path / "redis_url").write_text(f"redis://:{pw}@redis:6379/0\n")
    port = free_port()
    assert SVC["entrypoint"] == ["/bin/sh", "-c"]
    cmd = localise(SVC["command"][0], tmp_path, port)
    p = Proc("recipe-redis", ["/bin/sh", "-c", cmd], tmp_path / "log")
    p.start()
    try:
        def up():
            p._check_alive()
            r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                               text=True, timeout=5, env=dict(os.environ, REDISCLI_AUTH=pw))
            return r.stdout.strip() == "PONG"
        wait_for(up, DEFAULT_TIMEOUT, "the recipe's redis")
        yield {"port": port, "pw": pw, "dir": tmp_path, "proc": p}
    finally:
        p.stop()


def test_password_required_and_persistence(redis):
    port = str(redis["port"])
    r = subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True,
                       timeout=10)
    assert "NOAUTH" in r.stdout + r.stderr
    env = dict(os.environ, REDISCLI_AUTH=redis["pw"])
    r = subprocess.run(["redis-cli", "-p", port, "config", "get", "appendonly"],
                       capture_output=True, text=True, timeout=10, env=env)
    assert r.stdout.split() == ["appendonly", "yes"]
    cmdline = Path(f"/proc/{redis['proc'].pid}/cmdline").read_bytes()
    assert redis["pw"].encode() not in cmdline
    assert (redis["dir"] / "redis.conf").stat().st_mode & 0o077 == 0


def test_healthcheck(redis):
    test = SVC["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    cmd = localise(test[1], redis["dir"], redis["port"])
    assert subprocess.run(["/bin/sh", "-c", cmd], timeout=30).returncode == 0
    (redis["dir"] / "redis_url").write_text("redis://:wrong@redis:6379/0\n")
    assert subprocess.run(["/bin/sh", "-c", cmd], timeout=30,
                          capture_output=True).returncode != 0


def test_refuses_url_without_password(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "redis_url").write_text("redis://redis:6379/0\n")
    cmd = localise(SVC["command"][0], tmp_path, free_port())
    r = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78 and "redis_url" in r.stderr

# SPDX-License-Identifier: AGPL-3.0-or-later
# `docker-compose config` (Debian's docker-compose) on every combination of the core files and
# the connector overlays, both ways the recipe runs: Swarm (compose.yml + compose.swarm.yml, as
# abra does) and the local trial (compose.yml + overlays + compose.local.yml). The environment is
# generated from .env.sample (every block switched on) and abra.sh's exports, and compose must
# not find a single variable unset: every setting the files use is documented there.
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipe"))
import lint  # noqa: E402

ROOT = lint.ROOT
OVERLAYS = sorted(p.name for p in ROOT.glob("compose.*.yml")
                  if p.name not in ("compose.swarm.yml", "compose.local.yml"))
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None,
                                reason="docker-compose missing (deploy/deps.sh installs it)")


def generated_env(path):
    """Every variable of .env.sample, commented-out blocks included, plus abra.sh's exports."""
    lines = []
    for line in (ROOT / ".env.sample").read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if not m or m.group(1) == "COMPOSE_FILE":
            continue
        value = re.sub(r"\s+#.*$", "", m.group(2)).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        lines.append(f"{m.group(1)}={value}")
    for m in re.finditer(r"^export\s+([A-Z][A-Z0-9_]*)=(\S*)", (ROOT / "abra.sh").read_text(),
                         re.M):
        lines.append(f"{m.group(1)}={m.group(2)}")
    lines.append("STACK_NAME=trestle_example_com")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    return generated_env(tmp_path_factory.mktemp("env") / "env")


def combos():
    for n in range(len(OVERLAYS) + 1):
        yield from itertools.combinations(OVERLAYS, n)


def config(env_file, files):
    argv = [COMPOSE, "--project-directory", str(ROOT), "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(ROOT / f)]
    return subprocess.run(argv + ["config"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def check(env_file, files, overlays):
    r = config(env_file, files)
    assert r.returncode == 0, f"{' '.join(files)}:\n{r.stderr}"
    unset = [ln for ln in r.stderr.splitlines() if "variable is not set" in ln]
    assert not unset, f"{' '.join(files)}: undocumented variables:\n" + "\n".join(unset)
    cfg = yaml.safe_load(r.stdout)
    services = cfg["services"]
    want = {"app", "mosquitto", "redis"} | {o.split(".")[1] for o in overlays}
    assert set(services) == want
    for name, s in services.items():
        assert s.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        assert "internal" in s.get("networks", {}), f"{name}: not on the private network"
        # Every secret is read through a NAME_FILE variable, never given in the environment.
        for k, v in (s.get("environment") or {}).items():
            assert not re.search(r"(TOKEN|PASSWORD|_URL)$", k) or k.endswith("_API_URL") or \
                k in ("MATRIX_HOMESERVER_URL", "MATRIX_AS_URL"), f"{name}: {k} not as _FILE"
            if k.endswith("_FILE") and str(v).startswith("/run/secrets/"):
                assert Path(v).name in [x["source"] for x in s.get("secrets", [])], \
                    f"{name}: {k}={v} but that secret is not mounted"
    # The broker learns the login of every connector present.
    mq = [x["source"] for x in services["mosquitto"]["secrets"]]
    for o in overlays:
        assert f"mqtt_{o.split('.')[1]}" in mq
    return cfg


@pytest.mark.timeout(300)
def test_swarm_every_combination(env_file):
    n = 0
    for overlays in combos():
        cfg = check(env_file, ["compose.yml", "compose.swarm.yml", *overlays], overlays)
        for key, sec in cfg.get("secrets", {}).items():
            assert sec.get("external"), f"{key}: not external on Swarm"
            assert sec["name"] == f"trestle_example_com_{key}_v1", sec
        for key, conf in cfg.get("configs", {}).items():
            assert conf["name"].startswith(f"trestle_example_com_{key}_v1"), conf
        n += 1
    assert n == 2 ** len(OVERLAYS)


@pytest.mark.timeout(300)
def test_local_every_combination(env_file):
    for overlays in combos():
        cfg = check(env_file, ["compose.yml", *overlays, "compose.local.yml"], overlays)
        for key, sec in cfg.get("secrets", {}).items():
            assert not sec.get("external"), f"{key}: still external in the local trial"
            assert Path(sec["file"]).parent == ROOT / "deploy/local/secrets", sec
        # docker-compose ignores configs without Swarm: the files are bind-mounted instead.
        assert any(v.endswith(":/trestle-local:ro") or "/trestle-local" in str(v)
                   for v in cfg["services"]["mosquitto"]["volumes"])


def test_local_secrets_cover_every_secret(tmp_path):
    """deploy/local/secrets.sh writes a file for every secret any compose file names."""
    r = subprocess.run([str(ROOT / "deploy/local/secrets.sh"), "--dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = set()
    for p in ROOT.glob("compose*.yml"):
        names |= set((yaml.safe_load(p.read_text()).get("secrets") or {}))
    written = {p.name for p in (tmp_path / "s").iterdir()}
    assert names <= written, names - written
    local = set(yaml.safe_load((ROOT / "compose.local.yml").read_text())["secrets"])
    assert names == local, f"compose.local.yml lacks {names - local}, extra {local - names}"
    for n in names:
        v = (tmp_path / "s" / n).read_text().strip()
        if n.startswith("mqtt_"):
            assert re.fullmatch(r"mqtt://[a-z0-9_][a-z0-9_-]*:[0-9a-f]{32}@mosquitto:1883", v), v
    assert (tmp_path / "s" / "mqtt_router").read_text().startswith("mqtt://_router:")
    # Kept on a second run, so edits survive.
    before = (tmp_path / "s" / "redis_url").read_text()
    subprocess.run([str(ROOT / "deploy/local/secrets.sh"), "--dir", str(tmp_path / "s")],
                   capture_output=True, check=True, timeout=60)
    assert (tmp_path / "s" / "redis_url").read_text() == before

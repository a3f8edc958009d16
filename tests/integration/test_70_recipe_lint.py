# SPDX-License-Identifier: AGPL-3.0-or-later
# The repository as a Co-op Cloud recipe, checked offline: abra's lint rules R001-R016
# (tests/recipe/lint.py; R006 and R013 need the network and are reported skipped) and Trestle's
# own rules (config versions exported by abra.sh, secret names, overlays, real health checks,
# image tags as in deploy/images.env). Each rule is also shown to catch a broken recipe.
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipe"))
import lint  # noqa: E402

ROOT = lint.ROOT
ROWS = {r[0]: r for r in lint.lint(ROOT)}


@pytest.mark.parametrize("ref", sorted(ROWS))
def test_rule(ref):
    _, desc, status, detail = ROWS[ref]
    if ref in ("R006", "R013"):
        assert status == "skipped"
        pytest.skip(f"{ref} {desc}: needs the network")
    assert status == "satisfied", f"{ref} {desc}: {detail}"


RECIPE_FILES = ["compose*.yml", ".env.sample", "abra.sh", "README.md", "deploy/images.env"]


@pytest.fixture
def copy(tmp_path):
    """A copy of the recipe's files to break."""
    for pat in RECIPE_FILES:
        for p in ROOT.glob(pat):
            dst = tmp_path / p.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dst)
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def status_of(root, ref):
    return {r[0]: r for r in lint.lint(root)}[ref][2]


# (rule, file, text in it, replacement): each must turn the rule from satisfied to failed.
BREAKS = [
    ("R001", "compose.irc.yml", 'version: "3.8"', 'version: "3.3"'),
    ("R002", "compose.yml", "    healthcheck:\n      # GET /healthz",
     "    x-nohealth:\n      # GET /healthz"),
    ("R003", "compose.yml", "image: redis:7.2.4", "image: redis"),
    ("R004", "compose.yml", "image: redis:7.2.4", "image: redis:latest"),
    ("R005", "compose.yml", "image: redis:7.2.4", "image: redis:bookworm"),
    ("R007", "README.md", "* **Email**: N/A", "* **Email**: ?"),
    ("R009", "compose.yml", "  app:\n", "  router:\n"),
    ("R010", "compose.matrix.yml", '"traefik.enable=true"', '"traefik.enable=false"'),
    ("R011", "compose.yml", "    image: redis:7.2.4\n", ""),
    ("R012", "abra.sh", "export MOSQUITTO_ACL_VERSION=v1\n", ""),
    ("R015", "compose.slack.yml", "  slack_app:\n    external", "  slack_app_token:\n    external"),
    ("T001", "abra.sh", "export ROOMS_VERSION=v1\n", ""),
    ("T002", "compose.discord.yml", "${STACK_NAME}_discord_bot_${SECRET_DISCORD_BOT_VERSION}",
     "${STACK_NAME}_discord_bot"),
    ("T002", ".env.sample", "#SECRET_XMPP_PW_VERSION=v1", "#XMPP_PW=v1"),
    ("T003", ".env.sample", ":compose.slack.yml", ":compose.slak.yml"),
    ("T004", "compose.yml", 'test: ["CMD", "/usr/local/bin/trestle-ctl", "health"]',
     'test: ["CMD", "true"]'),
    ("T004", "compose.xmpp.yml", 'test: ["CMD", "/usr/local/bin/trestle-ctl", "health"]',
     'test: ["CMD-SHELL", "exit 0"]'),
    ("T005", "deploy/images.env", "TRESTLE_VERSION=0.1.0", "TRESTLE_VERSION=0.2.0"),
    ("T005", "compose.yml", "image: eclipse-mosquitto:2.0.18", "image: eclipse-mosquitto:2.0.17"),
]


@pytest.mark.parametrize("ref,fname,old,new", BREAKS,
                         ids=[f"{b[0]}-{b[1]}" for b in BREAKS])
def test_rule_catches_breakage(copy, ref, fname, old, new):
    assert status_of(copy, ref) == "satisfied"
    edit(copy / fname, old, new)
    assert status_of(copy, ref) == "failed"


def test_healthcheck_is_real_table():
    cases = [
        ({"test": ["CMD", "true"]}, False),
        ({"test": ["CMD-SHELL", "true"]}, False),
        ({"test": "exit 0"}, False),
        ({"test": ["NONE"]}, False),
        ({"test": ["CMD", "/usr/local/bin/trestle-ctl", "health"]}, True),
        ({"disable": True}, False),
        (None, False),
        ({"test": ["CMD-SHELL", "redis-cli ping | grep -q PONG"]}, True),
    ]
    for hc, want in cases:
        assert lint.healthcheck_is_real(hc) is want, hc

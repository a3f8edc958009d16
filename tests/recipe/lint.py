#!/usr/bin/python3
# SPDX-License-Identifier: AGPL-3.0-or-later
# An offline recipe linter for this repository as a Co-op Cloud recipe: abra's recipe lint rules
# R001-R016 (R006 and R013 need the network and are reported as skipped), plus Trestle's own
# checks (config versions exported by abra.sh, secret naming and .env.sample, overlays, real
# health checks, image tags as in deploy/images.env). Used by
# tests/integration/test_70_recipe_lint.py; run it by hand with: python3 tests/recipe/lint.py
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY_MAX = 12
UNSTABLE_TAGS = {"latest", "stable", "main", "master", "develop", "dev", "nightly", "edge",
                 "testing", "unstable", "beta", "alpha", "rc"}
SEMVER_LIKE = re.compile(r"^v?\d+(\.\d+){0,3}([-+._][0-9A-Za-z.+_-]+)?$")
METADATA_FIELDS = ["Category", "Status", "Image", "Healthcheck", "Backups", "Email", "Tests",
                   "SSO"]


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def compose_files(root=ROOT):
    return sorted(p for p in root.glob("compose*.yml"))


def merged_services(root=ROOT):
    """Every service over every compose file, keys merged shallowly (enough for the rules)."""
    out = {}
    for p in compose_files(root):
        for name, svc in (load_yaml(p).get("services") or {}).items():
            cur = out.setdefault(name, {"_files": []})
            cur["_files"].append(p.name)
            for k, v in (svc or {}).items():
                if isinstance(v, dict) and isinstance(cur.get(k), dict):
                    cur[k] = {**cur[k], **v}
                else:
                    cur[k] = v
    return out


def image_tag(image):
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return last.split("@", 1)[1]
    return last.split(":", 1)[1] if ":" in last else None


def env_sample_vars(root=ROOT):
    """Variables set or shown (commented out) in .env.sample."""
    names = set()
    for line in (root / ".env.sample").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if m:
            names.add(m.group(1))
    return names


def abra_exports(root=ROOT):
    text = (root / "abra.sh").read_text(encoding="utf-8")
    return set(re.findall(r"^export\s+([A-Z][A-Z0-9_]*)=", text, re.M))


def top_level(root, kind):
    """{key: (definition, file)} of the top-level secrets or configs of every compose file."""
    out = {}
    for p in compose_files(root):
        for k, v in (load_yaml(p).get(kind) or {}).items():
            out.setdefault(k, []).append((v or {}, p.name))
    return out


def healthcheck_is_real(hc):
    if not hc or hc.get("disable"):
        return False
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return False
    cmd = " ".join(test[1:]).strip()
    return cmd not in ("", "true", "/bin/true", "exit 0", ":") and not re.fullmatch(
        r"(sh -c )?['\"]?(true|exit 0|:)['\"]?", cmd)


def readme_metadata(root=ROOT):
    text = (root / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- metadata -->(.*?)<!-- endmetadata -->", text, re.S)
    if not m:
        return None
    fields = {}
    for line in m.group(1).splitlines():
        fm = re.match(r"^\s*\*\s+\*\*([^*]+)\*\*:\s*(.*)$", line)
        if fm:
            fields[fm.group(1).strip()] = fm.group(2).strip()
    return fields


def git(root, *argv):
    return subprocess.run(["git", "-C", str(root), *argv], capture_output=True, text=True,
                          timeout=30)


# ---- abra's rules ----
def r001(root):
    bad = [p.name for p in compose_files(root) if str(load_yaml(p).get("version")) != "3.8"]
    return not bad, f"version is not \"3.8\" in {bad}" if bad else "all compose files 3.8"


def r002(root):
    bad = [n for n, s in merged_services(root).items() if not s.get("healthcheck")]
    return not bad, f"no healthcheck: {bad}" if bad else "every service"


def r003(root):
    bad = [s.get("image") for s in merged_services(root).values()
           if s.get("image") and not image_tag(s["image"])]
    return not bad, f"untagged: {bad}" if bad else "every image tagged"


def r004(root):
    bad = [s["image"] for s in merged_services(root).values()
           if s.get("image") and (image_tag(s["image"]) or "").lower() in UNSTABLE_TAGS]
    return not bad, f"unstable tags: {bad}" if bad else "no unstable tag"


def r005(root):
    bad = [s["image"] for s in merged_services(root).values()
           if s.get("image") and image_tag(s["image"])
           and not SEMVER_LIKE.match(image_tag(s["image"]))]
    return not bad, f"not semver-like: {bad}" if bad else "semver-like tags"


def r007(root):
    fields = readme_metadata(root)
    if fields is None:
        return False, "no <!-- metadata --> block in README.md"
    bad = [f for f in METADATA_FIELDS if not fields.get(f) or fields.get(f) in ("?", "TBC")]
    return not bad, f"missing or unfilled: {bad}" if bad else "filled in"


def r008(root):
    return (root / ".env.sample").is_file(), ".env.sample"


def r009(root):
    services = load_yaml(root / "compose.yml").get("services") or {}
    return "app" in services, "service app in compose.yml"


def r010(root):
    for s in merged_services(root).values():
        labels = (s.get("deploy") or {}).get("labels") or []
        if isinstance(labels, dict):
            labels = [f"{k}={v}" for k, v in labels.items()]
        if "traefik.enable=true" in labels:
            return True, "traefik.enable=true on a service"
    return False, "no service has the deploy label traefik.enable=true"


def r011(root):
    bad = [n for n, s in merged_services(root).items() if not s.get("image")]
    return not bad, f"no image: {bad}" if bad else "every service"


def r012(root):
    exported = abra_exports(root)
    missing = []
    for key, defs in top_level(root, "configs").items():
        for d, f in defs:
            for var in re.findall(r"\$\{([A-Z0-9_]+_VERSION)\}", str(d.get("name", ""))):
                if var not in exported:
                    missing.append(f"{f}:{key}:{var}")
    return not missing, f"not exported by abra.sh: {missing}" if missing else "vendored"


def r014(root):
    if git(root, "rev-parse", "--git-dir").returncode != 0:
        return None, "not a git checkout"
    out = git(root, "for-each-ref", "refs/tags", "--format=%(refname:short) %(objecttype)")
    light = [ln.split()[0] for ln in out.stdout.splitlines() if ln.split()[1:] != ["tag"]]
    return not light, f"lightweight tags: {light}" if light else "no lightweight tag"


def r015(root):
    bad = [k for k in top_level(root, "secrets") if len(k) > SECRET_KEY_MAX]
    return not bad, f"longer than {SECRET_KEY_MAX}: {bad}" if bad else "short secret names"


def r016(root):
    if git(root, "rev-parse", "--git-dir").returncode != 0:
        return None, "not a git checkout"
    tags = git(root, "tag", "--list").stdout.split()
    bad = [t for t in tags if not re.match(r"^\d+\.\d+\.\d+\+[0-9A-Za-z.+_-]+$", t)]
    return not bad, f"not <recipe semver>+<version>: {bad}" if bad else "valid recipe tags"


RULES = [
    ("R001", "compose config has expected version", r001),
    ("R002", "healthcheck enabled for all services", r002),
    ("R003", "all images use a tag", r003),
    ("R004", "no unstable tags", r004),
    ("R005", "tags use semver-like format", r005),
    ("R006", "has published catalogue version", None),
    ("R007", "README.md metadata filled in", r007),
    ("R008", ".env.sample provided", r008),
    ("R009", "one service named 'app'", r009),
    ("R010", "traefik routing enabled", r010),
    ("R011", "all services have images", r011),
    ("R012", "config version are vendored", r012),
    ("R013", "git.coopcloud.tech repo exists", None),
    ("R014", "only annotated tags used for recipe version", r014),
    ("R015", "long secret names", r015),
    ("R016", "recipe version tags are valid", r016),
]


# ---- Trestle's own checks ----
def check_secrets(root=ROOT):
    """Every external secret: name ${STACK_NAME}_<key>_${SECRET_<KEY>_VERSION}, key at most 12
    characters, its version variable in .env.sample."""
    problems = []
    env = env_sample_vars(root)
    for key, defs in top_level(root, "secrets").items():
        for d, f in defs:
            if not d.get("external"):
                continue
            want = "${STACK_NAME}_%s_${SECRET_%s_VERSION}" % (key, key.upper())
            if d.get("name") != want:
                problems.append(f"{f}: secret {key}: name {d.get('name')!r}, expected {want!r}")
            if len(key) > SECRET_KEY_MAX:
                problems.append(f"{f}: secret {key}: key longer than {SECRET_KEY_MAX}")
            if f"SECRET_{key.upper()}_VERSION" not in env:
                problems.append(f"{f}: secret {key}: SECRET_{key.upper()}_VERSION not in "
                                ".env.sample")
    return problems


def check_config_versions(root=ROOT):
    """Every *_VERSION a config name uses is exported by abra.sh."""
    ok, msg = r012(root)
    return [] if ok else [msg]


def env_sample_overlays(root=ROOT):
    files = []
    for line in (root / ".env.sample").read_text(encoding="utf-8").splitlines():
        m = re.match(r'^#?\s*COMPOSE_FILE="?([^"]*)"?\s*$', line)
        if m:
            files += [f for f in m.group(1).split(":") if f and not f.startswith("$")]
    return files


def check_overlays(root=ROOT):
    problems = [f".env.sample names {f}, which does not exist"
                for f in env_sample_overlays(root) if not (root / f).is_file()]
    for p in root.glob("compose.*.yml"):
        if p.name not in ("compose.swarm.yml", "compose.local.yml") and \
                p.name not in env_sample_overlays(root):
            problems.append(f"{p.name} is not switched on by any block of .env.sample")
    return problems


def check_healthchecks(root=ROOT):
    return [f"{n}: no real healthcheck ({s.get('healthcheck')})"
            for n, s in merged_services(root).items()
            if not healthcheck_is_real(s.get("healthcheck"))]


def images_env(root=ROOT):
    vals = {}
    for line in (root / "deploy/images.env").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Z_]+)=(.*)$", line)
        if m:
            vals[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
    return vals


def check_images(root=ROOT):
    """The compose files' image tags agree with deploy/images.env, the one place they are set,
    and every service built from the Dockerfile names its SERVICE."""
    v = images_env(root)
    problems = []
    want_third = {"mosquitto": v["MOSQUITTO_IMAGE"], "redis": v["REDIS_IMAGE"]}
    for name, s in merged_services(root).items():
        img = s.get("image", "")
        if name in want_third:
            if img != want_third[name]:
                problems.append(f"{name}: image {img}, deploy/images.env says {want_third[name]}")
            continue
        build = s.get("build") or {}
        svc = (build.get("args") or {}).get("SERVICE")
        want = f"{v['TRESTLE_IMAGE_PREFIX']}/{svc}:{v['TRESTLE_VERSION']}"
        if img != want:
            problems.append(f"{name}: image {img}, expected {want} (deploy/images.env)")
        if build.get("dockerfile") != "deploy/docker/Dockerfile":
            problems.append(f"{name}: not built from deploy/docker/Dockerfile")
    app = merged_services(root).get("app", {})
    labels = (app.get("deploy") or {}).get("labels") or []
    ver = [lb for lb in labels if lb.startswith("coop-cloud.${STACK_NAME}.version=")]
    if not ver or not ver[0].split("=", 1)[1].startswith(v["TRESTLE_VERSION"] + "+"):
        problems.append(f"app: label coop-cloud.${{STACK_NAME}}.version must be "
                        f"{v['TRESTLE_VERSION']}+<version>, got {ver}")
    return problems


EXTRA = [
    ("T001", "config versions exported by abra.sh", check_config_versions),
    ("T002", "external secrets named and in .env.sample", check_secrets),
    ("T003", "overlays named in .env.sample exist", check_overlays),
    ("T004", "every service has a real healthcheck", check_healthchecks),
    ("T005", "image names and tags as in deploy/images.env", check_images),
]


def lint(root=ROOT):
    """[(ref, description, status, detail)], status in satisfied, failed, skipped."""
    rows = []
    for ref, desc, fn in RULES:
        if fn is None:
            rows.append((ref, desc, "skipped", "needs the network (offline lint)"))
            continue
        ok, detail = fn(root)
        rows.append((ref, desc, "skipped" if ok is None else
                     ("satisfied" if ok else "failed"), detail))
    for ref, desc, fn in EXTRA:
        problems = fn(root)
        rows.append((ref, desc, "failed" if problems else "satisfied",
                     "; ".join(problems) if problems else "ok"))
    return rows


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    rows = lint(root)
    for ref, desc, status, detail in rows:
        print(f"{ref}  {status:9}  {desc}: {detail}")
    return 1 if any(r[2] == "failed" for r in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C.UTF-8")
    sys.exit(main())

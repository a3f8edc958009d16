# SPDX-License-Identifier: AGPL-3.0-or-later
# deploy/docker/Dockerfile without a Docker engine: the build stage's COPY and RUN steps are read
# from the Dockerfile and run here in a temporary copy of the tree (the apt-get step is checked
# instead: every package it names must be installed, and listed in deploy/deps.sh), once per
# service, so a broken step fails the suite. Then the final image's tree is checked: the binary,
# trestle-ctl, every library ldd finds and nothing else of the build, the non-root user, and, as
# root, that the binaries run inside it (chroot) and that its health check command works against
# the recipe's real broker and a /healthz server.
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipe"))
import lint  # noqa: E402
from harness import free_port  # noqa: E402
from test_70_recipe_mosquitto import Client, broker  # noqa: E402,F401  (the recipe's broker)

REPO = lint.ROOT
# The tree the image is built from: this checkout unless told otherwise.
SRC = Path(os.environ.get("TRESTLE_RECIPE_SRC", REPO))
DOCKERFILE = REPO / "deploy/docker/Dockerfile"
CHROOT = shutil.which("chroot", path="/usr/sbin:/sbin:/usr/bin:/bin")
# Running the image's tree as the container would (chroot) needs root.
IS_ROOT = os.geteuid() == 0 and CHROOT is not None
STATUS = '{"v":1,"connector":"%s","network":"irc","state":"%s","since":1732500000123}'


def instructions(path):
    """[(stage, INSTRUCTION, args)] with continuation lines joined and comments dropped."""
    out, stage, buf = [], None, ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, args = buf.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\s+AS\s+(\S+)$", args, re.I)
            stage = m.group(1) if m else args.strip()
        out.append((stage, word, args.strip()))
        buf = ""
    return out


INSTR = instructions(DOCKERFILE)
BUILD = [(w, a) for s, w, a in INSTR if s == "build"]
FINAL = [(w, a) for s, w, a in INSTR if s == "scratch"]


def images_env():
    return lint.images_env(REPO)


def services():
    return shlex.split(
        re.search(r'^TRESTLE_SERVICES="([^"]*)"', (REPO / "deploy/images.env").read_text(),
                  re.M).group(1))


def test_final_stage():
    words = {w: a for w, a in FINAL}
    assert [a for s, w, a in INSTR if w == "FROM"][-1] == "scratch"
    assert re.fullmatch(r"\d+:\d+", words["USER"]) and not words["USER"].startswith("0:")
    hc = words["HEALTHCHECK"]
    assert '"/usr/local/bin/trestle-ctl", "health"' in hc and "true" not in hc.split("CMD")[1]
    assert words["ENTRYPOINT"] == '["/usr/local/bin/trestle-service"]'
    assert "TRESTLE_SERVICE=${SERVICE}" in words["ENV"]
    copies = [a for w, a in FINAL if w == "COPY"]
    assert copies == ["--from=build /rootfs/ /"], "the final image gets the collected tree only"


def apt_packages(run):
    m = re.search(r"apt-get install (.*?)(&&|$)", run)
    return [t for t in m.group(1).split() if not t.startswith("-")]


def test_apt_packages_are_debian_and_in_deps():
    runs = [a for w, a in BUILD if w == "RUN" and "apt-get install" in a]
    assert len(runs) == 1
    pkgs = apt_packages(runs[0])
    listed = subprocess.run([str(REPO / "deploy/deps.sh"), "--list"], capture_output=True,
                            text=True, check=True, timeout=30).stdout.split()
    for p in pkgs:
        assert p in listed, f"{p}: in the Dockerfile, not in deploy/deps.sh"
        st = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", p],
                            capture_output=True, text=True, timeout=30).stdout
        assert st.startswith("ii"), f"{p} is not an installed Debian package here"


def hook_ctl_health(src):
    """Until services/ctl/ctl_main.c lists the health command (the hook asked of the lead),
    the copy being built gets it, so that ctl_health.c is exercised."""
    main = src / "services/ctl/ctl_main.c"
    text = main.read_text()
    if "ctl_health" in text:
        return
    entry = ('    {.name = "health", .args = "[CONNECTOR | --url URL | --broker] [--strict]",\n'
             '     .summary = "exit 0 when a connector, the router or the broker is healthy",\n'
             '     .help = "", .run = ctl_health, .needs_env = true},\n')
    text = text.replace("};\n\nstatic const char ctl_env_help", entry + "};\n\nstatic const char "
                        "ctl_env_help", 1)
    main.write_text(text.replace('#include "log.h"\n', '#include "log.h"\n'
                                 "int ctl_health(int argc, char **argv);\n", 1))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The build stage's WORKDIR with its COPY steps done (Dockerfile.dockerignore's *.wip
    left out)."""
    work = tmp_path_factory.mktemp("docker-build")
    wd = [a for w, a in BUILD if w == "WORKDIR"]
    assert wd == ["/src"]
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("*.wip", "build", "build-*")
    for w, a in BUILD:
        if w != "COPY":
            continue
        what, dest = a.split()
        s, d = SRC / what, src / dest
        if s.is_dir():
            shutil.copytree(s, d, ignore=ignore, dirs_exist_ok=True)
        else:
            d.mkdir(parents=True, exist_ok=True) if dest.endswith("/") else None
            shutil.copy2(s, d / s.name if dest.endswith("/") else d)
    hook_ctl_health(src)
    return work


def run_build_steps(work, service):
    rootfs = work / f"rootfs-{service}"
    env = dict(os.environ, SERVICE=service)
    # As in a docker build: no make of ours around it (the sanitizer run's BUILD=build-asan
    # would otherwise reach this make through MAKEFLAGS).
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "BUILD", "SANITIZE",
              "WERROR"):
        env.pop(k, None)
    for w, a in BUILD:
        if w != "RUN" or "apt-get" in a:
            continue
        cmd = a.replace("/rootfs", str(rootfs))
        if not IS_ROOT:
            cmd = re.sub(r"chown [^&]*&&", "true &&", cmd)
        r = subprocess.run(["/bin/sh", "-c", cmd], cwd=work / "src", env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"RUN {a}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return rootfs


def ldd_libs(binary):
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    libs = []
    for ln in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", ln) or re.match(r"\s*(/\S+)", ln)
        if m:
            libs.append(m.group(1))
    return libs


BUILT = {}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", services())
def test_build_steps(tree, service):
    if not (SRC / "services" / service / "main.c").is_file():
        pytest.skip(f"services/{service}/main.c does not exist yet: no image to build")
    rootfs = run_build_steps(tree, service)
    binp = rootfs / "usr/local/bin"
    assert os.readlink(binp / "trestle-service") == f"trestle-{service}"
    files = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*")
                   if p.is_file() and not p.is_symlink())
    want = set()
    for b in (f"trestle-{service}", "trestle-ctl"):
        assert (binp / b).is_file()
        for lib in ldd_libs(tree / "src/build/bin" / b):
            assert (rootfs / lib.lstrip("/")).is_file(), f"{lib} missing from the image"
            want.add(lib.lstrip("/"))
    extra = set(files) - want - {f"usr/local/bin/trestle-{service}", "usr/local/bin/trestle-ctl",
                                 "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt",
                                 "bin/busybox"}
    assert not extra, f"unexpected files in the image: {extra}"
    assert ("bin/busybox" in files) == (service == "router")
    assert re.search(r"^trestle:x:10001:10001:", (rootfs / "etc/passwd").read_text(), re.M)
    if IS_ROOT:
        assert (rootfs / "var/lib/trestle").stat().st_uid == 10001
        for argv in (["/usr/local/bin/trestle-service", "--help"],
                     ["/usr/local/bin/trestle-ctl", "health", "--help"]):
            r = subprocess.run([CHROOT, str(rootfs), *argv], capture_output=True, text=True,
                               timeout=30, env={"PATH": "/usr/local/bin"})
            assert r.returncode == 0, f"{argv} in the image: {r.stderr}"
        if service == "router":
            r = subprocess.run([CHROOT, str(rootfs), "/bin/sh", "-c", "kill -0 $$ && cat "
                                "/etc/group"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0 and "trestle" in r.stdout, r.stderr
    BUILT[service] = rootfs


def test_collect_libs_fails_on_missing_library(tmp_path):
    """A binary whose library cannot be found stops the build instead of making an image that
    cannot start."""
    src = tmp_path / "x.c"
    src.write_text("int tr_missing_fn(void);\nint main(void) { return tr_missing_fn(); }\n")
    lib = tmp_path / "libtrmissing.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), "-x", "c", "-"],
                   input="int tr_missing_fn(void) { return 0; }\n", text=True, check=True,
                   timeout=60)
    subprocess.run(["cc", "-o", str(tmp_path / "x"), str(src), f"-L{tmp_path}", "-ltrmissing"],
                   check=True, timeout=60)
    lib.unlink()
    r = subprocess.run(["sh", str(REPO / "deploy/docker/collect-libs.sh"), str(tmp_path / "root"),
                        str(tmp_path / "x")], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "libtrmissing.so" in r.stderr


# ---- the image's health check, run inside the collected tree ----

def health(service, env, args=()):
    """trestle-ctl health as the image's HEALTHCHECK runs it (in a chroot when root)."""
    rootfs = BUILT.get(service) or BUILT.get("ctl")
    if rootfs is None:
        pytest.skip("no image tree built")
    base = {"TRESTLE_SERVICE": service, "PATH": "/usr/local/bin"}
    if IS_ROOT:
        argv = [CHROOT, str(rootfs), "/usr/local/bin/trestle-ctl", "health", *args]
    else:
        argv = [str(rootfs / "usr/local/bin/trestle-ctl"), "health", *args]
    return subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=30)


def secret_file(service, name, url):
    """A secret in every image tree built (what /run/secrets holds in a container)."""
    if not BUILT:
        pytest.skip("no image tree built")
    for rootfs in BUILT.values():
        d = rootfs / "run/secrets"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(url + "\n")
    rootfs = BUILT.get(service) or BUILT.get("ctl")
    return f"/run/secrets/{name}" if IS_ROOT else str(rootfs / "run/secrets" / name)


def test_health_connector(broker):
    port, pw = broker["port"], broker["pw"]
    url = secret_file("ctl", "mqtt_alpha", f"mqtt://alpha:{pw['alpha']}@127.0.0.1:{port}")
    env = {"TRESTLE_CONNECTOR": "alpha", "TRESTLE_MQTT_URL_FILE": url}
    r = health("irc", env)
    assert r.returncode == 1 and "no status" in r.stderr, r.stderr
    alpha = Client(port, "alpha", pw["alpha"])
    try:
        for state, args, code in [("online", (), 0), ("degraded", (), 0),
                                  ("degraded", ("--strict",), 1), ("starting", (), 1),
                                  ("offline", (), 1)]:
            alpha.pub("trestle/v1/status/alpha", STATUS % ("alpha", state), retain=True)
            r = health("irc", env, args)
            assert r.returncode == code, (state, args, r.stdout, r.stderr)
            assert state in (r.stdout + r.stderr)
        alpha.pub("trestle/v1/status/alpha", "not json", retain=True)
        r = health("irc", env)
        assert r.returncode == 1 and "malformed" in r.stderr
        # Another connector's login cannot read alpha's status: no status, unhealthy.
        url_b = secret_file("ctl", "mqtt_beta", f"mqtt://beta-2:{pw['beta-2']}@127.0.0.1:{port}")
        alpha.pub("trestle/v1/status/alpha", STATUS % ("alpha", "online"), retain=True)
        r = health("irc", {"TRESTLE_MQTT_URL_FILE": url_b}, ("alpha",))
        assert r.returncode == 1, r.stdout
        r = health("irc", env)
        assert r.returncode == 0
    finally:
        alpha.pub("trestle/v1/status/alpha", b"", retain=True)
        alpha.close()


def test_health_broker(broker):
    port, pw = broker["port"], broker["pw"]
    good = secret_file("ctl", "mqtt_ctl", f"mqtt://_ctl:{pw['_ctl']}@127.0.0.1:{port}")
    assert health("ctl", {"TRESTLE_MQTT_URL_FILE": good}).returncode == 0
    bad = secret_file("ctl", "mqtt_bad", f"mqtt://_ctl:wrong@127.0.0.1:{port}")
    r = health("ctl", {"TRESTLE_MQTT_URL_FILE": bad})
    assert r.returncode == 1 and "wrong" not in r.stderr


class _Healthz(http.server.BaseHTTPRequestHandler):
    answer = (200, b"ok")

    def do_GET(self):
        code, body = self.answer if self.path == "/healthz" else (404, b"no")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_health_router():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Healthz)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        env = {"TRESTLE_METRICS_ADDR": f"0.0.0.0:{srv.server_port}"}
        r = health("router", env)
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr
        _Healthz.answer = (503, b"redis down")
        r = health("router", env)
        assert r.returncode == 1 and "redis down" in r.stderr
        assert health("router", {}).returncode == 78
    finally:
        _Healthz.answer = (200, b"ok")
        srv.shutdown()
        srv.server_close()
    r = health("router", {"TRESTLE_METRICS_ADDR": f"127.0.0.1:{free_port()}"})
    assert r.returncode == 1 and "connect" in r.stderr

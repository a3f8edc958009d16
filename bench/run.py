#!/usr/bin/python3
# SPDX-License-Identifier: AGPL-3.0-or-later
# Trestle bench: starts Mosquitto and Redis on free loopback ports, then for each case runs the
# raw relay (tests/bin/raw_relay.c) and trestle-router on the same broker with the same load
# (tests/bin/bench_load.c), and prints a Markdown table of throughput, latency and RSS against
# the targets. Written to bench/results/latest.md. See bench/README.md.
"""Usage: bench/run.py [--raw-only] [--scale X] [--out PATH]   (TRESTLE_BUILD=build-dir)"""

import argparse
import atexit
import ctypes
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024

# Load shape shared by every case.
WINDOW = 500  # events in flight (sent, not yet delivered everywhere) in the max-throughput runs
TEXT_BYTES = 200  # message text; the whole in event is about 480 bytes
RELAY_INFLIGHT = 100  # raw relay's client-side cap on unacknowledged publishes (see README)
IDLE_TIMEOUT_S = 5  # a run with nothing arriving for this long is over
ROUTER_START_S = 20
STOP_WAIT_S = 10

# Targets (shown as PASS/FAIL; never an exit failure).
T_RATIO_MIN = 0.40
T_RATIO_BUDGET = 0.50  # "within 2x of raw"
T_P99_MS = 5.0
T_RSS_MIB = 10.0

_procs = []


def _pdeathsig():
    """Child dies with us, even if this script is SIGKILLed (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=_pdeathsig, **kw)
    _procs.append(p)
    return p


def stop(p, wait_s=STOP_WAIT_S):
    """SIGTERM, bounded wait, then SIGKILL. Returns (exit code, killed?)."""
    killed = False
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            p.kill()
            killed = True
            p.wait(timeout=10)
    if p in _procs:
        _procs.remove(p)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()
    return p.returncode, killed


def stop_all():
    for p in list(_procs):
        try:
            stop(p, wait_s=3)
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, proc=None, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if pred():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what}: not ready within {timeout} s")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_mosquitto(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 100\n"
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        if os.geteuid() == 0:
            # Mosquitto started as root switches to user "mosquitto", which clears the
            # parent-death signal: it would outlive a SIGKILLed bench. Stay as we are.
            f.write("user root\n")
    log = open(os.path.join(tmp, "mosquitto.log"), "w")
    p = spawn(["mosquitto", "-c", conf], stdout=log, stderr=log)
    log.close()
    wait_for(lambda: port_open(port), 10, "mosquitto", p)
    return p, port


def start_redis(tmp):
    port = free_port()
    d = os.path.join(tmp, "redis")
    os.makedirs(d)
    log = open(os.path.join(tmp, "redis.log"), "w")
    p = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", d, "--protected-mode", "no"],
              stdout=log, stderr=log)
    log.close()
    wait_for(lambda: redis_ping(port), 10, "redis-server", p)
    return p, port


def versions():
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    m = re.search(r"version (\S+)", first_line(["mosquitto", "-h"]))
    r = re.search(r"v=(\S+)", first_line(["redis-server", "--version"]))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "mosquitto": m.group(1) if m else "unknown",
        "redis": r.group(1) if r else "unknown",
    }


def proc_mem(pid):
    """(VmRSS, VmHWM) in bytes, or (None, None)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out.get("VmRSS"), out.get("VmHWM")


class Bench:
    def __init__(self, build, mqtt_port, redis_port, tmp):
        self.build = build
        self.mqtt_port = mqtt_port
        self.redis_port = redis_port
        self.tmp = tmp
        self.seq = 0
        self.load_bin = os.path.join(build, "test", "bench_load")
        self.relay_bin = os.path.join(build, "test", "raw_relay")
        self.router_bin = os.path.join(build, "bin", "trestle-router")

    def prefix(self):
        """A fresh topic prefix per run: nothing left over from a previous run can interfere
        (the router's persistent sessions stay subscribed to their own prefix only)."""
        self.seq += 1
        return f"bench{self.seq}"

    def load(self, prefix, case, channels, run):
        count = case["count"]
        rate = case.get("rate", 0)
        expect_s = count / rate if rate else count * case["fanout"] / 2000.0
        total = int(min(120, 15 + 3 * expect_s))
        argv = [self.load_bin, "-p", str(self.mqtt_port), "-P", prefix, "-C", "src",
                "-R", run, "-n", str(count), "-k", str(channels), "-r", str(rate),
                "-w", str(case.get("window", WINDOW)), "-f", str(case["fanout"]),
                "-s", str(TEXT_BYTES), "-t", str(IDLE_TIMEOUT_S), "-T", str(total)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=total + 15,
                           preexec_fn=_pdeathsig)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"bench_load gave no result (exit {r.returncode}): "
                               f"{r.stderr.strip()[-400:]}")
        return json.loads(lines[-1])

    def run_raw(self, case):
        prefix = self.prefix()
        p = spawn([self.relay_bin, "-p", str(self.mqtt_port), "-i", f"raw-{prefix}",
                   "-m", str(RELAY_INFLIGHT),
                   f"{prefix}/v1/in/+", f"{prefix}/v1/out/d", str(case["fanout"])],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready, _, _ = select.select([p.stdout], [], [], 10)
            if not ready or not p.stdout.readline().startswith(b"ready"):
                raise RuntimeError("raw_relay did not subscribe within 10 s")
            # Every case has as many origin channels as rooms, like the router run.
            return self.load(prefix, case, case["rooms"], f"raw-{prefix}")
        finally:
            stop(p)

    def rooms_file(self, case):
        path = os.path.join(self.tmp, f"rooms-{case['rooms']}-{case['fanout']}.ini")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(f"; bench: {case['rooms']} rooms, fan-out {case['fanout']}\n")
                for i in range(case["rooms"]):
                    f.write(f"[room r{i}]\nsrc = c{i}\n")
                    for d in range(1, case["fanout"] + 1):
                        f.write(f"d{d} = c{i}\n")
        return path

    def http_get(self, port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, ""
        except (OSError, urllib.error.URLError):
            return None, ""

    def run_router(self, case):
        prefix = self.prefix()
        state = tempfile.mkdtemp(prefix="state-", dir=self.tmp)
        mport = free_port()
        env = dict(os.environ)
        env.update({
            "TRESTLE_MQTT_URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
            "TRESTLE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TRESTLE_TOPIC_PREFIX": prefix,
            "TRESTLE_ROOMS": self.rooms_file(case),
            "TRESTLE_STATE_DIR": state,
            "TRESTLE_LOG_LEVEL": "warn",
            "TRESTLE_METRICS_ADDR": f"127.0.0.1:{mport}",
            "TRESTLE_ROUTER_ID": f"bench-router-{prefix}",
        })
        logpath = os.path.join(self.tmp, f"router-{prefix}.log")
        log = open(logpath, "w")
        p = spawn([self.router_bin], env=env, stdout=log, stderr=log)
        log.close()
        res = {"log": logpath}
        try:
            wait_for(lambda: self.http_get(mport, "/healthz")[0] == 200, ROUTER_START_S,
                     "trestle-router /healthz", p, interval=0.1)
            res["rss_idle"], res["hwm_idle"] = proc_mem(p.pid)
            res["load"] = self.load(prefix, case, case["rooms"], f"router-{prefix}")
            if p.poll() is not None:
                raise RuntimeError(f"trestle-router exited with {p.returncode} during the run")
            res["rss_busy"], _ = proc_mem(p.pid)
            # The router gives its heap back once its queue has been empty for a while (a
            # 5 s timer): measure the steady state it returns to, which is what a host pays.
            time.sleep(6)
            res["rss_after"], res["hwm_after"] = proc_mem(p.pid)
            _, metrics = self.http_get(mport, "/metrics")
            res["drops"] = {m.group(1): float(m.group(2)) for m in re.finditer(
                r'^trestle_router_dropped_total\{reason="([^"]+)"\}\s+(\S+)', metrics, re.M)
                if float(m.group(2)) > 0}
        except Exception as e:  # noqa: BLE001 - one failed case must not stop the bench
            res["error"] = str(e)
            res["log_tail"] = tail(logpath)
        finally:
            code, killed = stop(p)
            res["exit"] = code
            res["killed"] = killed
        return res


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def summary_line(ld):
    if not ld:
        return "no result"
    return (f"{ld['in_per_s']:,.0f} ev/s p50 {fmt_ms(ld['p50_us'])} p99 {fmt_ms(ld['p99_us'])} ms "
            f"lost {ld['lost']} dup {ld['duplicates']} reord {ld['reordered']}"
            f"{' ERROR ' + ld['error'] if ld.get('error') else ''}")


def merge_loads(loads):
    """The run with the median throughput, with lost/duplicates/reordered summed over all runs
    (one loss in any run must show)."""
    loads = [ld for ld in loads if ld]
    if not loads:
        return None
    med = dict(sorted(loads, key=lambda ld: ld["in_per_s"])[(len(loads) - 1) // 2])
    for k in ("lost", "duplicates", "reordered", "expected", "received"):
        med[k] = sum(ld[k] for ld in loads)
    med["runs"] = len(loads)
    errors = [ld["error"] for ld in loads if ld.get("error")]
    if errors:
        med["error"] = errors[0]
    return med


def merge_routers(runs):
    out = {"load": merge_loads([r.get("load") for r in runs]), "runs": runs}
    for k in ("rss_idle", "hwm_idle", "rss_busy", "rss_after", "hwm_after"):
        vals = [r[k] for r in runs if r.get(k)]
        out[k] = max(vals) if vals else None
    drops = {}
    for r in runs:
        for reason, n in (r.get("drops") or {}).items():
            drops[reason] = drops.get(reason, 0) + n
    out["drops"] = drops
    for r in runs:
        for k in ("error", "log_tail"):
            if r.get(k) and k not in out:
                out[k] = r[k]
        if r.get("killed") or r.get("exit") not in (0, None):
            out.setdefault("exit", r.get("exit"))
            out["killed"] = out.get("killed") or r.get("killed")
    out.setdefault("exit", 0)
    return out


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


def cases(scale):
    def n(x):
        return max(100, int(x * scale))
    return [
        {"id": "fanout1", "label": "fan-out 1 (1 room, 2 endpoints)", "rooms": 1, "fanout": 1,
         "count": n(20000)},
        {"id": "fanout2", "label": "fan-out 2 (1 room, 3 endpoints)", "rooms": 1, "fanout": 2,
         "count": n(20000)},
        {"id": "fanout8", "label": "fan-out 8 (1 room, 9 endpoints)", "rooms": 1, "fanout": 8,
         "count": n(8000)},
        {"id": "rooms100", "label": "100 rooms, fan-out 2", "rooms": 100, "fanout": 2,
         "count": n(20000)},
        {"id": "rooms10000", "label": "10,000 rooms, fan-out 2", "rooms": 10000, "fanout": 2,
         "count": n(20000)},
        {"id": "rate1000", "label": "1,000 events/s for 5 s, fan-out 2", "rooms": 1,
         "fanout": 2, "count": n(5000), "rate": 1000},
        {"id": "burst", "label": "burst of 1,000 at once, fan-out 2", "rooms": 1, "fanout": 2,
         "count": 1000, "window": 1000},
    ]


def fmt_rate(x):
    return f"{x:,.0f}" if x else "—"


def fmt_ms(us):
    return f"{us / 1000:.2f}" if us is not None and us >= 0 else "—"


def fmt_mib(b):
    return f"{b / MIB:.1f}" if b else "—"


def passfail(ok):
    return "PASS" if ok else "FAIL"


def quality(ld):
    if not ld:
        return "—"
    return f"{ld['lost']}/{ld['duplicates']}/{ld['reordered']}"


def render(info, results, raw_only, elapsed, repeat):
    out = []
    out.append(f"# Trestle bench — {info['date']}\n")
    out.append(f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}")
    out.append(f"- mosquitto {info['mosquitto']}, redis {info['redis']}; everything on loopback, "
               "load generator on the same machine")
    out.append(f"- load: v1 message events of ~480 bytes (text {TEXT_BYTES} B), QoS 1; "
               f"max-throughput runs keep {WINDOW} events in flight; latency is in->out, "
               "CLOCK_MONOTONIC")
    out.append(f"- each case run {repeat}x, raw and router interleaved (the fixed-rate case once); "
               "the run with the median throughput is shown, lost/dup/reordered are summed "
               "over all runs")
    out.append(f"- bench time {elapsed:.0f} s{'; raw relay only (--raw-only)' if raw_only else ''}"
               "\n")
    out.append("| case | raw events/s | router events/s | router/raw | raw p50 / p99 ms | "
               "router p50 / p99 ms | router lost/dup/reord | target | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
    summary = []
    for c in results:
        raw = c.get("raw") or {}
        rt = c.get("router") or {}
        rl = rt.get("load") or {}
        ratio = None
        if raw.get("in_per_s") and rl and not c.get("rate"):
            ratio = rl.get("in_per_s", 0) / raw["in_per_s"]
        ok_q = bool(rl) and rl["lost"] == 0 and rl["reordered"] == 0 and rl["duplicates"] == 0
        target, result = "0 lost, 0 reordered", ("—" if raw_only else passfail(ok_q))
        if c["id"] == "fanout2" and not raw_only:
            r40 = ratio is not None and ratio >= T_RATIO_MIN
            r50 = ratio is not None and ratio >= T_RATIO_BUDGET
            target = "≥ 40% of raw; budget ≥ 50% (within 2x)"
            result = f"{passfail(r40 and ok_q)}; budget {passfail(r50)}"
            summary.append(("router/raw at fan-out 2 ≥ 40%", r40))
            summary.append(("router/raw at fan-out 2 ≥ 50% (within 2x)", r50))
        elif c["id"] == "rate1000":
            target = f"p99 < {T_P99_MS:g} ms"
            if not raw_only:
                ok = bool(rl) and rl["p99_us"] >= 0 and rl["p99_us"] / 1000 < T_P99_MS and ok_q
                result = passfail(ok)
                summary.append((f"p99 < {T_P99_MS:g} ms at 1,000 events/s", ok))
        elif c["id"] == "burst":
            if not raw_only:
                summary.append(("burst of 1,000: 0 lost, 0 reordered", ok_q))
        elif not raw_only:
            summary.append((f"{c['label']}: 0 lost, 0 reordered", ok_q))
        rate_cell = (lambda ld: fmt_rate(ld.get("in_per_s")) if ld else "—")
        if c.get("rate"):
            rate_cell = (lambda ld: f"{ld['in_per_s']:,.0f} (fixed)" if ld else "—")
        if rt.get("error"):
            result = f"FAIL: {rt['error']}"
        if raw.get("error"):
            result += f" (raw: {raw['error']})"
        out.append(
            f"| {c['label']} | {rate_cell(raw)} | {rate_cell(rl)} | "
            f"{f'{ratio:.0%}' if ratio is not None else '—'} | "
            f"{fmt_ms(raw.get('p50_us'))} / {fmt_ms(raw.get('p99_us'))} | "
            f"{fmt_ms(rl.get('p50_us'))} / {fmt_ms(rl.get('p99_us'))} | {quality(rl)} | "
            f"{target} | {result} |")
    out.append("")
    out.append("Events/s are in events routed per second (each one published to every "
               "destination: out messages/s = events/s × fan-out). Raw = tests/bin/raw_relay, "
               "a plain subscribe→publish relay on libmosquitto doing the same publishes with "
               "no validation, Redis or journal.\n")
    if not raw_only:
        out.append("| router memory | VmRSS MiB | VmHWM MiB | target | result |")
        out.append("|---|---:|---:|---|---|")
        by_id = {c["id"]: c for c in results}
        f1 = (by_id.get("fanout1") or {}).get("router") or {}
        big = (by_id.get("rooms10000") or {}).get("router") or {}
        out.append(f"| idle, 1 room | {fmt_mib(f1.get('rss_idle'))} | "
                   f"{fmt_mib(f1.get('hwm_idle'))} | | |")
        out.append(f"| idle, 10,000 rooms loaded | {fmt_mib(big.get('rss_idle'))} | "
                   f"{fmt_mib(big.get('hwm_idle'))} | | |")
        rss = big.get("rss_after")
        ok = rss is not None and rss / MIB < T_RSS_MIB
        ran = "rooms10000" in by_id
        out.append(f"| right after the 10,000-rooms run (queue just drained) | "
                   f"{fmt_mib(big.get('rss_busy'))} | | | |")
        out.append(f"| 6 s after the 10,000-rooms run | {fmt_mib(rss)} | "
                   f"{fmt_mib(big.get('hwm_after'))} | VmRSS < {T_RSS_MIB:g} MiB | "
                   f"{passfail(ok) if ran else 'not run'} |")
        if ran:
            summary.append((f"router RSS < {T_RSS_MIB:g} MiB with 10,000 rooms", ok))
        out.append("")
        notes = []
        for c in results:
            rt = c.get("router") or {}
            if rt.get("drops"):
                notes.append(f"- {c['label']}: router dropped {rt['drops']}")
            if rt.get("killed") or (rt.get("exit") not in (0, None)):
                notes.append(f"- {c['label']}: router exit {rt.get('exit')}"
                             f"{' (SIGKILLed after SIGTERM timeout)' if rt.get('killed') else ''}")
            if rt.get("log_tail"):
                notes.append(f"- {c['label']}: router log tail:\n\n```\n{rt['log_tail']}\n```")
        if notes:
            out.append("Notes:\n")
            out.extend(notes)
            out.append("")
        out.append("Targets: " + ", ".join(f"{name} **{passfail(ok)}**" for name, ok in summary)
                   + "\n")
    return "\n".join(out)


def connector_budget(build, mqtt_port, tmp, runs=5):
    """The connector budgets, on the connector core through trestle-testnet (whose network
    answers at once): time from process start to its retained status "online", and idle RSS."""
    import paho.mqtt.client as mqtt
    exe = os.path.join(build, "test", "trestle-testnet")
    if not os.access(exe, os.X_OK):
        return None
    res = {"online_ms": [], "rss": []}
    for i in range(runs):
        prefix = f"cb{i}{os.getpid()}"
        got = {}
        cl = mqtt.Client(client_id=f"{prefix}-watch", protocol=mqtt.MQTTv5)
        cl.on_message = lambda c, u, m: got.setdefault("t", time.monotonic()) \
            if b'"online"' in m.payload else None
        cl.connect("127.0.0.1", mqtt_port)
        cl.subscribe(f"{prefix}/v1/status/tn", qos=1)
        cl.loop_start()
        env = dict(os.environ, TRESTLE_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
                   TRESTLE_CONNECTOR="tn", TRESTLE_TOPIC_PREFIX=prefix,
                   TRESTLE_STATE_DIR=os.path.join(tmp, prefix), TRESTLE_LOG_LEVEL="warn")
        t0 = time.monotonic()
        p = spawn([exe], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: "t" in got, 10, "testnet online", p)
            res["online_ms"].append((got["t"] - t0) * 1000)
            time.sleep(2)  # idle: nothing to do but keepalives
            res["rss"].append(proc_mem(p.pid)[0])
        finally:
            stop(p)
            cl.loop_stop()
            cl.disconnect()
    return res


def render_connector(cb):
    if not cb:
        return "\nConnector budgets: trestle-testnet not built.\n"
    worst_ms = max(cb["online_ms"])
    worst_rss = max(cb["rss"])
    ok_ms, ok_rss = worst_ms < 1000, worst_rss / MIB < 6
    return "\n".join([
        "",
        "| connector core (trestle-testnet, 5 starts) | worst | target | result |",
        "|---|---:|---|---|",
        f"| process start to retained status online | {worst_ms:.0f} ms | < 1 s | {passfail(ok_ms)} |",
        f"| idle RSS | {fmt_mib(worst_rss)} MiB | < 6 MiB | {passfail(ok_rss)} |",
        "",
        "The testnet connector's network answers at once, so the first line is the core's own "
        "share of \"online within 1 s of its network answering\": broker connect, status, "
        "channels subscription.",
        ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw-only", action="store_true", help="run the raw relay only")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply event counts")
    ap.add_argument("--out", help="Markdown output (default bench/results/latest.md, "
                    "or raw-only.md with --raw-only)")
    ap.add_argument("--only", help="comma-separated case ids")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per case (median throughput shown; losses summed); the "
                    "fixed-rate case runs once")
    args = ap.parse_args()

    build = os.environ.get("TRESTLE_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(ROOT, build)
    out_path = args.out or os.path.join(
        ROOT, "bench", "results", "raw-only.md" if args.raw_only else "latest.md")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(stop_all)

    for tool in ("mosquitto", "redis-server"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found", file=sys.stderr)
            return 1
    tmp = tempfile.mkdtemp(prefix="trestle-bench-")
    t0 = time.monotonic()
    try:
        _, mqtt_port = start_mosquitto(tmp)
        _, redis_port = start_redis(tmp)
        b = Bench(build, mqtt_port, redis_port, tmp)
        for exe in (b.load_bin, b.relay_bin) + (() if args.raw_only else (b.router_bin,)):
            if not os.access(exe, os.X_OK):
                print(f"bench: {exe} missing (make BUILD=... all)", file=sys.stderr)
                return 1
        info = versions()
        results = []
        selected = cases(args.scale)
        if args.only:
            keep = set(args.only.split(","))
            selected = [c for c in selected if c["id"] in keep]
        for c in selected:
            reps = 1 if c.get("rate") else args.repeat
            raws, routers = [], []
            for i in range(reps):
                # Interleaved, so that a noisy neighbour hurts both sides alike.
                r = b.run_raw(c)
                log(f"{c['id']} #{i + 1} raw: {summary_line(r)}")
                raws.append(r)
                if not args.raw_only:
                    rt = b.run_router(c)
                    log(f"{c['id']} #{i + 1} router: {summary_line(rt.get('load'))}"
                        f"{' ERROR ' + rt['error'] if rt.get('error') else ''}")
                    routers.append(rt)
                    if rt.get("error"):
                        break
            c["raw"] = merge_loads(raws)
            if routers:
                c["router"] = merge_routers(routers)
            results.append(c)
        table = render(info, results, args.raw_only, time.monotonic() - t0, args.repeat)
        if not args.raw_only and not args.only:
            table += render_connector(connector_budget(build, mqtt_port, tmp))
        print(table)
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        with open(out_path + ".tmp", "w") as f:
            f.write(table)
        os.replace(out_path + ".tmp", out_path)
        print(f"bench: written to {os.path.relpath(out_path, ROOT)}", file=sys.stderr)
        return 0
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        print(f"bench: {e}", file=sys.stderr)
        for name in ("mosquitto.log", "redis.log"):
            t = tail(os.path.join(tmp, name))
            if t:
                print(f"--- {name}\n{t}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

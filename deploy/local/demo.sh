#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# The local stack without Docker: Mosquitto, Redis and trestle-router on loopback, with
# deploy/rooms.example.ini, then trestle-ctl send/tail crossing the bridge. Configs, data and
# logs live in .demo/. Every process it starts is stopped on exit (Ctrl-C included).
# --check: run it all non-interactively; exit 0 only if the message reached the other connectors.
set -euo pipefail

usage()
{
	cat <<'TXT'
Usage: deploy/local/demo.sh [--check] [--fresh]

Starts Mosquitto, Redis and trestle-router on 127.0.0.1 with deploy/rooms.example.ini, sends a
message in on connector demo-a and shows it going out to demo-b and demo-c, then keeps the
stack running until Ctrl-C.

  --check   non-interactive: exit 0 if the message was routed to every other connector, else 1
  --fresh   delete the demo folder (data, logs) before starting

Environment:
  TRESTLE_BUILD              build folder holding bin/ (default: build)
  TRESTLE_DEMO_DIR           folder for configs, data and logs (default: .demo)
  TRESTLE_DEMO_MQTT_PORT     broker port (default 1883; 0 = any free port)
  TRESTLE_DEMO_REDIS_PORT    Redis port (default 6379; 0 = any free port)
  TRESTLE_DEMO_METRICS_PORT  router /metrics and /healthz port (default 9464; 0 = any free)
  TRESTLE_DEMO_WAIT          seconds to wait for the stack and the message (default 30)
A default port that is taken is replaced by a free one, and the demo says so.
TXT
}

CHECK=0
FRESH=0
for arg in "$@"; do
	case "$arg" in
	--check) CHECK=1 ;;
	--fresh) FRESH=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${TRESTLE_BUILD:-build}
DEMO=${TRESTLE_DEMO_DIR:-.demo}
WAIT_S=${TRESTLE_DEMO_WAIT:-30}
PREFIX=trestle
ROOMS=deploy/rooms.example.ini
ROUTER_ID=trestle-router
CHECK_ID=trestle-demo-check
TEXT="hello from the demo"
FROM_CONNECTOR=demo-a
FROM_CHANNEL='#demo'
EXPECT=(demo-b demo-c) # every other endpoint of room "demo" that receives (none is `in`)

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die()
{
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# --- what we need --------------------------------------------------------------------------
find_cmd()
{
	# mosquitto and redis-server live in /usr/sbin, which is not on every user's PATH.
	command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true
}
MOSQUITTO=$(find_cmd mosquitto)
REDIS=$(find_cmd redis-server)
MOSQ_SUB=$(find_cmd mosquitto_sub)
CURL=$(find_cmd curl)
# Debian's python3 (as the Makefile uses) rather than whichever one comes first on PATH.
if [ -z "${PYTHON:-}" ]; then
	PYTHON=/usr/bin/python3
	[ -x "$PYTHON" ] || PYTHON=$(find_cmd python3)
fi
ROUTER_BIN=$BUILD/bin/trestle-router
CTL_BIN=$BUILD/bin/trestle-ctl

missing=()
[ -n "$MOSQUITTO" ] || missing+=("mosquitto (package mosquitto)")
[ -n "$REDIS" ] || missing+=("redis-server (package redis-server)")
[ -n "$MOSQ_SUB" ] || missing+=("mosquitto_sub (package mosquitto-clients)")
[ -n "$PYTHON" ] || missing+=("python3 (package python3)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run deploy/deps.sh"
[ -x "$ROUTER_BIN" ] || die "$ROUTER_BIN not built; run make (or make demo)"
[ -x "$CTL_BIN" ] || die "$CTL_BIN not built; run make (or make demo)"

# --- processes, and stopping them ----------------------------------------------------------
PIDS=()  # in start order; stopped in reverse
NAMES=()
STOPPED_RC=()

# Each process runs in a session of its own (setsid without fork: a background child of a
# shell without job control is no group leader), so that Ctrl-C reaches this script alone and
# on_exit stops the stack in order: the router first, while broker and Redis are still up.
# Their ids also go to $DEMO/pids, for whoever must clean up after a SIGKILL of this script.
SETSID=$(command -v setsid || true)
spawn()
{
	local name=$1
	shift
	if [ -n "$SETSID" ]; then
		"$SETSID" "$@" &
	else
		"$@" &
	fi
	PIDS+=($!)
	NAMES+=("$name")
	echo "$! $name" >>"$PIDFILE"
}
start()
{
	local name=$1 log=$2
	shift 2
	spawn "$name" "$@" >>"$log" 2>&1
}

alive()
{
	# A process that has exited but is not yet reaped still answers kill -0.
	kill -0 "$1" 2>/dev/null || return 1
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null || true)
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# Sends SIGTERM and waits (bounded) for the exit; the exit status goes to STOP_RC. (Not a
# command substitution: only this shell, the parent, can wait for its children.)
STOP_RC=0
stop_pid()
{
	local pid=$1 i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	STOP_RC=$rc
}

stop_all()
{
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		[ -n "${PIDS[i]}" ] || continue
		stop_pid "${PIDS[i]}"
		STOPPED_RC[i]=$STOP_RC
		PIDS[i]=""
	done
}

on_exit()
{
	local rc=$?
	trap - EXIT INT TERM HUP
	[ -z "${TICK:-}" ] || kill "$TICK" 2>/dev/null || true
	if [ ${#PIDS[@]} -gt 0 ]; then
		[ "$CHECK" = 1 ] || printf '\nStopping the demo stack...\n'
		stop_all
		: >"$PIDFILE"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Prints the last lines of a log, for when something did not start.
show_log()
{
	say "--- last lines of $1"
	tail -n 20 "$1" 2>/dev/null | sed 's/^/    /' || true
}

# --- ports ---------------------------------------------------------------------------------
# Prints three free loopback ports: each preferred one if it can be bound, else one the kernel
# picks (0 asks for any). All three are held until chosen so they cannot collide.
pick_ports()
{
	"$PYTHON" - "$@" <<'PY'
import socket, sys
held, out = [], []
for want in (int(a) for a in sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if want == 0:
            raise OSError
        s.bind(("127.0.0.1", want))
    except OSError:
        s.close()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
    s.listen(1)
    held.append(s)
    out.append(str(s.getsockname()[1]))
print(" ".join(out))
PY
}

WANT_MQTT=${TRESTLE_DEMO_MQTT_PORT:-1883}
WANT_REDIS=${TRESTLE_DEMO_REDIS_PORT:-6379}
WANT_METRICS=${TRESTLE_DEMO_METRICS_PORT:-9464}
read -r MQTT_PORT REDIS_PORT METRICS_PORT < <(pick_ports "$WANT_MQTT" "$WANT_REDIS" \
	"$WANT_METRICS")
[ -n "${METRICS_PORT:-}" ] || die "could not pick ports"
note_port()
{
	if [ "$2" != 0 ] && [ "$2" != "$3" ]; then
		say "Port $2 ($1) is taken: using $3 instead."
	fi
}

# --- folders and configuration -------------------------------------------------------------
if [ "$FRESH" = 1 ] && [ -d "$DEMO" ]; then
	rm -rf -- "$DEMO"
fi
mkdir -p "$DEMO/mosquitto" "$DEMO/redis" "$DEMO/state" "$DEMO/logs"
DEMO_ABS=$(cd "$DEMO" && pwd)
LOGS=$DEMO/logs
PIDFILE=$DEMO/pids
: >"$PIDFILE"

cat >"$DEMO/mosquitto.conf" <<EOF
# Generated by deploy/local/demo.sh: a loopback-only broker for the demo, without logins.
# A real deployment requires a login per service and an ACL (docs/protocol.md).
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $DEMO_ABS/mosquitto/
autosave_interval 30
# Started as root, mosquitto would switch to the mosquitto user, which cannot write here.
user $(id -un)
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
log_timestamp_format %Y-%m-%dT%H:%M:%S
EOF

MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
METRICS_ADDR=127.0.0.1:$METRICS_PORT
# What trestle-ctl (and the router) read; the demo's ctl runs use exactly these.
CTL_ENV=(TRESTLE_MQTT_URL="$MQTT_URL" TRESTLE_REDIS_URL="$REDIS_URL"
	TRESTLE_TOPIC_PREFIX="$PREFIX")

[ "$CHECK" = 1 ] || say "Trestle local demo (logs in $LOGS/, Ctrl-C stops everything)"
note_port mqtt "$WANT_MQTT" "$MQTT_PORT"
note_port redis "$WANT_REDIS" "$REDIS_PORT"
note_port metrics "$WANT_METRICS" "$METRICS_PORT"

# --- start the stack -----------------------------------------------------------------------
step "Starting Mosquitto on $MQTT_URL, Redis on $REDIS_URL"
: >"$LOGS/mosquitto.log"
start mosquitto "$LOGS/mosquitto.log" "$MOSQUITTO" -c "$DEMO/mosquitto.conf"
start redis "$LOGS/redis.log" "$REDIS" --bind 127.0.0.1 --port "$REDIS_PORT" \
	--dir "$DEMO_ABS/redis" --appendonly yes --save "" --daemonize no --protected-mode yes

# Fails (with the log) if a started process has already died.
check_alive()
{
	local i
	for i in "${!PIDS[@]}"; do
		[ -n "${PIDS[i]}" ] || continue
		if ! alive "${PIDS[i]}"; then
			show_log "$LOGS/${NAMES[i]}.log"
			die "${NAMES[i]} stopped unexpectedly"
		fi
	done
}

# The router would cope with a broker or Redis still starting (it retries with backoff), but
# the demo is quicker when both are listening first.
wait_port()
{
	local end=$((SECONDS + WAIT_S))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		check_alive
		[ $SECONDS -lt $end ] || die "nothing listens on 127.0.0.1:$1 after ${WAIT_S}s"
		sleep 0.1
	done
}
wait_port "$MQTT_PORT"
wait_port "$REDIS_PORT"

step "Starting trestle-router with $ROOMS (metrics on http://$METRICS_ADDR)"
start router "$LOGS/router.log" env "${CTL_ENV[@]}" TRESTLE_ROOMS="$ROOMS" \
	TRESTLE_STATE_DIR="$DEMO/state" TRESTLE_METRICS_ADDR="$METRICS_ADDR" \
	TRESTLE_ROUTER_ID="$ROUTER_ID" TRESTLE_LOG_LEVEL="${TRESTLE_LOG_LEVEL:-info}" \
	"$ROUTER_BIN"
ROUTER_PID=${PIDS[-1]}

healthz()
{
	if [ -n "$CURL" ]; then
		"$CURL" -fsS --max-time 2 "http://$METRICS_ADDR/healthz" 2>/dev/null
	else
		"$PYTHON" -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
			"http://$METRICS_ADDR/healthz" 2>/dev/null
	fi
}

deadline=$((SECONDS + WAIT_S))
until [ "$(healthz || true)" = "ok" ]; do
	check_alive
	if [ $SECONDS -ge $deadline ]; then
		show_log "$LOGS/router.log"
		die "the router did not report healthy within ${WAIT_S}s (GET http://$METRICS_ADDR/healthz)"
	fi
	sleep 0.2
done
say "Router healthy: broker and Redis connected."

# --- show the bridge working ---------------------------------------------------------------
# trestle-ctl tail says "following ..." on stderr once its subscriptions are in force: wait for
# that (bounded) so that it sees the message we are about to send.
TAIL_LOG=$LOGS/ctl-tail.log
wait_following()
{
	local end=$((SECONDS + 10))
	while [ $SECONDS -lt $end ]; do
		if grep -q 'following' "$TAIL_LOG" 2>/dev/null; then
			[ "$CHECK" = 1 ] || grep -m1 'following' "$TAIL_LOG"
			return 0
		fi
		check_alive
		sleep 0.1
	done
	say "(trestle-ctl tail has not subscribed yet; it may miss the first message)"
}

step "trestle-ctl tail --text (in the background: every event on the bus)"
: >"$TAIL_LOG"
if [ "$CHECK" = 1 ]; then
	start ctl-tail "$TAIL_LOG" env "${CTL_ENV[@]}" "$CTL_BIN" tail --text
else
	# Events to the terminal, so that what the user sends later shows up here too.
	spawn ctl-tail env "${CTL_ENV[@]}" "$CTL_BIN" tail --text 2>>"$TAIL_LOG"
fi
wait_following

# A persistent session of our own (MQTT 3.1.1, clean session off) catches every out event
# published from now on, however fast the router is; the first call clears an old session.
OUT_FILTER="$PREFIX/v1/out/+"
"$MOSQ_SUB" -h 127.0.0.1 -p "$MQTT_PORT" -i "$CHECK_ID" -t "$OUT_FILTER" -E
"$MOSQ_SUB" -h 127.0.0.1 -p "$MQTT_PORT" -i "$CHECK_ID" -c -q 1 -t "$OUT_FILTER" -E

step "trestle-ctl send $FROM_CONNECTOR '$FROM_CHANNEL' \"$TEXT\""
env "${CTL_ENV[@]}" "$CTL_BIN" send "$FROM_CONNECTOR" "$FROM_CHANNEL" "$TEXT" ||
	die "trestle-ctl send failed"

got=$("$MOSQ_SUB" -h 127.0.0.1 -p "$MQTT_PORT" -i "$CHECK_ID" -c -q 1 -t "$OUT_FILTER" -v \
	-C ${#EXPECT[@]} -W "$WAIT_S" || true)
"$MOSQ_SUB" -h 127.0.0.1 -p "$MQTT_PORT" -i "$CHECK_ID" -t "$OUT_FILTER" -E || true

# Each expected connector must have got an out event carrying our text, addressed to it.
SEEN_PY='
import json, sys
topic, conn, text = sys.argv[1:4]
for line in sys.stdin:
    t, _, payload = line.rstrip("\n").partition(" ")
    try:
        ev = json.loads(payload) if t == topic else None
    except ValueError:
        ev = None
    if isinstance(ev, dict) and ev.get("text") == text and \
            (ev.get("dest") or {}).get("connector") == conn:
        sys.exit(0)
sys.exit(1)
'
ok=1
for c in "${EXPECT[@]}"; do
	if "$PYTHON" -c "$SEEN_PY" "$PREFIX/v1/out/$c" "$c" "$TEXT" <<<"$got"; then
		say "  in on $FROM_CONNECTOR -> out on $c ($PREFIX/v1/out/$c)"
	else
		say "  NOT seen on $PREFIX/v1/out/$c"
		ok=0
	fi
done

if [ "$CHECK" = 1 ]; then
	# Give tail (bounded) the time to print both out events before it is stopped.
	end=$((SECONDS + 5))
	while [ $SECONDS -lt $end ] && [ "$(grep -c ' out ' "$TAIL_LOG" || true)" -lt ${#EXPECT[@]} ]; do
		sleep 0.1
	done
	step "Stopping"
	stop_all
	for i in "${!NAMES[@]}"; do
		rc=${STOPPED_RC[i]:-0}
		# Mosquitto and Redis end by signal now and then; the code under test must exit 0.
		case "${NAMES[i]}" in
		router | ctl-tail)
			if [ "$rc" != 0 ]; then
				show_log "$LOGS/${NAMES[i]}.log"
				say "  ${NAMES[i]} exited with status $rc after SIGTERM (want 0)"
				ok=0
			fi
			;;
		esac
	done
	step "What trestle-ctl tail printed"
	sed 's/^/    /' "$TAIL_LOG"
	if [ "$ok" = 1 ]; then
		say "demo check: ok"
		exit 0
	fi
	show_log "$LOGS/router.log"
	say "demo check: FAILED"
	exit 1
fi

case "$BUILD" in
/*) BIN_HINT=$BUILD/bin ;;
*) BIN_HINT="\$PWD/$BUILD/bin" ;;
esac
[ "$ok" = 1 ] || say "The message did not reach every connector: see $LOGS/router.log"
cat <<TXT

== The stack is running. In another terminal, from this folder:

  export TRESTLE_MQTT_URL=$MQTT_URL
  export TRESTLE_REDIS_URL=$REDIS_URL
  export PATH="$BIN_HINT:\$PATH"
  trestle-ctl check $ROOMS
  trestle-ctl rooms
  trestle-ctl status
  trestle-ctl send demo-b demo@conference.localhost "hello from b" --author bob
  curl -s http://$METRICS_ADDR/metrics | grep ^trestle_

Edit $ROOMS, then reload it with: kill -HUP $ROUTER_PID
Logs: $LOGS/router.log, $LOGS/mosquitto.log, $LOGS/redis.log, $TAIL_LOG; data in $DEMO/.
(The demo-* connectors are stand-ins: nobody delivers their out events; tail shows them.)
Ctrl-C stops everything.
TXT

# Until Ctrl-C, or until a process of the stack dies. (Polled: `wait -n` would miss a process
# that died before it was called.) A trapped signal interrupts `wait` at once.
while true; do
	check_alive
	sleep 1 &
	TICK=$!
	wait "$TICK" || true
done

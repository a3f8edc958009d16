#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# The local stack without Docker: Mosquitto, Redis, ngircd, Prosody, trestle-router,
# trestle-irc and trestle-xmpp on loopback, bridging IRC #demo with the XMPP room
# demo@conference.localhost (deploy/rooms.example.ini). Configs, data and logs live in .demo/.
# Every process it starts is stopped on exit (Ctrl-C included).
# --check: run it all non-interactively; exit 0 only if lines crossed both ways.
set -euo pipefail

usage()
{
	cat <<'TXT'
Usage: deploy/local/demo.sh [--check] [--fresh]

Starts Mosquitto, Redis, an IRC server (ngircd), an XMPP server (Prosody), trestle-router and
the IRC and XMPP connectors on 127.0.0.1, bridging IRC #demo with the XMPP room
demo@conference.localhost; then alice (IRC) and bob (XMPP) say hello to each other, and the
stack keeps running until Ctrl-C so you can join from your own clients.

  --check   non-interactive: exit 0 if the lines crossed both ways, else 1
  --fresh   delete the demo folder (data, logs) before starting

Environment:
  TRESTLE_BUILD              build folder holding bin/ (default: build)
  TRESTLE_DEMO_DIR           folder for configs, data and logs (default: .demo)
  TRESTLE_DEMO_MQTT_PORT     broker port (default 1883; 0 = any free port)
  TRESTLE_DEMO_REDIS_PORT    Redis port (default 6379; 0 = any free port)
  TRESTLE_DEMO_METRICS_PORT  router /metrics and /healthz port (default 9464; 0 = any free)
  TRESTLE_DEMO_IRC_PORT      IRC server port (default 6667; 0 = any free port)
  TRESTLE_DEMO_XMPP_PORT     XMPP server port (default 5222; 0 = any free port)
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
NGIRCD=$(find_cmd ngircd)
PROSODY=$(find_cmd prosody)
PROSODYCTL=$(find_cmd prosodyctl)
OPENSSL=$(find_cmd openssl)
# Debian's python3 (as the Makefile uses) rather than whichever one comes first on PATH.
if [ -z "${PYTHON:-}" ]; then
	PYTHON=/usr/bin/python3
	[ -x "$PYTHON" ] || PYTHON=$(find_cmd python3)
fi
ROUTER_BIN=$BUILD/bin/trestle-router
CTL_BIN=$BUILD/bin/trestle-ctl
IRC_BIN=$BUILD/bin/trestle-irc
XMPP_BIN=$BUILD/bin/trestle-xmpp

missing=()
[ -n "$MOSQUITTO" ] || missing+=("mosquitto (package mosquitto)")
[ -n "$REDIS" ] || missing+=("redis-server (package redis-server)")
[ -n "$MOSQ_SUB" ] || missing+=("mosquitto_sub (package mosquitto-clients)")
[ -n "$PYTHON" ] || missing+=("python3 (package python3)")
[ -n "$NGIRCD" ] || missing+=("ngircd (package ngircd)")
{ [ -n "$PROSODY" ] && [ -n "$PROSODYCTL" ]; } || missing+=("prosody (package prosody)")
[ -n "$OPENSSL" ] || missing+=("openssl (package openssl)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run deploy/deps.sh"
[ -x "$ROUTER_BIN" ] || die "$ROUTER_BIN not built; run make (or make demo)"
[ -x "$CTL_BIN" ] || die "$CTL_BIN not built; run make (or make demo)"
[ -x "$IRC_BIN" ] || die "$IRC_BIN not built; run make (or make demo)"
[ -x "$XMPP_BIN" ] || die "$XMPP_BIN not built; run make (or make demo)"

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
WANT_IRC=${TRESTLE_DEMO_IRC_PORT:-6667}
WANT_XMPP=${TRESTLE_DEMO_XMPP_PORT:-5222}
read -r MQTT_PORT REDIS_PORT METRICS_PORT IRC_PORT XMPP_PORT < <(pick_ports "$WANT_MQTT" \
	"$WANT_REDIS" "$WANT_METRICS" "$WANT_IRC" "$WANT_XMPP")
[ -n "${XMPP_PORT:-}" ] || die "could not pick ports"
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
mkdir -p "$DEMO/mosquitto" "$DEMO/redis" "$DEMO/state" "$DEMO/logs" "$DEMO/ngircd" \
	"$DEMO/prosody/data"
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

# ngircd, started as root, runs as nobody: its folder and config must be readable by all.
chmod 755 "$DEMO" "$DEMO/ngircd"
NGIRCD_USER=""
[ "$(id -u)" != 0 ] || NGIRCD_USER=$'ServerUID = 65534\nServerGID = 65534'
cat >"$DEMO/ngircd/ngircd.conf" <<CONF
# Generated by deploy/local/demo.sh: a loopback-only IRC server for the demo.
[Global]
Name = irc.demo.localhost
Info = Trestle demo IRC server
AdminInfo1 = demo
AdminInfo2 = demo
AdminEMail = demo@localhost
Listen = 127.0.0.1
Ports = $IRC_PORT
MotdPhrase = Trestle demo: /join #demo
$NGIRCD_USER
[Limits]
MaxConnectionsIP = 0
MaxJoins = 0
[Options]
Ident = no
PAM = no
DNS = no
CONF
chmod 644 "$DEMO/ngircd/ngircd.conf"

# Prosody with its own self-signed certificate (the XMPP connector trusts it through
# XMPP_CA_FILE; people's clients will ask to accept it), accounts made below.
PDIR=$DEMO_ABS/prosody
if [ ! -s "$PDIR/localhost.crt" ]; then
	"$OPENSSL" req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,DNS:conference.localhost" \
		-keyout "$PDIR/localhost.key" -out "$PDIR/localhost.crt" >/dev/null 2>&1 ||
		die "openssl could not make the demo XMPP certificate"
fi
cat >"$PDIR/prosody.cfg.lua" <<CONF
-- Generated by deploy/local/demo.sh: a loopback-only XMPP server for the demo.
run_as_root = true
prosody_user = "$(id -un)"
prosody_group = "$(id -gn)"
daemonize = false
pidfile = "$PDIR/prosody.pid"
data_path = "$PDIR/data"
certificates = "$PDIR"
log = { { levels = { min = "info" }, to = "file", filename = "$DEMO_ABS/logs/prosody.log" } }
c2s_ports = { $XMPP_PORT }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
modules_disabled = { "s2s"; "posix" }
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
ssl = { key = "$PDIR/localhost.key"; certificate = "$PDIR/localhost.crt" }
VirtualHost "localhost"
Component "conference.localhost" "muc"
  muc_room_default_persistent = true
  muc_room_default_public = true
CONF
# Accounts: the bridge, and alice and bob for people to log in with (passwords kept in
# $DEMO/accounts.txt, made once).
if [ ! -s "$DEMO/accounts.txt" ]; then
	{
		echo "bridge $(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
		echo "alice alice-demo"
		echo "bob bob-demo"
	} >"$DEMO/accounts.txt"
	chmod 600 "$DEMO/accounts.txt"
fi
BRIDGE_PW=$(awk '$1 == "bridge" { print $2 }' "$DEMO/accounts.txt")
BOB_PW=$(awk '$1 == "bob" { print $2 }' "$DEMO/accounts.txt")
while read -r user pw; do
	"$PROSODYCTL" --config "$PDIR/prosody.cfg.lua" register "$user" localhost "$pw" \
		>>"$DEMO/logs/prosodyctl.log" 2>&1 || die "prosodyctl could not register $user"
done <"$DEMO/accounts.txt"

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
note_port irc "$WANT_IRC" "$IRC_PORT"
note_port xmpp "$WANT_XMPP" "$XMPP_PORT"

# --- start the stack -----------------------------------------------------------------------
step "Starting Mosquitto on $MQTT_URL, Redis on $REDIS_URL"
: >"$LOGS/mosquitto.log"
start mosquitto "$LOGS/mosquitto.log" "$MOSQUITTO" -c "$DEMO/mosquitto.conf"
start redis "$LOGS/redis.log" "$REDIS" --bind 127.0.0.1 --port "$REDIS_PORT" \
	--dir "$DEMO_ABS/redis" --appendonly yes --save "" --daemonize no --protected-mode yes
step "Starting ngircd on 127.0.0.1:$IRC_PORT and Prosody on 127.0.0.1:$XMPP_PORT"
start ngircd "$LOGS/ngircd.log" "$NGIRCD" -n -f "$DEMO_ABS/ngircd/ngircd.conf"
start prosody "$LOGS/prosody-stdout.log" "$PROSODY" --config "$PDIR/prosody.cfg.lua" -F

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
wait_port "$IRC_PORT"
wait_port "$XMPP_PORT"

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

# --- the connectors ------------------------------------------------------------------------
step "Starting trestle-irc (irc-demo, nick bridge) and trestle-xmpp (xmpp-demo, bridge@localhost)"
start irc-demo "$LOGS/irc-demo.log" env "${CTL_ENV[@]}" TRESTLE_CONNECTOR=irc-demo \
	TRESTLE_STATE_DIR="$DEMO/state" TRESTLE_LOG_LEVEL="${TRESTLE_LOG_LEVEL:-info}" \
	IRC_SERVER="127.0.0.1:$IRC_PORT" IRC_NICK=bridge "$IRC_BIN"
start xmpp-demo "$LOGS/xmpp-demo.log" env "${CTL_ENV[@]}" TRESTLE_CONNECTOR=xmpp-demo \
	TRESTLE_STATE_DIR="$DEMO/state" TRESTLE_LOG_LEVEL="${TRESTLE_LOG_LEVEL:-info}" \
	XMPP_JID=bridge@localhost XMPP_PASSWORD="$BRIDGE_PW" XMPP_SERVER="127.0.0.1:$XMPP_PORT" \
	XMPP_CA_FILE="$PDIR/localhost.crt" XMPP_NICK=bridge "$XMPP_BIN"

# Each connector reports "online" on its retained status topic once logged in and joined.
online()
{
	"$MOSQ_SUB" -h 127.0.0.1 -p "$MQTT_PORT" -t "$PREFIX/v1/status/$1" -C 1 -W 2 2>/dev/null |
		grep -q '"state":"online"'
}
for c in irc-demo xmpp-demo; do
	end=$((SECONDS + WAIT_S))
	until online "$c"; do
		check_alive
		if [ $SECONDS -ge $end ]; then
			show_log "$LOGS/$c.log"
			die "$c did not come online within ${WAIT_S}s"
		fi
	done
	say "$c online."
done

# --- show the bridge working ---------------------------------------------------------------
# trestle-ctl tail says "following ..." on stderr once its subscriptions are in force: wait for
# that (bounded) so that it sees the lines we are about to send.
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
	say "(trestle-ctl tail has not subscribed yet; it may miss the first lines)"
}

step "trestle-ctl tail --text (in the background: every event on the bus)"
: >"$TAIL_LOG"
if [ "$CHECK" = 1 ]; then
	start ctl-tail "$TAIL_LOG" env "${CTL_ENV[@]}" "$CTL_BIN" tail --text
else
	spawn ctl-tail env "${CTL_ENV[@]}" "$CTL_BIN" tail --text 2>>"$TAIL_LOG"
fi
wait_following

step "alice on IRC #demo and bob in the XMPP room demo@conference.localhost say hello"
ok=1
"$PYTHON" deploy/local/demo_users.py "$IRC_PORT" "$XMPP_PORT" "$PDIR/localhost.crt" "$BOB_PW" \
	"$WAIT_S" || ok=0

if [ "$CHECK" = 1 ]; then
	# Give tail (bounded) the time to print both out events before it is stopped.
	end=$((SECONDS + 5))
	while [ $SECONDS -lt $end ] && [ "$(grep -c ' out ' "$TAIL_LOG" || true)" -lt 2 ]; do
		sleep 0.1
	done
	step "Stopping"
	stop_all
	for i in "${!NAMES[@]}"; do
		rc=${STOPPED_RC[i]:-0}
		# Mosquitto and Redis end by signal now and then; the code under test must exit 0.
		case "${NAMES[i]}" in
		router | ctl-tail | irc-demo | xmpp-demo)
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
[ "$ok" = 1 ] || say "The lines did not cross: see $LOGS/router.log, $LOGS/irc-demo.log, $LOGS/xmpp-demo.log"
cat <<TXT

== The bridge is running. Join it from your own clients:

  IRC:  server 127.0.0.1 port $IRC_PORT (no TLS), any nick, then /join #demo
        e.g. irssi -c 127.0.0.1 -p $IRC_PORT -n yourname
  XMPP: log in as alice@localhost (password alice-demo) or bob@localhost (bob-demo),
        server 127.0.0.1 port $XMPP_PORT (accept the demo's self-signed certificate),
        and join the room demo@conference.localhost

What one side says appears on the other with the speaker's name. In another terminal, from this
folder, the admin's view:

  export TRESTLE_MQTT_URL=$MQTT_URL
  export TRESTLE_REDIS_URL=$REDIS_URL
  export PATH="$BIN_HINT:\$PATH"
  trestle-ctl status
  trestle-ctl rooms
  trestle-ctl send irc-demo '#demo' "an event injected on the bus" --author ctl
  curl -s http://$METRICS_ADDR/metrics | grep ^trestle_

Edit $ROOMS, then reload it with: kill -HUP $ROUTER_PID
Logs in $LOGS/ (router, irc-demo, xmpp-demo, ngircd, prosody, mosquitto, redis, ctl-tail);
data in $DEMO/. Ctrl-C stops everything.
TXT

# Until Ctrl-C, or until a process of the stack dies. (Polled: `wait -n` would miss a process
# that died before it was called.) A trapped signal interrupts `wait` at once.
while true; do
	check_alive
	sleep 1 &
	TICK=$!
	wait "$TICK" || true
done

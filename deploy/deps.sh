#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# The one list of Debian (bookworm) packages Trestle needs to build, test, fuzz and run the
# demo. Installs only the missing ones, with apt-get (through sudo when not root), and stops the
# system services Debian starts on install so they never hold ports 1883 and 6379.
# Silent when everything is already there. Usage: deploy/deps.sh [--list]
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config clang git
	libmosquitto-dev libuv1-dev libjansson-dev libhiredis-dev libwebsockets-dev
	libcurl4-openssl-dev libcmark-dev libstrophe-dev libssl-dev
	# tests, lint
	libcmocka-dev clang-format python3 python3-paho-mqtt python3-redis python3-pytest
	# servers the tests and the demo run themselves (never as system services)
	mosquitto mosquitto-clients redis-server ngircd prosody python3-slixmpp openssl
	# the demo and the test harness: curl for /healthz, ps/kill, ss
	curl procps iproute2 ca-certificates
	docker-compose busybox-static # recipe checks: compose validation, the app image's shell
)
# Packages whose postinst starts a system service we must stop again.
SERVICES=(mosquitto redis-server ngircd prosody)

if [ "${1:-}" = "--list" ]; then
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
fi

# dpkg-query prints "install ok installed" only for a fully installed package.
missing=()
for p in "${PACKAGES[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing+=("$p") ;;
	esac
done
# Node.js and npm run the test servers of the HTTP networks (checked by their official SDKs
# from npm). A machine may have them from elsewhere (Debian's npm then conflicts): ask for
# Debian's packages only when the commands are absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "deps.sh: missing packages: ${missing[*]}" >&2
		echo "deps.sh: not root and no sudo; install them as root with apt-get" >&2
		exit 1
	fi
	SUDO=(sudo)
fi

echo "deps.sh: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"

# Debian starts mosquitto and redis-server on install. Tests and the demo run their own
# instances on loopback, so the system ones are stopped and kept from starting at boot.
# Containers often have no init system at all: every step here may fail harmlessly.
for s in "${SERVICES[@]}"; do
	case " ${missing[*]} " in
	*" $s "*) ;;
	*) continue ;;
	esac
	"${SUDO[@]}" service "$s" stop >/dev/null 2>&1 || true
	if command -v systemctl >/dev/null 2>&1; then
		"${SUDO[@]}" systemctl stop "$s" >/dev/null 2>&1 || true
		"${SUDO[@]}" systemctl disable "$s" >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null 2>&1; then
		"${SUDO[@]}" update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
done

# A service started without an init script to stop it (no pid file) would still hold its port.
for port in 1883 6379; do
	if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]; then
		echo "deps.sh: note: something still listens on port $port (the demo will pick another)"
	fi
done
echo "deps.sh: done"

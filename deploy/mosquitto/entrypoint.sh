#!/bin/sh
# SPDX-License-Identifier: AGPL-3.0-or-later
# Mosquitto's entry point in a Trestle stack: builds the hashed password file from the MQTT URL
# secrets the services use (each /run/secrets/mqtt_* holds mqtt://USER:PASSWORD@host:port, the
# very value a service reads as TRESTLE_MQTT_URL_FILE), writes the health check's options, then
# runs mosquitto. Passwords never appear on a command line. The paths can be moved for tests.
set -eu
secrets=${MQTT_SECRETS_DIR:-/run/secrets}
run=${MOSQUITTO_RUN_DIR:-/mosquitto/run}
conf=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
acl=${MOSQUITTO_ACL:-/mosquitto/config/acl}
mosquitto=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}

umask 077
mkdir -p "$run"
plain="$run/passwd.new"
: >"$plain"
n=0
for f in "$secrets"/mqtt_*; do
	[ -f "$f" ] || continue
	url=$(cat "$f")
	rest=${url#*://}
	cred=${rest%%@*}
	user=${cred%%:*}
	pass=${cred#*:}
	# The services percent-decode URL credentials; keep them to characters that need none.
	case "$rest" in *@*) ;; *) cred= ;; esac
	if [ -z "$cred" ] || [ "$cred" = "$user" ] || [ -z "$user" ] || [ -z "$pass" ]; then
		echo "entrypoint: $f: expected mqtt://USER:PASSWORD@host:port" >&2
		exit 78
	fi
	case "$user$pass" in
	*[!A-Za-z0-9._~-]*)
		echo "entrypoint: $f: use only A-Z a-z 0-9 . _ ~ - in MQTT logins and passwords" >&2
		exit 78
		;;
	esac
	printf '%s:%s\n' "$user" "$pass" >>"$plain"
	if [ "$user" = _health ]; then
		# mosquitto_sub reads default options from $XDG_CONFIG_HOME/mosquitto_sub.
		printf -- '-h 127.0.0.1\n-p %s\n-u %s\n-P %s\n' "${MQTT_PORT:-1883}" "$user" "$pass" \
			>"$run/mosquitto_sub"
	fi
	n=$((n + 1))
done
if [ "$n" -eq 0 ]; then
	echo "entrypoint: no MQTT login found in $secrets/mqtt_*" >&2
	exit 78
fi
mosquitto_passwd -U "$plain"
mv "$plain" "$run/passwd"
{
	cat "$conf"
	printf '\npassword_file %s\nacl_file %s\n' "$run/passwd" "$acl"
} >"$run/mosquitto.conf"
echo "entrypoint: $n MQTT logins"
# Mosquitto drops root for its own user: let it read the logins and own its data.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
	chown -R mosquitto:mosquitto "$run"
	[ -d /mosquitto/data ] && chown -R mosquitto:mosquitto /mosquitto/data
fi
exec "$mosquitto" -c "$run/mosquitto.conf"

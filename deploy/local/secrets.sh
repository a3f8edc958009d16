#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# One command for a local `docker compose` trial: writes every secret compose.local.yml names
# into deploy/local/secrets/ (random MQTT and Redis passwords; network tokens as placeholders
# to fill in), and deploy/local/secrets/env for --env-file. Existing files are kept, so edits
# survive; --force makes new ones. The connectors' MQTT logins take their instance names from
# the environment (IRC_CONNECTOR=irc-libera ...), default the network's name.
#   deploy/local/secrets.sh [--force] [--dir DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
dir=secrets
force=0
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
	--dir) dir=$2; shift ;;
	-h | --help) sed -n '3,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "secrets.sh: unknown argument $1" >&2; exit 64 ;;
	esac
	shift
done
umask 077
mkdir -p "$dir"
# Never committed.
printf '*\n' >"$dir/.gitignore"

pw() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
put() {
	local name=$1 value=$2
	if [ -s "$dir/$name" ] && [ "$force" = 0 ]; then
		return 0
	fi
	printf '%s\n' "$value" >"$dir/$name"
	# The folder stays private (0700); the files must be readable by the containers' own
	# users (docker compose bind-mounts them as they are).
	chmod 0644 "$dir/$name"
	echo "secrets.sh: wrote $dir/$name"
}
put mqtt_router "mqtt://_router:$(pw)@mosquitto:1883"
put mqtt_ctl "mqtt://_ctl:$(pw)@mosquitto:1883"
put mqtt_health "mqtt://_health:$(pw)@mosquitto:1883"
put redis_url "redis://:$(pw)@redis:6379/0"
put mqtt_irc "mqtt://${IRC_CONNECTOR:-irc}:$(pw)@mosquitto:1883"
put mqtt_xmpp "mqtt://${XMPP_CONNECTOR:-xmpp}:$(pw)@mosquitto:1883"
put mqtt_matrix "mqtt://${MATRIX_CONNECTOR:-matrix}:$(pw)@mosquitto:1883"
put mqtt_slack "mqtt://${SLACK_CONNECTOR:-slack}:$(pw)@mosquitto:1883"
put mqtt_discord "mqtt://${DISCORD_CONNECTOR:-discord}:$(pw)@mosquitto:1883"
# Appservice tokens are ours to invent; give the same two to the homeserver's registration.
put matrix_as "$(pw)"
put matrix_hs "$(pw)"
# These come from the networks: fill them in before switching the connector on.
put xmpp_pw "CHANGE-ME-xmpp-account-password"
put slack_app "CHANGE-ME-xapp-token"
put slack_bot "CHANGE-ME-xoxb-token"
put discord_bot "CHANGE-ME-discord-bot-token"
if [ ! -s "$dir/env" ] || [ "$force" = 1 ]; then
	cat >"$dir/env" <<'ENV'
STACK_NAME=trestle_local
DOMAIN=trestle.localhost
ENV
fi
cat <<MSG
secrets.sh: secrets are in deploy/local/$dir/. Start the core stack with:
  docker compose --env-file deploy/local/$dir/env -f compose.yml -f compose.local.yml up --build
and a connector by adding its file before compose.local.yml, e.g.
  -f compose.yml -f compose.irc.yml -f compose.local.yml
MSG

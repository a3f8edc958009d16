#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Co-op Cloud (abra) hooks for Trestle: the versions of the recipe's configs, and the commands
# an admin runs with `abra app cmd <domain> app <command>`. The commands run inside the app
# (router) container, which carries trestle-ctl, a busybox sh, and reads the same TRESTLE_*
# environment; trestle-ctl logs in to the broker as _ctl (secret mqtt_ctl).

# Bump a version when the file it names changes, so that Swarm creates a new config object.
export ROOMS_VERSION=v1
export MOSQUITTO_CONF_VERSION=v1
export MOSQUITTO_ACL_VERSION=v1
export MOSQUITTO_ENTRY_VERSION=v1

# trestle-ctl with the ctl's own broker login (the router's environment otherwise).
_ctl()
{
	TRESTLE_MQTT_URL_FILE=/run/secrets/mqtt_ctl trestle-ctl "$@"
}

# abra app cmd <domain> app rooms: the rooms table the router is using (from Redis).
rooms()
{
	_ctl rooms
}

# abra app cmd <domain> app status: every connector's retained status.
status()
{
	_ctl status
}

# abra app cmd <domain> app check: validate the rooms file the router reads, without applying it.
check()
{
	trestle-ctl check "${TRESTLE_ROOMS:-/etc/trestle/rooms.ini}"
}

# abra app cmd <domain> app reload: reread the rooms file (SIGHUP to the router, PID 1 in the
# container). A bad file is refused and logged with file:line; the old rooms stay in force.
# On Swarm the file is a config: a new rooms file comes with ROOMS_REVISION and a redeploy.
reload()
{
	check && kill -HUP 1
}

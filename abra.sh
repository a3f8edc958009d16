#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Co-op Cloud (abra) hooks for Trestle: config versions and `abra app cmd` commands. Minimal
# until the packaging issue; the commands run inside the app (router) container, which also
# carries trestle-ctl and reads the same TRESTLE_* environment.

# Bump a version when the file it names changes, so that Swarm creates a new config object.
export ROOMS_VERSION=v1

# abra app cmd <domain> app rooms: the rooms table the router is using (from Redis).
rooms()
{
	trestle-ctl rooms
}

# abra app cmd <domain> app status: every connector's retained status.
status()
{
	trestle-ctl status
}

# abra app cmd <domain> app check: validate the rooms file ($TRESTLE_ROOMS) without applying it.
check()
{
	trestle-ctl check "${TRESTLE_ROOMS:-rooms.ini}"
}

# abra app cmd <domain> app reload: reread the rooms file (SIGHUP to the router, PID 1 in the
# container). A bad file is refused and logged with file:line; the old rooms stay in force.
reload()
{
	check && kill -HUP 1
}

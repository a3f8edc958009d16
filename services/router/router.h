/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-router internals, private to services/router/: the in-memory routing table built
 * from the rooms, the journal, and the routing pipeline. */
#ifndef TRESTLE_ROUTER_ROUTER_H
#define TRESTLE_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "map.h"
#include "rooms.h"

/* ---- table.c: who receives what ---------------------------------------------------------- */

struct rt_dest {
	const char *connector, *channel; /* borrowed from the table's rooms */
	const char *room;                /* first room shared with the origin */
	char *ep;                        /* endpoint key, see rt_endpoint_key */
};

struct rt_origin {
	bool can_send;      /* in some room with mode inout or in */
	size_t n_dests;
	struct rt_dest *dests;
	char *ep;
};

struct rt_table {
	int refs;
	struct tr_rooms rooms;
	struct tr_map by_ep; /* endpoint key -> struct rt_origin */
	size_t n_endpoints;
};

/* "<connector>:<byte length of channel>:<channel>": self-delimiting, so "<ep>:<msgid>" is too.
 * Newly allocated. */
char *rt_endpoint_key(const char *connector, const char *channel);
/* Takes the rooms (moved into the table; *rooms is left empty). refs starts at 1. */
struct rt_table *rt_table_new(struct tr_rooms *rooms);
/* NULL when the endpoint is in no room. Borrowed. */
const struct rt_origin *rt_table_lookup(const struct rt_table *t, const char *connector,
					const char *channel);
void rt_table_ref(struct rt_table *t);
void rt_table_unref(struct rt_table *t);

/* ---- journal.c ---------------------------------------------------------------------------- */

struct journal;
/* A record that was not done before the last stop; payload borrowed for the call. */
typedef void journal_replay_fn(void *arg, uint64_t seq, char kind, const char *token,
			       const char *connector, const char *payload, size_t len);
/* Opens (creating) the journal in dir and calls fn for every record not done, oldest first.
 * NULL with err filled when the directory cannot be used. */
struct journal *journal_open(const char *dir, journal_replay_fn *fn, void *arg, char err[TR_ERR_LEN]);
int journal_append(struct journal *j, char kind, const char *token, const char *connector,
		   const void *payload, size_t len, uint64_t *seq) TR_MUST_CHECK;
void journal_done(struct journal *j, uint64_t seq);
void journal_close(struct journal *j);

/* ---- route.c / main.c --------------------------------------------------------------------- */

struct router_config {
	char *mqtt_url, *redis_url, *prefix, *rooms_path, *state_dir, *metrics_addr, *client_id;
	long retention_days;
	long ack_wait_ms;
};

/* Runs the router until SIGTERM/SIGINT. Returns the process exit code. */
int router_run(const struct router_config *cfg);

#endif
